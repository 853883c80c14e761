import { describe, expect, it } from 'vitest';
import { Backoff, RENEWAL_BACKOFF } from '../../../src/kube/backoff.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('Backoff', () => {
  it('grows by factor per failure up to the cap without jitter', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 10_000, factor: 2, jitter: 'none' });
    expect([1, 2, 3, 4, 5, 6].map(() => b.next('a'))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(b.failures('a')).toBe(6);
  });

  it('keeps keys independent and starts over after reset', () => {
    const b = new Backoff({ baseMs: 1000, capMs: 10_000, factor: 2, jitter: 'none' });
    b.next('a');
    b.next('a');
    expect(b.next('b')).toBe(1000);
    b.reset('a');
    expect(b.failures('a')).toBe(0);
    expect(b.next('a')).toBe(1000);
    expect(b.size).toBe(2);
  });

  it('full jitter draws below the exponential ceiling', () => {
    const draws = [0.5, 0.5, 0.5, 0];
    const b = new Backoff({
      baseMs: 1000,
      capMs: 100_000,
      factor: 2,
      jitter: 'full',
      random: () => draws.shift()!,
    });
    expect([b.next('k'), b.next('k'), b.next('k'), b.next('k')]).toEqual([500, 1000, 2000, 0]);
  });

  it('decorrelated jitter stays within [base, cap] and grows from the previous delay', () => {
    const top = new Backoff({
      baseMs: 1000,
      capMs: 50_000,
      factor: 3,
      jitter: 'decorrelated',
      random: () => 1 - 1e-9,
    });
    const seen = Array.from({ length: 6 }, () => top.next('k'));
    // With the top draw each delay is just under 3x the previous, then pinned at the cap.
    expect(seen.slice(0, 3)).toEqual([2999, 8996, 26_987]);
    expect(seen.slice(3)).toEqual([49_999, 49_999, 49_999]);
    const low = new Backoff({ baseMs: 1000, capMs: 50_000, jitter: 'decorrelated', random: () => 0 });
    expect(Array.from({ length: 5 }, () => low.next('k'))).toEqual([1000, 1000, 1000, 1000, 1000]);
  });

  it('defaults suit renewal failures: 5 min first, never more than 32 h', () => {
    expect(RENEWAL_BACKOFF.baseMs).toBe(5 * MIN);
    expect(RENEWAL_BACKOFF.capMs).toBe(32 * HOUR);
    const b = new Backoff();
    for (let i = 0; i < 200; i++) {
      const d = b.next('k');
      expect(d).toBeGreaterThanOrEqual(5 * MIN);
      expect(d).toBeLessThanOrEqual(32 * HOUR);
    }
    // base·factor^n overflows to Infinity for large n; the cap must absorb it.
    const none = new Backoff({ jitter: 'none' });
    for (let i = 0; i < 2000; i++) none.next('k');
    expect(none.next('k')).toBe(32 * HOUR);
  });

  it('rejects nonsense options', () => {
    expect(() => new Backoff({ baseMs: 0 })).toThrow(RangeError);
    expect(() => new Backoff({ baseMs: 10, capMs: 5 })).toThrow(RangeError);
    expect(() => new Backoff({ factor: 0.5 })).toThrow(RangeError);
  });
});
