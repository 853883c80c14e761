import { describe, expect, it } from 'vitest';
import { OrderBudget } from '../../../src/issuers/acme/order-budget.ts';

const MIN = 60_000;

describe('OrderBudget across restarts', () => {
  it('a new process counts the order times recorded on the Secret', () => {
    const fresh = new OrderBudget(2);
    expect(fresh.take('a', 30 * MIN, [0, 10 * MIN])).toEqual({ ok: false, retryAfterMs: 30 * MIN });
    expect(fresh.orders('a')).toEqual([0, 10 * MIN]);
  });

  it('of memory and record, the longer list counts; times outside the hour are dropped', () => {
    const b = new OrderBudget(3);
    expect(b.take('a', 0).ok).toBe(true);
    expect(b.take('a', MIN, []).ok).toBe(true); // a stale (shorter) record does not reset memory
    expect(b.orders('a')).toEqual([0, MIN]);
    // An hour later: 0 and 1 min have left the window; the record (2 min) is longer than memory.
    expect(b.take('a', 61 * MIN, [MIN, 2 * MIN]).ok).toBe(true);
    expect(b.orders('a')).toEqual([2 * MIN, 61 * MIN]);
    expect(b.take('a', 61.5 * MIN).ok).toBe(true);
    // Three in the hour: the next is allowed when the 2-min order leaves it.
    expect(b.take('a', 61.8 * MIN)).toEqual({ ok: false, retryAfterMs: Math.round(0.2 * MIN) });
  });
});
