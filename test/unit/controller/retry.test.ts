import { describe, expect, it } from 'vitest';
import {
  failureFromAnnotations,
  RetryStates,
  renewalDelayMs,
  seededUnit,
  transientDelayMs,
} from '../../../src/controller/retry.ts';
import { Backoff, RENEWAL_BACKOFF } from '../../../src/kube/backoff.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const backoff = { baseMs: 5 * MIN, capMs: 32 * HOUR };

describe('renewal backoff timings', () => {
  it('are exactly those of the decorrelated Backoff (5 min, ×3, 32 h cap) for the same draws', () => {
    for (const seed of ['a', 'b', 'uid-1234']) {
      const draws = Array.from({ length: 30 }, (_, i) => seededUnit(seed, i + 1));
      let i = 0;
      const reference = new Backoff<string>({ ...RENEWAL_BACKOFF, random: () => draws[i++] ?? 0 });
      for (let n = 1; n <= 30; n++) {
        expect(renewalDelayMs(backoff, n, (k) => seededUnit(seed, k))).toBe(reference.next('k'));
      }
    }
  });

  it('start at 5 min, never exceed 32 h, and reach the cap region after enough failures', () => {
    const first = renewalDelayMs(backoff, 1, () => 0);
    expect(first).toBe(5 * MIN);
    expect(renewalDelayMs(backoff, 1, () => 0.999999)).toBeLessThan(15 * MIN + 1);
    expect(renewalDelayMs(backoff, 40, () => 0.999999)).toBeLessThanOrEqual(32 * HOUR);
    expect(renewalDelayMs(backoff, 40, () => 0.999999)).toBeGreaterThan(31 * HOUR);
  });

  it('the seeded draw is the same in every process and differs between Secrets', () => {
    expect(seededUnit('x', 3)).toBe(seededUnit('x', 3));
    expect(seededUnit('x', 3)).not.toBe(seededUnit('y', 3));
    expect(seededUnit('x', 3)).toBeGreaterThanOrEqual(0);
    expect(seededUnit('x', 3)).toBeLessThan(1);
  });
});

describe('transient retry timings', () => {
  it('are full jitter under 1 s doubling to 5 min, as the old work-queue backoff', () => {
    const reference = new Backoff<string>({
      baseMs: 1_000,
      capMs: 5 * MIN,
      factor: 2,
      jitter: 'full',
      random: () => 0.999,
    });
    for (let n = 1; n <= 12; n++) expect(transientDelayMs(n, () => 0.999)).toBe(reference.next('k'));
    expect(transientDelayMs(1, () => 0.5)).toBe(500);
    expect(transientDelayMs(30, () => 0.999)).toBeLessThan(5 * MIN);
  });
});

describe('RetryStates', () => {
  it('gates renewals until the backoff has passed; Retry-After is a floor', () => {
    const r = new RetryStates(backoff);
    const now = 1_000_000;
    const { delayMs, failures } = r.renewalFailed('k', 'uid', now, 2 * HOUR);
    expect(failures).toBe(1);
    expect(delayMs).toBe(2 * HOUR);
    expect(r.renewalAllowed('k', now + 2 * HOUR - 1)).toBe(false);
    expect(r.renewalAllowed('k', now + 2 * HOUR)).toBe(true);
    r.succeeded('k');
    expect(r.failures('k')).toBe(0);
    expect(r.size).toBe(0);
  });

  it('an API error does not count as a renewal failure and is cleared when the API answers', () => {
    const r = new RetryStates(backoff, () => 0.5);
    r.renewalFailed('k', 'uid', 0);
    expect(r.transientError('k', 10)).toBe(500);
    expect(r.failures('k')).toBe(1);
    r.reachedApi('k');
    expect(r.get('k')?.transientErrors).toBe(0);
    expect(r.failures('k')).toBe(1);
  });

  it('restores count and wait from failures + last-failure-time, and never lowers its own count', () => {
    const r = new RetryStates(backoff);
    const at = Date.UTC(2030, 0, 1);
    const ann = {
      'cert-rotator.io/failures': '3',
      'status.cert-rotator.io/last-failure-time': new Date(at).toISOString(),
    };
    r.restore('k', 'uid', ann);
    expect(r.failures('k')).toBe(3);
    expect(r.notBefore('k')).toBe(at + renewalDelayMs(backoff, 3, (n) => seededUnit('uid', n)));
    r.renewalFailed('k', 'uid', at + 10 * HOUR);
    r.restore('k', 'uid', ann);
    expect(r.failures('k')).toBe(4);
  });

  it('a Secret renewed since (no failures, later last-renewed) clears the state; garbage is ignored', () => {
    const r = new RetryStates(backoff);
    r.renewalFailed('k', 'uid', Date.UTC(2030, 0, 1, 0, 0, 0, 400));
    r.restore('k', 'uid', { 'cert-rotator.io/last-renewed': '2030-01-01T00:00:00Z' });
    expect(r.failures('k')).toBe(0);
    const bads: Record<string, string>[] = [
      {
        'cert-rotator.io/failures': 'many',
        'status.cert-rotator.io/last-failure-time': '2030-01-01T00:00:00Z',
      },
      { 'cert-rotator.io/failures': '2', 'status.cert-rotator.io/last-failure-time': 'yesterday' },
      { 'cert-rotator.io/failures': '0', 'status.cert-rotator.io/last-failure-time': '2030-01-01T00:00:00Z' },
      { 'cert-rotator.io/failures': '2' },
    ];
    for (const bad of bads) {
      expect(failureFromAnnotations(bad)).toBeUndefined();
    }
  });

  it('next-attempt-time (a Retry-After) lengthens the rebuilt wait, bounded to 31 days; an earlier one changes nothing', () => {
    const at = Date.UTC(2030, 0, 1);
    const base = {
      'cert-rotator.io/failures': '1',
      'status.cert-rotator.io/last-failure-time': new Date(at).toISOString(),
    };
    const seeded = at + renewalDelayMs(backoff, 1, (n) => seededUnit('uid', n));
    const withNext = (ms: number) => {
      const r = new RetryStates(backoff);
      r.restore('k', 'uid', {
        ...base,
        'status.cert-rotator.io/next-attempt-time': new Date(ms).toISOString(),
      });
      return r.notBefore('k');
    };
    expect(withNext(at + 2 * HOUR)).toBe(at + 2 * HOUR);
    expect(withNext(at + 1_000)).toBe(seeded);
    expect(withNext(at + 400 * 86_400_000)).toBe(at + 31 * 86_400_000);
    const r = new RetryStates(backoff);
    r.restore('k', 'uid', { ...base, 'status.cert-rotator.io/next-attempt-time': 'soon' });
    expect(r.notBefore('k')).toBe(seeded);
  });
});
