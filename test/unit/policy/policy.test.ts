import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  computeRenewalTime,
  DEFAULT_RENEW_BEFORE,
  decideRenewal,
  emergencyPoint,
  formatDuration,
  PolicyInputError,
  parseDuration,
  parseRenewBefore,
  type Window,
} from '../../../src/policy/renewal.ts';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;
const at = (iso: string) => Date.parse(iso);

describe('parseDuration', () => {
  it.each([
    ['720h', 720 * H],
    ['1h30m', 90 * M],
    ['90s', 90 * S],
    ['45m', 45 * M],
    ['30d', 30 * D],
    ['1.5h', 90 * M],
    ['1d12h', 36 * H],
    ['250ms', 250],
    [' 10h ', 10 * H],
    ['3650d', 3650 * D],
  ])('%s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    '',
    'abc',
    '10',
    'h',
    '1x',
    '1h 30m',
    '-5m',
    '0',
    '0s',
    '0h0m',
    '3651d',
    '1e3s',
    '1.h',
    'Infinityh',
  ])('rejects %j', (text) => {
    expect(() => parseDuration(text)).toThrow(PolicyInputError);
  });

  it('explains the problem', () => {
    expect(() => parseDuration('-5m')).toThrow('"-5m" is negative');
    expect(() => parseDuration('0s')).toThrow('"0s" must be greater than zero');
    expect(() => parseDuration('11y')).toThrow('"11y" is not a duration; use a number and a unit');
    expect(() => parseDuration('4000d')).toThrow('"4000d" is too long; the maximum is 3650d');
  });

  it('accepts zero only when asked to', () => {
    expect(parseDuration('0', { allowZero: true })).toBe(0);
    expect(parseDuration('0s', { allowZero: true })).toBe(0);
  });

  it('honours a smaller maximum', () => {
    expect(() => parseDuration('2d', { maxMs: D })).toThrow('the maximum is 1d');
  });

  it('round-trips through formatDuration', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3650 * D }), (ms) => {
        expect(parseDuration(formatDuration(ms))).toBe(ms);
      }),
    );
  });
});

describe('parseRenewBefore', () => {
  it('reads percentages of the lifetime', () => {
    expect(parseRenewBefore('33%')).toEqual({ kind: 'percent', fraction: 0.33 });
    expect(parseRenewBefore('12.5%')).toEqual({ kind: 'percent', fraction: 0.125 });
    expect(parseRenewBefore('0.5%')).toEqual({ kind: 'percent', fraction: 0.005 });
  });

  it('reads durations', () => {
    expect(parseRenewBefore('720h')).toEqual({ kind: 'duration', ms: 720 * H });
    expect(parseRenewBefore('30d')).toEqual({ kind: 'duration', ms: 30 * D });
  });

  it.each(['0%', '100%', '150%', '-1%', '%', '33 %', 'abc', '0', '33.%'])('rejects %j', (text) => {
    expect(() => parseRenewBefore(text)).toThrow(PolicyInputError);
  });

  it('suggests a percentage when a duration is wrong', () => {
    expect(() => parseRenewBefore('soon')).toThrow('or a percentage of the lifetime such as 33%');
  });
});

