import { describe, expect, it } from 'vitest';
import { rolloutGate } from '../../../src/rollout/gate.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const now = Date.UTC(2030, 5, 15, 12, 0, 0); // a Saturday, 12:00 UTC
const nightly = { cron: '0 2 * * *', durationMs: 2 * HOUR };
const always = { cron: '* * * * *', durationMs: HOUR };
const longLived = { notBefore: now - 60 * DAY, notAfter: now + 300 * DAY };

describe('rolloutGate', () => {
  it('restarts at once without a window, and inside one', () => {
    expect(rolloutGate([{ name: 'a' }], now)).toEqual({ action: 'now', reason: 'no-window' });
    expect(rolloutGate([{ name: 'a', window: always, previous: longLived }], now)).toEqual({
      action: 'now',
      reason: 'inside-window',
    });
  });

  it('waits for the next window start outside it', () => {
    expect(rolloutGate([{ name: 'a', window: nightly, previous: longLived }], now)).toEqual({
      action: 'wait',
      until: Date.UTC(2030, 5, 16, 2, 0, 0),
      secret: 'a',
    });
  });

  it('restarts at once when the certificate the pods hold is past its emergency point', () => {
    // 30 days lifetime, 20 h left: past 24 h before expiry.
    const urgent = { notBefore: now - 29 * DAY - 4 * HOUR, notAfter: now + 20 * HOUR };
    expect(rolloutGate([{ name: 'a', window: nightly, previous: urgent }], now)).toEqual({
      action: 'now',
      reason: 'emergency',
    });
  });

  it('never waits beyond the emergency point', () => {
    // 10 days lifetime, 1 day + 2 h left: emergency point 2 h from now, before tonight's window.
    const soon = { notBefore: now - 9 * DAY + 2 * HOUR, notAfter: now + DAY + 2 * HOUR };
    const g = rolloutGate([{ name: 'a', window: nightly, previous: soon }], now);
    expect(g).toEqual({ action: 'wait', until: now + 2 * HOUR, secret: 'a' });
  });

  it('with several Secrets, every window must be open', () => {
    const g = rolloutGate(
      [
        { name: 'open', window: always, previous: longLived },
        { name: 'closed', window: nightly, previous: longLived },
        { name: 'free' },
      ],
      now,
    );
    expect(g).toMatchObject({ action: 'wait', secret: 'closed' });
  });
});
