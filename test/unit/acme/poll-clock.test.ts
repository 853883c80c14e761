import { describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/clock.ts';
import type { AcmeConnection } from '../../../src/issuers/acme/client.ts';
import { poll } from '../../../src/issuers/acme/poll.ts';

/** A clock whose timers fire at once, moving time forward by their delay. */
function jumpingClock(start: number): Clock & { slept: number[] } {
  let now = start;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    setTimeout(fn, ms) {
      slept.push(ms);
      now += ms;
      queueMicrotask(fn);
      return 0;
    },
    clearTimeout() {},
  };
}

/** Stands in for the ACME connection only (poll's one dependency): an object that stays pending. */
function pendingConnection(retryAfter?: string): AcmeConnection & { posts: number } {
  const conn = {
    posts: 0,
    async post() {
      conn.posts++;
      return {
        status: 200,
        data: { status: 'pending' },
        headers: retryAfter ? { 'retry-after': retryAfter } : {},
      };
    },
  };
  return conn as unknown as AcmeConnection & { posts: number };
}

describe('ACME polling runs on the injected clock', () => {
  it('backs off 25 ms doubling to 1 s and gives up at the deadline, in virtual time', async () => {
    const clock = jumpingClock(1_000_000);
    const conn = pendingConnection();
    const t0 = Date.now();
    await expect(
      poll(conn, 'order', 'https://ca.example/order/1', clock.now() + 60_000, clock, () => 'pending'),
    ).rejects.toThrow(/timed out waiting for order/);
    expect(clock.slept.slice(0, 7)).toEqual([25, 50, 100, 200, 400, 800, 1_000]);
    expect(clock.slept.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(60_000);
    expect(conn.posts).toBeGreaterThan(55);
    // A minute of polling took no minute: nothing waited on the wall clock.
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('honours a Retry-After date relative to the injected clock', async () => {
    // A year ahead of the wall clock: a Retry-After read against Date.now() would be a year away.
    const start = Math.floor(Date.now() / 1000) * 1000 + 365 * 86_400_000;
    const clock = jumpingClock(start);
    const conn = pendingConnection(new Date(start + 8_000).toUTCString());
    await expect(
      poll(conn, 'authorization', 'https://ca.example/authz/1', clock.now() + 30_000, clock, () => 'pending'),
    ).rejects.toThrow(/timed out/);
    // From the fourth poll on, the CA's 8 s (counted from the clock's now) is waited, not 200 ms.
    expect(clock.slept[3]).toBeGreaterThanOrEqual(7_000);
    expect(clock.slept[3]).toBeLessThan(8_000);
  });
});