describe('computeRenewalTime', () => {
  const notBefore = at('2026-01-01T00:00:00Z');
  const notAfter = notBefore + 90 * D;

  it('renews renewBefore ahead of notAfter', () => {
    expect(computeRenewalTime({ notBefore, notAfter, renewBefore: { kind: 'duration', ms: 30 * D } })).toBe(
      notAfter - 30 * D,
    );
  });

  it('takes a percentage of the lifetime', () => {
    expect(computeRenewalTime({ notBefore, notAfter, renewBefore: { kind: 'percent', fraction: 0.1 } })).toBe(
      notAfter - 9 * D,
    );
  });

  it('defaults to one third of the lifetime', () => {
    expect(DEFAULT_RENEW_BEFORE).toEqual({ kind: 'percent', fraction: 1 / 3 });
    expect(computeRenewalTime({ notBefore, notAfter })).toBe(notAfter - 30 * D);
  });

  it('falls back to one third remaining when renewBefore is not shorter than the lifetime', () => {
    const day = { notBefore, notAfter: notBefore + 24 * H };
    expect(computeRenewalTime({ ...day, renewBefore: { kind: 'duration', ms: 720 * H } })).toBe(
      notBefore + 16 * H,
    );
    expect(computeRenewalTime({ ...day, renewBefore: { kind: 'duration', ms: 24 * H } })).toBe(
      notBefore + 16 * H,
    );
  });

  it('returns notAfter for a degenerate validity', () => {
    expect(computeRenewalTime({ notBefore: notAfter, notAfter })).toBe(notAfter);
  });

  it('always lies within [notBefore, notAfter]', () => {
    const renewBefore = fc.oneof(
      fc.record({ kind: fc.constant('duration' as const), ms: fc.integer({ min: 1, max: 3650 * D }) }),
      fc.record({
        kind: fc.constant('percent' as const),
        fraction: fc.double({ min: 0.0001, max: 0.9999, noNaN: true }),
      }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 41 }),
        fc.integer({ min: 1, max: 3650 * D }),
        fc.option(renewBefore, { nil: undefined }),
        (start, lifetime, rb) => {
          const t = computeRenewalTime({ notBefore: start, notAfter: start + lifetime, renewBefore: rb });
          expect(t).toBeGreaterThanOrEqual(start);
          expect(t).toBeLessThanOrEqual(start + lifetime);
          expect(Number.isInteger(t)).toBe(true);
        },
      ),
    );
  });
});

describe('emergencyPoint', () => {
  it('is 24h before notAfter for long certificates and lifetime/10 for short ones', () => {
    const notBefore = at('2026-01-01T00:00:00Z');
    expect(emergencyPoint({ notBefore, notAfter: notBefore + 90 * D })).toBe(notBefore + 89 * D);
    expect(emergencyPoint({ notBefore, notAfter: notBefore + 10 * H })).toBe(notBefore + 9 * H);
  });
});

