import { describe, expect, it } from 'vitest';
import { Backoff } from '../../../src/kube/backoff.ts';
import { type Result, WorkQueue } from '../../../src/kube/workqueue.ts';
import { type Deferred, deferred, FakeClock, flush } from './fake-clock.ts';

function setup(backoff = new Backoff<string>({ baseMs: 1000, capMs: 60_000, factor: 2, jitter: 'none' })) {
  const clock = new FakeClock();
  const errors: { key: string; retryInMs: number }[] = [];
  const q = new WorkQueue<string>({
    clock,
    backoff,
    onError: (_err, key, retryInMs) => errors.push({ key, retryInMs }),
  });
  return { clock, q, errors };
}

/** A handler whose every call waits for the test to release it. */
function gatedHandler() {
  const calls: { key: string; gate: Deferred<Result> }[] = [];
  let active = 0;
  let maxActive = 0;
  const handler = async (key: string): Promise<Result> => {
    const gate = deferred<Result>();
    calls.push({ key, gate });
    active++;
    maxActive = Math.max(maxActive, active);
    try {
      return await gate.promise;
    } finally {
      active--;
    }
  };
  return {
    handler,
    calls,
    get active() {
      return active;
    },
    get maxActive() {
      return maxActive;
    },
  };
}

describe('WorkQueue', () => {
  it('stores a key added many times while queued once', async () => {
    const { q } = setup();
    for (let i = 0; i < 5; i++) {
      q.add('a');
      q.add('b');
    }
    expect(q.length).toBe(2);
    const seen: string[] = [];
    void q.run(async (key) => {
      seen.push(key);
    }, 1);
    await flush();
    expect(seen).toEqual(['a', 'b']);
    expect(q.length).toBe(0);
  });

  it('never runs one key in two workers at once; a re-add while running runs exactly once more', async () => {
    const { q } = setup();
    const h = gatedHandler();
    void q.run(h.handler, 4);
    q.add('k');
    await flush();
    expect(h.calls.map((c) => c.key)).toEqual(['k']);

    // Added three times while the first run is in flight, with three idle workers available.
    q.add('k');
    q.add('k');
    q.add('other');
    q.add('k');
    await flush();
    expect(h.calls.map((c) => c.key)).toEqual(['k', 'other']);
    expect(q.processing).toBe(2);

    h.calls[0]!.gate.resolve(undefined);
    await flush();
    expect(h.calls.map((c) => c.key)).toEqual(['k', 'other', 'k']);

    h.calls[1]!.gate.resolve(undefined);
    h.calls[2]!.gate.resolve(undefined);
    await flush();
    expect(h.calls).toHaveLength(3);
    expect(q.length).toBe(0);
    expect(q.processing).toBe(0);
  });

  it('respects the concurrency bound across 1,000 keys and handles each once', async () => {
    const { q } = setup();
    const concurrency = 7;
    let active = 0;
    let maxActive = 0;
    const counts = new Map<string, number>();
    const done = deferred();
    let finished = 0;
    void q.run(async (key) => {
      active++;
      maxActive = Math.max(maxActive, active);
      counts.set(key, (counts.get(key) ?? 0) + 1);
      // Interleave: a varying number of turns so handlers finish out of order.
      for (let i = 0; i < key.length % 5; i++) await Promise.resolve();
      if (Number(key.slice(1)) % 3 === 0) await flush();
      active--;
      if (++finished === 1000) done.resolve();
    }, concurrency);
    for (let i = 0; i < 1000; i++) q.add(`k${i}`);
    await done.promise;
    expect(maxActive).toBe(concurrency);
    expect(counts.size).toBe(1000);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });

  it('requeues a failing key with growing backoff and resets it after a success', async () => {
    const { clock, q, errors } = setup();
    const t0 = clock.now();
    const runs: number[] = [];
    let failuresLeft = 3;
    void q.run(async () => {
      runs.push(clock.now() - t0);
      if (failuresLeft-- > 0) throw new Error('issuer unavailable');
    }, 2);
    q.add('s');
    await clock.advanceAsync(20_000);
    expect(runs).toEqual([0, 1000, 3000, 7000]);
    expect(errors).toEqual([
      { key: 's', retryInMs: 1000 },
      { key: 's', retryInMs: 2000 },
      { key: 's', retryInMs: 4000 },
    ]);
    expect(q.failures('s')).toBe(0);

    // After the success, the next failure starts from the base delay again.
    failuresLeft = 1;
    q.add('s');
    await clock.advanceAsync(1000);
    expect(runs.slice(4).map((r) => r - 20_000)).toEqual([0, 1000]);
    expect(errors.at(-1)).toEqual({ key: 's', retryInMs: 1000 });
  });

  it('keeps running when a handler throws synchronously or the onError hook throws', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue<string>({
      clock,
      onError: () => {
        throw new Error('logger broke');
      },
    });
    const seen: string[] = [];
    void q.run((key) => {
      seen.push(key);
      if (key === 'sync') throw new Error('not even a promise');
      return Promise.resolve(undefined);
    }, 1);
    q.add('sync');
    q.add('fine');
    await flush();
    expect(seen).toEqual(['sync', 'fine']);
    expect(q.failures('sync')).toBe(1);
    expect(q.delayed).toBe(1);
  });

  it('schedules requeueAfter and forgets past failures on success', async () => {
    const { clock, q } = setup();
    const t0 = clock.now();
    const runs: number[] = [];
    let fail = true;
    void q.run(async () => {
      runs.push(clock.now() - t0);
      if (fail) {
        fail = false;
        throw new Error('once');
      }
      return { requeueAfter: 10_000 };
    }, 1);
    q.add('s');
    await clock.advanceAsync(1000);
    expect(q.failures('s')).toBe(0);
    await clock.advanceAsync(25_000);
    expect(runs).toEqual([0, 1000, 11_000, 21_000]);
    expect(q.delayed).toBe(1);
  });

  it('treats a non-finite requeueAfter as a failure', async () => {
    const { clock, q, errors } = setup();
    void q.run(async () => ({ requeueAfter: Number.NaN }), 1);
    q.add('s');
    await flush();
    expect(errors).toEqual([{ key: 's', retryInMs: 1000 }]);
    expect(clock.pendingTimers).toBe(1);
  });

  it('addAfter: the earliest pending time wins, a later one never postpones it', async () => {
    const { clock, q } = setup();
    const t0 = clock.now();
    const runs: { key: string; at: number }[] = [];
    void q.run(async (key) => {
      runs.push({ key, at: clock.now() - t0 });
    }, 1);
    q.addAfter('a', 5000);
    q.addAfter('a', 2000); // earlier: replaces
    q.addAfter('a', 9000); // later: never postpones
    q.addAfter('b', 3000);
    expect(q.delayed).toBe(2);
    await clock.advanceAsync(1000);
    q.addAfter('a', 1500); // 2500 from the start: still later than the pending 2000
    await clock.advanceAsync(20_000);
    expect(runs).toEqual([
      { key: 'a', at: 2000 },
      { key: 'b', at: 3000 },
    ]);
  });

  it('add replaces a pending delay; addAfter of a key already queued is a no-op', async () => {
    const { clock, q } = setup();
    const runs: string[] = [];
    q.addAfter('a', 5000);
    q.add('a');
    expect(q.delayed).toBe(0);
    q.addAfter('a', 1000);
    expect(q.delayed).toBe(0);
    void q.run(async (key) => {
      runs.push(key);
    }, 1);
    await clock.advanceAsync(10_000);
    expect(runs).toEqual(['a']);
  });

  it('addAfter with 0 or less adds now', async () => {
    const { q } = setup();
    q.addAfter('a', 0);
    q.addAfter('b', -5);
    expect(q.length).toBe(2);
    expect(() => q.addAfter('c', Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });

  it('holds 10,000 delayed keys with one armed timer', () => {
    const { clock, q } = setup();
    for (let i = 0; i < 10_000; i++) q.addAfter(`k${i}`, 1000 + ((i * 37) % 5000));
    expect(q.delayed).toBe(10_000);
    expect(clock.pendingTimers).toBe(1);
  });

  it('shutDown stops taking work and waits for in-flight handlers', async () => {
    const { clock, q } = setup();
    const h = gatedHandler();
    const loop = q.run(h.handler, 2);
    q.add('a');
    q.add('b');
    q.add('c');
    q.addAfter('d', 1000);
    await flush();
    expect(h.calls.map((c) => c.key)).toEqual(['a', 'b']);

    let stopped = false;
    const shutdown = q.shutDown().then(() => {
      stopped = true;
    });
    expect(clock.pendingTimers).toBe(0);
    q.add('e'); // ignored
    h.calls[0]!.gate.resolve(undefined);
    await flush();
    expect(stopped).toBe(false);
    expect(h.calls).toHaveLength(2); // 'c' is never started

    h.calls[1]!.gate.resolve({ requeueAfter: 10 });
    await shutdown;
    await loop;
    expect(stopped).toBe(true);
    expect(h.active).toBe(0);
    expect(q.delayed).toBe(0);
  });

  it('shutDown without a running loop resolves at once; run twice is refused', async () => {
    const { q } = setup();
    await q.shutDown();
    const other = setup().q;
    void other.run(async () => {}, 1);
    expect(() => other.run(async () => {}, 1)).toThrow(/already/);
    expect(() => setup().q.run(async () => {}, 0)).toThrow(RangeError);
    await other.shutDown();
  });
});

describe('WorkQueue depth and oldest wait (the work-queue metrics)', () => {
  it('counts keys that need a run and measures the longest wait from when each was queued', async () => {
    const { clock, q } = setup();
    expect(q.depth).toBe(0);
    expect(q.oldestWaitMs()).toBe(0);
    q.add('a');
    clock.advance(1_000);
    q.add('b');
    q.add('a'); // already waiting: keeps its first time
    clock.advance(500);
    expect(q.depth).toBe(2);
    expect(q.oldestWaitMs()).toBe(1_500);
    q.addAfter('c', 60_000); // delayed keys do not wait to run yet
    expect(q.depth).toBe(2);

    const h = gatedHandler();
    void q.run(h.handler, 1);
    await flush();
    // 'a' is being handled; 'b' waits, queued 500 ms ago.
    expect(q.depth).toBe(1);
    expect(q.oldestWaitMs()).toBe(500);
    q.add('a'); // re-added while handled: it needs another run
    clock.advance(100);
    expect(q.depth).toBe(2);
    expect(q.oldestWaitMs()).toBe(600);
    h.calls[0]?.gate.resolve(undefined);
    await flush();
    h.calls[1]?.gate.resolve(undefined);
    await flush();
    h.calls[2]?.gate.resolve(undefined);
    await flush();
    expect(h.calls.map((c) => c.key)).toEqual(['a', 'b', 'a']);
    expect(q.depth).toBe(0);
    expect(q.oldestWaitMs()).toBe(0);
  });
});
