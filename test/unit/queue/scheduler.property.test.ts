import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TimerQueue } from '../../../src/kube/timer-queue.ts';
import { FakeClock } from './fake-clock.ts';

type Op =
  | { kind: 'schedule'; key: number; offset: number }
  | { kind: 'cancel'; key: number }
  | { kind: 'advance'; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('schedule'),
      key: fc.nat(15),
      offset: fc.integer({ min: -50, max: 500 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cancel'), key: fc.nat(15) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance'), ms: fc.nat(300) }) },
) as fc.Arbitrary<Op>;

/** The obvious model: an array of (at, seq, key), sorted on every fire. */
class Model {
  entries: { at: number; seq: number; key: number }[] = [];
  seq = 0;
  schedule(key: number, at: number) {
    this.cancel(key);
    this.entries.push({ at, seq: ++this.seq, key });
  }
  cancel(key: number) {
    this.entries = this.entries.filter((e) => e.key !== key);
  }
  fireUntil(now: number): { key: number; at: number }[] {
    this.entries.sort((a, b) => a.at - b.at || a.seq - b.seq);
    const due = this.entries.filter((e) => e.at <= now);
    this.entries = this.entries.filter((e) => e.at > now);
    return due.map((e) => ({ key: e.key, at: e.at }));
  }
}

describe('TimerQueue (property)', () => {
  it('fires the same keys in the same order as a sorted-array model', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const clock = new FakeClock(1_000_000);
        const fired: { key: number; at: number }[] = [];
        const q = new TimerQueue<number>((key) => fired.push({ key, at: clock.now() }), { clock });
        const model = new Model();
        const expected: { key: number; at: number }[] = [];
        for (const o of ops) {
          if (o.kind === 'schedule') {
            q.schedule(o.key, clock.now() + o.offset);
            model.schedule(o.key, clock.now() + o.offset);
          } else if (o.kind === 'cancel') {
            expect(q.cancel(o.key)).toBe(model.entries.some((e) => e.key === o.key));
            model.cancel(o.key);
          } else {
            const from = clock.now();
            clock.advance(o.ms);
            // Each key fires at its due time, or at the start of the advance if that was already past.
            for (const e of model.fireUntil(clock.now()))
              expected.push({ key: e.key, at: Math.max(e.at, from) });
          }
          expect(q.size).toBe(model.entries.length);
          expect(clock.pendingTimers).toBe(model.entries.length > 0 ? 1 : 0);
          const min = model.entries.reduce((m, e) => Math.min(m, e.at), Number.POSITIVE_INFINITY);
          expect(q.nextDue()).toBe(model.entries.length > 0 ? min : undefined);
        }
        expect(fired).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });
});