describe('decideRenewal', () => {
  const notBefore = at('2026-01-01T00:00:00Z');
  const cert = { notBefore, notAfter: notBefore + 90 * D }; // renewal at day 60, emergency at day 89
  // Saturdays 02:00-04:00 UTC.
  const window: Window = { cron: '0 2 * * 6', durationMs: 2 * H };

  it('renews an unparseable certificate at once', () => {
    const now = at('2026-02-01T00:00:00Z');
    expect(decideRenewal({ cert: null, now })).toEqual({
      action: 'renew-now',
      at: now,
      reason: 'unparseable',
    });
    expect(decideRenewal({ cert: { notBefore: 5, notAfter: 5 }, now })).toMatchObject({
      reason: 'unparseable',
    });
  });

  it('renews an expired certificate at once, window or not', () => {
    const now = cert.notAfter + 1;
    expect(decideRenewal({ cert, now, window })).toEqual({ action: 'renew-now', at: now, reason: 'expired' });
  });

  it('waits until the renewal time', () => {
    const now = notBefore + D;
    expect(decideRenewal({ cert, now })).toEqual({
      action: 'wait',
      at: notBefore + 60 * D,
      reason: 'not-due',
    });
    expect(decideRenewal({ cert, now, renewBefore: { kind: 'duration', ms: 10 * D } })).toEqual({
      action: 'wait',
      at: notBefore + 80 * D,
      reason: 'not-due',
    });
  });

  it('renews a due certificate at once without a window', () => {
    const now = notBefore + 61 * D;
    expect(decideRenewal({ cert, now })).toEqual({ action: 'renew-now', at: now, reason: 'due' });
  });

  it('waits for the next window start', () => {
    const now = at('2026-03-03T12:00:00Z'); // Tuesday, day 61
    expect(decideRenewal({ cert, now, window })).toEqual({
      action: 'wait',
      at: at('2026-03-07T02:00:00Z'),
      reason: 'window-wait',
    });
  });

  it('renews inside a window', () => {
    for (const now of [at('2026-03-07T02:00:00Z'), at('2026-03-07T03:59:59.999Z')]) {
      expect(decideRenewal({ cert, now, window })).toEqual({
        action: 'renew-now',
        at: now,
        reason: 'inside-window',
      });
    }
    expect(decideRenewal({ cert, now: at('2026-03-07T04:00:00Z'), window })).toMatchObject({
      reason: 'window-wait',
      at: at('2026-03-14T02:00:00Z'),
    });
  });

  it('never waits past the emergency point', () => {
    const now = at('2026-03-29T12:00:00Z'); // Sunday, day 87; emergency at day 89 (2026-03-31), next window 04-04
    expect(decideRenewal({ cert, now, window })).toEqual({
      action: 'wait',
      at: emergencyPoint(cert),
      reason: 'window-wait',
    });
  });

  it('rotates now once less than min(lifetime/10, 24h) remains', () => {
    const now = cert.notAfter - 23 * H;
    expect(decideRenewal({ cert, now, window })).toEqual({
      action: 'renew-now',
      at: now,
      reason: 'emergency',
    });
    const short = { notBefore, notAfter: notBefore + 10 * H }; // emergency with 1h left
    expect(decideRenewal({ cert: short, now: short.notAfter - 61 * M, window })).toMatchObject({
      reason: 'window-wait',
    });
    expect(decideRenewal({ cert: short, now: short.notAfter - 59 * M, window })).toMatchObject({
      action: 'renew-now',
      reason: 'emergency',
    });
  });

  it('waits until the emergency point when the window never comes', () => {
    const never: Window = { cron: '0 0 30 2 *', durationMs: H };
    const now = notBefore + 61 * D;
    expect(decideRenewal({ cert, now, window: never })).toEqual({
      action: 'wait',
      at: emergencyPoint(cert),
      reason: 'window-wait',
    });
  });

  const windows = fc.constantFrom<Window>(
    { cron: '0 2 * * 6', durationMs: 2 * H },
    { cron: '30 2 * * *', durationMs: 30 * M, timezone: 'Europe/Berlin' },
    { cron: '*/20 * * * *', durationMs: 5 * M, timezone: 'America/New_York' },
    { cron: '0 9 1 * *', durationMs: 8 * H, timezone: 'Asia/Kolkata' },
  );
  const scenario = fc.record({
    notBefore: fc.integer({ min: at('2024-01-01T00:00:00Z'), max: at('2029-01-01T00:00:00Z') }),
    lifetime: fc.integer({ min: H, max: 400 * D }),
    offset: fc.double({ min: -0.1, max: 1.2, noNaN: true }),
    renewBefore: fc.option(
      fc.oneof(
        fc.record({ kind: fc.constant('duration' as const), ms: fc.integer({ min: M, max: 500 * D }) }),
        fc.record({
          kind: fc.constant('percent' as const),
          fraction: fc.double({ min: 0.01, max: 0.99, noNaN: true }),
        }),
      ),
      { nil: undefined },
    ),
    window: fc.option(windows, { nil: undefined }),
  });

  it('never schedules a wait in the past, and renew-now means now', () => {
    fc.assert(
      fc.property(scenario, ({ notBefore: nb, lifetime, offset, renewBefore, window: w }) => {
        const c = { notBefore: nb, notAfter: nb + lifetime };
        const now = Math.round(nb + lifetime * offset);
        const d = decideRenewal({ cert: c, now, renewBefore, window: w });
        if (d.action === 'wait') {
          expect(d.at).toBeGreaterThan(now);
          expect(d.at).toBeLessThanOrEqual(c.notAfter);
        } else {
          expect(d.at).toBe(now);
        }
        if (d.reason === 'window-wait') {
          // At the chosen instant the certificate is renewed: the window is open or time is up.
          const then = decideRenewal({ cert: c, now: d.at, renewBefore, window: w });
          expect(then.action).toBe('renew-now');
          expect(['inside-window', 'emergency']).toContain(then.reason);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('window waits move forward as time does', () => {
    fc.assert(
      fc.property(
        scenario,
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        ({ notBefore: nb, lifetime, renewBefore, window: w }, a, b) => {
          const c = { notBefore: nb, notAfter: nb + lifetime };
          const [t1, t2] = [
            Math.round(nb + lifetime * Math.min(a, b)),
            Math.round(nb + lifetime * Math.max(a, b)),
          ];
          const d1 = decideRenewal({ cert: c, now: t1, renewBefore, window: w });
          const d2 = decideRenewal({ cert: c, now: t2, renewBefore, window: w });
          if (d1.reason === 'window-wait' && d2.reason === 'window-wait')
            expect(d1.at).toBeLessThanOrEqual(d2.at);
          if (d1.action === 'wait' && t2 < d1.at && d1.reason === d2.reason) expect(d2.at).toBe(d1.at);
        },
      ),
      { numRuns: 300 },
    );
  });
});
