// Throughput of the renewal scheduler (TimerQueue) and the work queue.
// Needs a build first: `npx tsc -p tsconfig.build.json && node_modules/.bin/node bench/queue.bench.mjs`.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { TimerQueue } from '../dist/kube/timer-queue.js';
import { WorkQueue } from '../dist/kube/workqueue.js';

const N = 100_000;
const ROUNDS = 7;
const WORKERS = 4;

/** A clock the bench drives by hand: it holds the one armed timer and fires it on demand. */
function manualClock() {
  let now = 0;
  let armed;
  return {
    now: () => now,
    setTimeout(fn) {
      armed = fn;
      return 1;
    },
    clearTimeout() {
      armed = undefined;
    },
    /** Jumps to `t` and fires the armed timer, if any; returns whether one was armed. */
    fireAt(t) {
      now = Math.max(now, t);
      const fn = armed;
      armed = undefined;
      fn?.();
      return fn !== undefined;
    },
  };
}

/** Deterministic due times spread over a year, so every round sorts the same input. */
function dueTimes(n) {
  const out = new Float64Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = 1 + (x % (365 * 86_400_000));
  }
  return out;
}

const keys = Array.from({ length: N }, (_, i) => `namespace-${i % 97}/secret-${i}`);
const times = dueTimes(N);

function timerQueueRound() {
  // Batch: every key fires in one wake-up (a controller catching up after a pause).
  let fired = 0;
  let clock = manualClock();
  let q = new TimerQueue(() => fired++, { clock });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) q.schedule(keys[i], times[i]);
  const t1 = performance.now();
  clock.fireAt(Number.MAX_SAFE_INTEGER);
  const t2 = performance.now();
  if (fired !== N) throw new Error(`TimerQueue batch fired ${fired} of ${N}`);

  // Stepwise: one wake-up per due time, re-arming each time (the steady state).
  fired = 0;
  clock = manualClock();
  q = new TimerQueue(() => fired++, { clock });
  for (let i = 0; i < N; i++) q.schedule(keys[i], times[i]);
  const t3 = performance.now();
  while (q.size > 0) clock.fireAt(q.nextDue());
  const t4 = performance.now();
  if (fired !== N) throw new Error(`TimerQueue stepwise fired ${fired} of ${N}`);

  return {
    schedule: N / ((t1 - t0) / 1000),
    popBatch: N / ((t2 - t1) / 1000),
    popStepwise: N / ((t4 - t3) / 1000),
  };
}

async function workQueueRound() {
  const q = new WorkQueue();
  const { promise: drained, resolve } = Promise.withResolvers();
  let handled = 0;
  void q.run(async () => {
    if (++handled === N) resolve();
  }, WORKERS);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) q.add(keys[i]);
  await drained;
  const t1 = performance.now();
  await q.shutDown();
  return { addAndHandle: N / ((t1 - t0) / 1000) };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function medians(rounds) {
  const out = {};
  for (const name of Object.keys(rounds[0])) out[name] = Math.round(median(rounds.map((r) => r[name])));
  return out;
}

/** Runs both benchmarks; returns median ops/s per measurement. */
export async function run({ rounds = ROUNDS } = {}) {
  timerQueueRound(); // warm-up: let the JIT settle before measuring
  await workQueueRound();
  const tq = [];
  const wq = [];
  for (let r = 0; r < rounds; r++) {
    tq.push(timerQueueRound());
    wq.push(await workQueueRound());
  }
  return {
    n: N,
    rounds,
    timerQueue: medians(tq),
    workQueue: { concurrency: WORKERS, ...medians(wq) },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await run();
  const fmt = (v) => `${v.toLocaleString('en-US')} ops/s`;
  console.log(`queue bench: ${figures.n.toLocaleString('en-US')} keys, median of ${figures.rounds} rounds`);
  console.log(`  TimerQueue schedule         ${fmt(figures.timerQueue.schedule)}`);
  console.log(`  TimerQueue pop (one wake)   ${fmt(figures.timerQueue.popBatch)}`);
  console.log(`  TimerQueue pop (stepwise)   ${fmt(figures.timerQueue.popStepwise)}`);
  console.log(
    `  WorkQueue add+handle (c=${figures.workQueue.concurrency})  ${fmt(figures.workQueue.addAndHandle)}`,
  );
}
