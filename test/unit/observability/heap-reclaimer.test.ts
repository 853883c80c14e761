import { describe, expect, it } from 'vitest';
import { HeapReclaimer } from '../../../src/observability/heap-reclaimer.ts';

const MIB = 1024 * 1024;

/** A reclaimer on a hand-moved clock and RSS; `collect` sets the RSS to what it would free to. */
function harness(opts: { freesTo?: number } = {}) {
  let now = 0;
  let rss = 60 * MIB;
  const collections: number[] = [];
  const r = new HeapReclaimer({
    now: () => now,
    rssBytes: () => rss,
    collect: () => {
      collections.push(now);
      if (opts.freesTo !== undefined) rss = opts.freesTo;
    },
  });
  /** `seconds` ticks; the RSS moves to `newRss` at the first one, then only a collection moves it. */
  const step = (seconds: number, newRss?: number) => {
    const fired: boolean[] = [];
    if (newRss !== undefined) rss = newRss;
    for (let i = 0; i < seconds; i++) {
      now += 1_000;
      fired.push(r.tick());
    }
    return fired.filter(Boolean).length;
  };
  return { step, collections, rss: () => rss };
}

describe('HeapReclaimer', () => {
  it('collects once, after the RSS grew by 16 MiB and then stayed still for 5 s', () => {
    const h = harness({ freesTo: 70 * MIB });
    // Growing for 3 s: the work is still going on.
    expect(h.step(1, 80 * MIB) + h.step(1, 90 * MIB) + h.step(1, 100 * MIB)).toBe(0);
    expect(h.step(4)).toBe(0); // quiet for 4 s only
    expect(h.step(1)).toBe(1);
    expect(h.rss()).toBe(70 * MIB);
    expect(h.step(120)).toBe(0); // nothing left to give back: no further collections
  });

  it('does nothing for growth under 16 MiB', () => {
    const h = harness({ freesTo: 60 * MIB });
    expect(h.step(30, 75 * MIB)).toBe(0);
    expect(h.collections).toEqual([]);
  });

  it('growth the collection cannot free becomes the baseline: no collection loop', () => {
    const h = harness(); // frees nothing
    expect(h.step(10, 100 * MIB)).toBe(1);
    expect(h.step(300)).toBe(0);
    expect(h.step(10, 110 * MIB)).toBe(0); // +10 MiB over the new baseline only
  });

  it('at most one collection a minute while bursts keep coming', () => {
    const h = harness({ freesTo: 60 * MIB });
    let fired = 0;
    for (let burst = 0; burst < 6; burst++) {
      fired += h.step(1, 100 * MIB + burst * MIB * 2); // a burst grows the RSS
      fired += h.step(9); // then 9 s of quiet
    }
    // 60 s of bursts, 10 s apart: the first quiet spell collects, the next one a minute later.
    expect(fired).toBe(1);
    expect(h.step(10, 100 * MIB) + h.step(10)).toBe(1);
  });
});

describe('HeapReclaimer with the real collector', () => {
  it('gives back pooled V8 pages after a large transient', async () => {
    // Garbage of the size of a list of 5,000 Secrets, then the reclaimer on a real clock.
    const page = JSON.stringify(
      Array.from({ length: 500 }, (_, i) => ({
        metadata: { name: `s${i}` },
        data: { crt: 'A'.repeat(2000) },
      })),
    );
    let kept = 0;
    const before = process.memoryUsage.rss();
    for (let i = 0; i < 30; i++) kept += (JSON.parse(page) as unknown[]).length;
    const grown = process.memoryUsage.rss();
    let after = 0;
    const r = new HeapReclaimer({
      minGrowthBytes: 0,
      quietMs: 0,
      onReclaim: (x) => {
        after = x.rssAfterBytes;
      },
    });
    expect(r.tick()).toBe(true);
    expect(kept).toBe(15_000);
    // What the transient added is mostly given back (the worker's own heap may differ a little).
    expect(after).toBeLessThan(grown);
    expect(grown - before).toBeGreaterThan(0);
  });
});
