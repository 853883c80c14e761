import { describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/clock.ts';
import { MAX_TIMER_DELAY_MS, TimerQueue } from '../../../src/kube/timer-queue.ts';
import { FakeClock } from './fake-clock.ts';

const DAY = 86_400_000;

function setup() {
  const clock = new FakeClock();
  const fired: { key: string; at: number }[] = [];
  const q = new TimerQueue<string>((key) => fired.push({ key, at: clock.now() }), { clock });
  return { clock, fired, q, t0: clock.now() };
}

describe('TimerQueue', () => {
  it('fires keys in time order, each at its due time, ties in scheduling order', () => {
    const { clock, fired, q, t0 } = setup();
    q.schedule('c', t0 + 300);
    q.schedule('a', t0 + 100);
    q.schedule('b', t0 + 200);
    q.schedule('b2', t0 + 200);
    expect(q.size).toBe(4);
    expect(q.nextDue()).toBe(t0 + 100);
    clock.advance(1000);
    expect(fired).toEqual([
      { key: 'a', at: t0 + 100 },
      { key: 'b', at: t0 + 200 },
      { key: 'b2', at: t0 + 200 },
      { key: 'c', at: t0 + 300 },
    ]);
    expect(q.size).toBe(0);
    expect(q.nextDue()).toBeUndefined();
    expect(clock.pendingTimers).toBe(0);
  });

  it('fires a time already past on the next tick', () => {
    const { clock, fired, q, t0 } = setup();
    q.schedule('late', t0 - 5000);
    expect(fired).toEqual([]);
    clock.advance(0);
    expect(fired.map((f) => f.key)).toEqual(['late']);
  });

  it('reschedules a key earlier and later; the old time never fires', () => {
    const { clock, fired, q, t0 } = setup();
    q.schedule('x', t0 + 1000);
    q.schedule('y', t0 + 2000);
    q.schedule('x', t0 + 3000); // later
    q.schedule('y', t0 + 500); // earlier
    expect(q.size).toBe(2);
    expect(q.dueAt('x')).toBe(t0 + 3000);
    clock.advance(5000);
    expect(fired).toEqual([
      { key: 'y', at: t0 + 500 },
      { key: 'x', at: t0 + 3000 },
    ]);
  });

  it('cancel removes a key and disarms when nothing is left', () => {
    const { clock, fired, q, t0 } = setup();
    q.schedule('a', t0 + 100);
    q.schedule('b', t0 + 200);
    expect(q.cancel('a')).toBe(true);
    expect(q.cancel('a')).toBe(false);
    expect(q.has('a')).toBe(false);
    expect(q.nextDue()).toBe(t0 + 200);
    expect(q.cancel('b')).toBe(true);
    expect(clock.pendingTimers).toBe(0);
    clock.advance(1000);
    expect(fired).toEqual([]);
  });

  it('keeps exactly one timer armed for 10,000 keys and fires them all in order', () => {
    const { clock, fired, q, t0 } = setup();
    const n = 10_000;
    // A scrambled but deterministic order of due times.
    for (let i = 0; i < n; i++) q.schedule(`k${i}`, t0 + 1 + ((i * 7919) % n) * 10);
    expect(clock.pendingTimers).toBe(1);
    // Moving half of them still needs one timer.
    for (let i = 0; i < n; i += 2) q.schedule(`k${i}`, t0 + 1 + (n - 1 - ((i * 7919) % n)) * 10);
    expect(clock.pendingTimers).toBe(1);
    expect(q.size).toBe(n);
    clock.advance(n * 10 + 10);
    expect(fired).toHaveLength(n);
    for (let i = 1; i < n; i++) expect(fired[i]!.at).toBeGreaterThanOrEqual(fired[i - 1]!.at);
    expect(clock.pendingTimers).toBe(0);
  });

  it('waits past the Node timer cap by re-arming, without firing early', () => {
    const { clock, fired, q, t0 } = setup();
    q.schedule('yearly', t0 + 365 * DAY);
    expect(clock.requestedDelays.at(-1)).toBe(MAX_TIMER_DELAY_MS);
    clock.advance(364 * DAY);
    expect(fired).toEqual([]);
    expect(clock.pendingTimers).toBe(1);
    clock.advance(DAY);
    expect(fired).toEqual([{ key: 'yearly', at: t0 + 365 * DAY }]);
    expect(clock.requestedDelays.every((d) => d <= MAX_TIMER_DELAY_MS)).toBe(true);
  });

  it('re-arms when a timer wakes early', () => {
    const fake = new FakeClock();
    // A clock whose timers fire halfway, as after a wall-clock jump back.
    const early: Clock = {
      now: () => fake.now(),
      setTimeout: (fn, ms) => fake.setTimeout(fn, Math.ceil(ms / 2)),
      clearTimeout: (h) => fake.clearTimeout(h),
    };
    const fired: number[] = [];
    const q = new TimerQueue<string>(() => fired.push(fake.now()), { clock: early });
    const due = fake.now() + 1000;
    q.schedule('k', due);
    fake.advance(999);
    expect(fired).toEqual([]);
    fake.advance(10);
    expect(fired).toEqual([due]);
  });

  it('a key that reschedules itself from onDue waits for the next tick instead of spinning', () => {
    const clock = new FakeClock();
    let calls = 0;
    const q = new TimerQueue<string>(
      (key) => {
        calls++;
        if (calls < 3) q.schedule(key, clock.now()); // due "now" again
      },
      { clock },
    );
    q.schedule('k', clock.now() + 10);
    clock.advance(10);
    expect(calls).toBe(3);
    expect(q.size).toBe(0);
  });

  it('a throwing onDue does not stop the others and goes to onError', () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const errors: string[] = [];
    const q = new TimerQueue<string>(
      (key) => {
        if (key === 'bad') throw new Error('boom');
        fired.push(key);
      },
      { clock, onError: (_err, key) => errors.push(key) },
    );
    q.schedule('a', clock.now() + 1);
    q.schedule('bad', clock.now() + 1);
    q.schedule('c', clock.now() + 1);
    q.schedule('later', clock.now() + 50);
    clock.advance(1);
    expect(fired).toEqual(['a', 'c']);
    expect(errors).toEqual(['bad']);
    expect(clock.pendingTimers).toBe(1);
  });

  it('rethrows onDue errors after the batch when there is no onError, staying armed', () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    const q = new TimerQueue<string>(
      (key) => {
        fired.push(key);
        throw new Error(`boom ${key}`);
      },
      { clock },
    );
    q.schedule('a', clock.now() + 1);
    q.schedule('b', clock.now() + 1);
    q.schedule('c', clock.now() + 99);
    expect(() => clock.advance(1)).toThrow(AggregateError);
    expect(fired).toEqual(['a', 'b']);
    expect(q.size).toBe(1);
    expect(clock.pendingTimers).toBe(1);
  });

  it('bounds memory under many reschedules of the same keys', () => {
    const { clock, q, t0 } = setup();
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 50; i++) q.schedule(`k${i}`, t0 + 1000 + ((round * 31 + i * 17) % 997));
    }
    expect(q.size).toBe(50);
    expect(clock.pendingTimers).toBe(1);
    expect(q.nextDue()).toBeGreaterThan(t0);
    q.clear();
    expect(clock.pendingTimers).toBe(0);
  });

  it('rejects non-finite due times', () => {
    const { q } = setup();
    expect(() => q.schedule('k', Number.NaN)).toThrow(RangeError);
    expect(() => q.schedule('k', Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});
