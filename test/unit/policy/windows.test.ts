import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  cronProblem,
  currentWindow,
  isInsideWindow,
  nextWindowStart,
  timezoneProblem,
  type Window,
  windowDecision,
} from '../../../src/policy/renewal.ts';
import { windowsDecision } from '../../../src/policy/windows.ts';

const M = 60_000;
const H = 60 * M;
const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

describe('nextWindowStart', () => {
  it('defaults to UTC', () => {
    const w: Window = { cron: '0 2 * * 6', durationMs: H };
    expect(iso(nextWindowStart(w, at('2026-03-03T12:00:00Z')))).toBe('2026-03-07T02:00:00.000Z');
    expect(iso(nextWindowStart(w, at('2026-03-07T02:00:00Z')))).toBe('2026-03-14T02:00:00.000Z');
  });

  it('is strictly after the given instant, also within the same second', () => {
    const w: Window = { cron: '* * * * *', durationMs: M };
    expect(iso(nextWindowStart(w, at('2026-05-01T10:00:00.500Z')))).toBe('2026-05-01T10:01:00.000Z');
    expect(iso(nextWindowStart(w, at('2026-05-01T09:59:59.999Z')))).toBe('2026-05-01T10:00:00.000Z');
  });

  it('accepts presets', () => {
    expect(iso(nextWindowStart({ cron: '@daily', durationMs: H }, at('2026-05-01T10:00:00Z')))).toBe(
      '2026-05-02T00:00:00.000Z',
    );
  });

  it('returns null for a window that never starts', () => {
    expect(nextWindowStart({ cron: '0 0 30 2 *', durationMs: H }, at('2026-05-01T10:00:00Z'))).toBeNull();
  });

  describe('Europe/Berlin', () => {
    const w: Window = { cron: '30 2 * * *', durationMs: H, timezone: 'Europe/Berlin' };

    it('starts a window at a skipped wall time (spring forward) right after the gap, once', () => {
      // 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist that day.
      expect(iso(nextWindowStart(w, at('2026-03-28T12:00:00Z')))).toBe('2026-03-29T01:00:00.000Z'); // 03:00 CEST
      expect(iso(nextWindowStart(w, at('2026-03-29T01:00:00Z')))).toBe('2026-03-30T00:30:00.000Z'); // 02:30 CEST
    });

    it('starts a window at a repeated wall time (fall back) at its first occurrence only', () => {
      // 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens at 00:30Z and again at 01:30Z.
      expect(iso(nextWindowStart(w, at('2026-10-24T12:00:00Z')))).toBe('2026-10-25T00:30:00.000Z');
      expect(iso(nextWindowStart(w, at('2026-10-25T00:45:00Z')))).toBe('2026-10-26T01:30:00.000Z');
      expect(iso(nextWindowStart(w, at('2026-10-25T01:10:00Z')))).toBe('2026-10-26T01:30:00.000Z');
    });

    it('handles a frequent window through the gap', () => {
      const often: Window = { cron: '*/15 * * * *', durationMs: 5 * M, timezone: 'Europe/Berlin' };
      expect(iso(nextWindowStart(often, at('2026-03-29T00:50:00Z')))).toBe('2026-03-29T01:00:00.000Z');
      expect(iso(nextWindowStart(often, at('2026-03-29T01:00:00Z')))).toBe('2026-03-29T01:15:00.000Z');
    });
  });

  describe('America/New_York', () => {
    it('starts a window at a skipped wall time right after the gap', () => {
      // 2026-03-08 02:00 EST -> 03:00 EDT.
      const w: Window = { cron: '30 2 * * *', durationMs: H, timezone: 'America/New_York' };
      expect(iso(nextWindowStart(w, at('2026-03-07T12:00:00Z')))).toBe('2026-03-08T07:00:00.000Z'); // 03:00 EDT
      expect(iso(nextWindowStart(w, at('2026-03-08T07:00:00Z')))).toBe('2026-03-09T06:30:00.000Z'); // 02:30 EDT
    });

    it('does not start a window twice in the repeated hour', () => {
      // 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens at 05:30Z and again at 06:30Z.
      const w: Window = { cron: '30 1 * * *', durationMs: H, timezone: 'America/New_York' };
      expect(iso(nextWindowStart(w, at('2026-10-31T12:00:00Z')))).toBe('2026-11-01T05:30:00.000Z');
      expect(iso(nextWindowStart(w, at('2026-11-01T05:45:00Z')))).toBe('2026-11-02T06:30:00.000Z');
      expect(iso(nextWindowStart(w, at('2026-11-01T06:10:00Z')))).toBe('2026-11-02T06:30:00.000Z');
      const often: Window = { cron: '*/15 * * * *', durationMs: 5 * M, timezone: 'America/New_York' };
      expect(iso(nextWindowStart(often, at('2026-11-01T05:50:00Z')))).toBe('2026-11-01T07:00:00.000Z');
      expect(iso(nextWindowStart(often, at('2026-11-01T06:10:00Z')))).toBe('2026-11-01T07:00:00.000Z');
    });

    it('keeps a window open across the fall-back hour for its real length', () => {
      // Starts 01:00 EDT (05:00Z), lasts 2h of real time: until 07:00Z (02:00 EST).
      const w: Window = { cron: '0 1 * * *', durationMs: 2 * H, timezone: 'America/New_York' };
      expect(currentWindow(w, at('2026-11-01T06:30:00Z'))).toEqual({
        start: at('2026-11-01T05:00:00Z'),
        end: at('2026-11-01T07:00:00Z'),
      });
      expect(isInsideWindow(w, at('2026-11-01T07:00:00Z'))).toBe(false);
    });
  });

  describe('Australia/Sydney', () => {
    it('starts a skipped wall time at the end of the gap even where the library shifts past it', () => {
      // 2028-10-01 02:00 AEST -> 03:00 AEDT (16:00Z): 02:45 does not exist that day.
      const w: Window = { cron: '45 2 * * *', durationMs: H, timezone: 'Australia/Sydney' };
      expect(iso(nextWindowStart(w, at('2028-09-30T12:00:00Z')))).toBe('2028-09-30T16:00:00.000Z');
      expect(iso(nextWindowStart(w, at('2028-09-30T16:00:00Z')))).toBe('2028-10-01T15:45:00.000Z');
    });
  });

  describe('Australia/Lord_Howe (30-minute DST)', () => {
    it('handles the half-hour gap and the half-hour repeat', () => {
      // 2026-10-04 02:00 LHST -> 02:30 LHDT (15:30Z); 2026-04-05 02:00 LHDT -> 01:30 LHST (15:00Z).
      const at230: Window = { cron: '30 2 * * *', durationMs: H, timezone: 'Australia/Lord_Howe' };
      const at215: Window = { cron: '15 2 * * *', durationMs: H, timezone: 'Australia/Lord_Howe' };
      const at145: Window = { cron: '45 1 * * *', durationMs: H, timezone: 'Australia/Lord_Howe' };
      expect(iso(nextWindowStart(at230, at('2026-10-03T12:00:00Z')))).toBe('2026-10-03T15:30:00.000Z');
      expect(iso(nextWindowStart(at215, at('2026-10-03T12:00:00Z')))).toBe('2026-10-03T15:30:00.000Z');
      expect(iso(nextWindowStart(at145, at('2026-04-04T12:00:00Z')))).toBe('2026-04-04T14:45:00.000Z');
      expect(iso(nextWindowStart(at145, at('2026-04-04T14:50:00Z')))).toBe('2026-04-05T15:15:00.000Z');
    });
  });

  const zones = [
    'UTC',
    'Europe/Berlin',
    'America/New_York',
    'Asia/Kolkata',
    'Australia/Sydney',
    'Australia/Lord_Howe',
  ];
  const crons = ['30 2 * * *', '0 3 * * 0', '*/15 * * * *', '0 1-3 * * *', '45 2 * 3,10,11 *', '@hourly'];
  // Instants clustered around the 2026 DST transitions (plus a wide background range).
  const transitions = [
    '2026-03-08T07:00:00Z',
    '2026-03-29T01:00:00Z',
    '2026-04-04T15:00:00Z',
    '2026-04-04T16:00:00Z',
    '2026-10-03T15:30:00Z',
    '2026-10-03T16:00:00Z',
    '2026-10-25T01:00:00Z',
    '2026-11-01T06:00:00Z',
  ].map(at);
  const instant = fc.oneof(
    fc.tuple(fc.constantFrom(...transitions), fc.integer({ min: -6 * H, max: 6 * H })).map(([t, d]) => t + d),
    fc.integer({ min: at('2025-01-01T00:00:00Z'), max: at('2030-01-01T00:00:00Z') }),
  );
  const window = fc
    .record({ timezone: fc.constantFrom(...zones), cron: fc.constantFrom(...crons) })
    .map((w): Window => ({ ...w, durationMs: H }));

  it('always moves forward, and a start is found again from just before it', () => {
    fc.assert(
      fc.property(window, instant, (w, t) => {
        const next = nextWindowStart(w, t);
        expect(next).not.toBeNull();
        expect(next!).toBeGreaterThan(t);
        expect(next! - t).toBeLessThanOrEqual(200 * 24 * H); // the sparsest cron above: March, October, November
        expect(nextWindowStart(w, next! - 1)).toBe(next);
      }),
      { numRuns: 400 },
    );
  });

  it('is monotonic: a later instant never gets an earlier start', () => {
    fc.assert(
      fc.property(window, instant, fc.integer({ min: 0, max: 4 * H }), (w, t, delta) => {
        expect(nextWindowStart(w, t + delta)!).toBeGreaterThanOrEqual(nextWindowStart(w, t)!);
      }),
      { numRuns: 400 },
    );
  });

  it('agrees with windowDecision', () => {
    fc.assert(
      fc.property(window, instant, (w, t) => {
        const state = windowDecision(w, t);
        if (state.inside) {
          expect(state.start).toBeLessThanOrEqual(t);
          expect(t).toBeLessThan(state.end);
          expect(state.end - state.start).toBe(w.durationMs);
        } else {
          expect(state.nextStart).toBe(nextWindowStart(w, t));
          expect(isInsideWindow(w, t)).toBe(false);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('currentWindow', () => {
  const w: Window = { cron: '0 2 * * 6', durationMs: 2 * H };

  it('covers [start, start + duration)', () => {
    expect(currentWindow(w, at('2026-03-07T01:59:59Z'))).toBeNull();
    expect(currentWindow(w, at('2026-03-07T02:00:00Z'))).toEqual({
      start: at('2026-03-07T02:00:00Z'),
      end: at('2026-03-07T04:00:00Z'),
    });
    expect(currentWindow(w, at('2026-03-07T04:00:00Z'))).toBeNull();
  });

  it('takes the most recent start when windows overlap', () => {
    const hourly: Window = { cron: '0 * * * *', durationMs: 3 * H };
    expect(currentWindow(hourly, at('2026-03-07T10:30:00Z'))).toEqual({
      start: at('2026-03-07T10:00:00Z'),
      end: at('2026-03-07T13:00:00Z'),
    });
  });
});

describe('validation helpers', () => {
  it('accepts 5-field expressions and presets', () => {
    expect(cronProblem('0 2 * * 6')).toBeUndefined();
    expect(cronProblem('0 22 * * mon-fri')).toBeUndefined();
    expect(cronProblem('@weekly')).toBeUndefined();
  });

  it.each([
    ['', 'is empty'],
    ['0 2 * *', 'has 4 fields; use 5'],
    ['0 0 2 * * 6', 'has 6 fields; use 5'],
    ['61 2 * * *', 'is not a valid cron expression'],
    ['0 2 * * xyz', 'is not a valid cron expression'],
    ['@secondly', 'is not a supported preset'],
  ])('rejects %j', (expression, message) => {
    expect(cronProblem(expression)).toContain(message);
  });

  it('validates IANA zones', () => {
    expect(timezoneProblem('Europe/Berlin')).toBeUndefined();
    expect(timezoneProblem('UTC')).toBeUndefined();
    expect(timezoneProblem('Mars/Olympus_Mons')).toContain('is not an IANA time zone name');
    expect(timezoneProblem('')).toContain('is not an IANA time zone name');
  });

  it('refuses to compute with an invalid window', () => {
    expect(() => nextWindowStart({ cron: 'nope', durationMs: H }, 0)).toThrow('window');
  });
});

describe('windowsDecision (Reissue maintenance windows)', () => {
  const nightly: Window = { cron: '0 2 * * *', durationMs: 2 * H }; // UTC
  const saturday: Window = { cron: '0 12 * * 6', durationMs: 6 * H, timezone: 'Europe/Berlin' };

  it('no windows: always inside', () => {
    expect(windowsDecision([], at('2026-03-04T10:00:00Z')).inside).toBe(true);
  });

  it('inside any window; outside all, the earliest next start (UTC by default)', () => {
    const inside = windowsDecision([nightly, saturday], at('2026-03-04T03:00:00Z'));
    expect(inside).toEqual({
      inside: true,
      start: at('2026-03-04T02:00:00Z'),
      end: at('2026-03-04T04:00:00Z'),
    });
    // Friday 10:00 UTC: the nightly window opens before Saturday noon in Berlin.
    expect(windowsDecision([saturday, nightly], at('2026-03-06T10:00:00Z'))).toEqual({
      inside: false,
      nextStart: at('2026-03-07T02:00:00Z'),
    });
    // Saturday 11:30 UTC = 12:30 in Berlin (CET): inside the Saturday window only.
    expect(windowsDecision([nightly, saturday], at('2026-03-07T11:30:00Z'))).toEqual({
      inside: true,
      start: at('2026-03-07T11:00:00Z'),
      end: at('2026-03-07T17:00:00Z'),
    });
  });

  it('follows the zone across DST: Berlin noon is 11:00 UTC in winter, 10:00 UTC in summer', () => {
    // 2026-03-29: Europe/Berlin moves to CEST.
    expect(windowsDecision([saturday], at('2026-03-28T10:30:00Z'))).toEqual({
      inside: false,
      nextStart: at('2026-03-28T11:00:00Z'),
    });
    expect(windowsDecision([saturday], at('2026-04-04T09:00:00Z'))).toEqual({
      inside: false,
      nextStart: at('2026-04-04T10:00:00Z'),
    });
    // A window at 02:30 on the spring-forward night opens at the gap's end (03:00 CEST = 01:00 UTC).
    const gap: Window = { cron: '30 2 29 3 *', durationMs: H, timezone: 'Europe/Berlin' };
    expect(windowsDecision([gap], at('2026-03-29T00:00:00Z'))).toEqual({
      inside: false,
      nextStart: at('2026-03-29T01:00:00Z'),
    });
  });

  it('overlapping windows: open until the latest end among those open', () => {
    const early: Window = { cron: '0 1 * * *', durationMs: 2 * H };
    expect(windowsDecision([early, nightly], at('2026-03-04T02:30:00Z'))).toMatchObject({
      inside: true,
      end: at('2026-03-04T04:00:00Z'),
    });
  });
});
