/**
 * Gives back to the operating system the V8 heap pages a large transient left behind.
 *
 * When a garbage collection frees a page, V8 keeps it in a pool for reuse: it stays resident
 * and is no longer counted in the heap's committed size. Only a memory-reducing collection
 * releases the pool, and V8's memory reducer, which should run one when the process goes idle,
 * keeps postponing it in an idle process: it judges idleness from the allocation rate measured
 * at the last collection, and an idle process has no collections. After the initial list of
 * 5,000 TLS Secrets that left ~27 MiB of pooled pages resident indefinitely, and after a burst of
 * renewals more (and the garbage of that work stays in the heap until something allocates
 * again). This reclaimer samples the process's RSS once a second: when it has grown by at least
 * `minGrowthBytes` over its value after the last reclaim (or at start) and has not grown for
 * `quietMs` (the work is over), it runs one memory-reducing collection, at most once per
 * `minIntervalMs`. Growth the collection cannot give back (live data, malloc) becomes the new
 * baseline, so nothing repeats. Figures: docs/operations.md, "Memory".
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let gcFunction: GcFunction | undefined;

/** V8's gc() extension, installed in a fresh context only (the global `gc` stays undefined). */
function gcExtension(): GcFunction {
  if (!gcFunction) {
    setFlagsFromString('--expose-gc');
    gcFunction = runInNewContext('gc') as GcFunction;
    setFlagsFromString('--no-expose-gc');
  }
  return gcFunction;
}

export interface HeapReclaimerOptions {
  intervalMs?: number;
  quietMs?: number;
  minGrowthBytes?: number;
  minIntervalMs?: number;
  /** Called after each reclaim with the RSS before and after and the pause. */
  onReclaim?: (r: { rssBeforeBytes: number; rssAfterBytes: number; pauseMs: number }) => void;
  /** Where each reclaim is logged (info level, at most once a minute: "heap pages released"). */
  log?: { info(fields: Record<string, unknown>, msg: string): void };
  now?: () => number;
  rssBytes?: () => number;
  collect?: () => void;
}

const MIB = 1024 * 1024;

export class HeapReclaimer {
  private baseline: number;
  private lastRss: number;
  private lastGrowth: number;
  private lastReclaim = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private readonly o: Required<Omit<HeapReclaimerOptions, 'onReclaim' | 'log'>> &
    Pick<HeapReclaimerOptions, 'onReclaim' | 'log'>;

  constructor(options: HeapReclaimerOptions = {}) {
    this.o = {
      intervalMs: options.intervalMs ?? 1_000,
      quietMs: options.quietMs ?? 5_000,
      minGrowthBytes: options.minGrowthBytes ?? 16 * MIB,
      minIntervalMs: options.minIntervalMs ?? 60_000,
      onReclaim: options.onReclaim,
      log: options.log,
      now: options.now ?? (() => performance.now()),
      rssBytes: options.rssBytes ?? (() => process.memoryUsage.rss()),
      collect:
        options.collect ?? (() => gcExtension()({ type: 'major', execution: 'sync', flavor: 'last-resort' })),
    };
    this.baseline = this.lastRss = this.o.rssBytes();
    this.lastGrowth = this.o.now();
  }

  start(): this {
    this.timer ??= setInterval(() => this.tick(), this.o.intervalMs).unref();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One sample; runs the collection when the conditions above hold. Returns whether it did. */
  tick(): boolean {
    const now = this.o.now();
    const rss = this.o.rssBytes();
    if (rss > this.lastRss + MIB) this.lastGrowth = now;
    this.lastRss = rss;
    if (rss < this.baseline) this.baseline = rss; // given back by other means
    if (rss - this.baseline < this.o.minGrowthBytes) return false;
    if (now - this.lastGrowth < this.o.quietMs || now - this.lastReclaim < this.o.minIntervalMs) return false;
    const t0 = this.o.now();
    this.o.collect();
    this.lastReclaim = this.o.now();
    this.baseline = this.lastRss = this.o.rssBytes();
    const pauseMs = this.lastReclaim - t0;
    this.o.onReclaim?.({ rssBeforeBytes: rss, rssAfterBytes: this.lastRss, pauseMs });
    this.o.log?.info(
      {
        rssBeforeMiB: Math.round(rss / MIB),
        rssAfterMiB: Math.round(this.lastRss / MIB),
        pauseMs: Math.round(pauseMs),
      },
      'heap pages released',
    );
    return true;
  }
}
