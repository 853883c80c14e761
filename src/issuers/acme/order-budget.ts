/**
 * A cap on new ACME orders per managed Secret in any sliding hour. The backoff already spaces
 * failures out; this bounds what a misbehaving Secret (edited in a loop, say) can cost against
 * the CA's rate limits. The controller records the order times on the Secret
 * (`status.cert-rotator.io/acme-orders`) and hands them back in, so the cap holds across restarts
 * and failovers: of what this process remembers and what the Secret records, the longer list counts.
 */
const HOUR_MS = 3_600_000;

export type BudgetAnswer = { ok: true } | { ok: false; retryAfterMs: number };

export class OrderBudget {
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly placed = new Map<string, number[]>();

  constructor(limit: number, windowMs = HOUR_MS) {
    this.limit = limit;
    this.windowMs = windowMs;
  }

  /** Takes one order for `key` at `now`; or says how long until one is allowed again. */
  take(key: string, now: number, recorded: readonly number[] = []): BudgetAnswer {
    const inWindow = (list: readonly number[]) =>
      list.filter((t) => t > now - this.windowMs && t <= now).sort((a, b) => a - b);
    const remembered = inWindow(this.placed.get(key) ?? []);
    const fromSecret = inWindow(recorded);
    const recent = fromSecret.length > remembered.length ? fromSecret : remembered;
    if (recent.length >= this.limit) {
      this.placed.set(key, recent);
      const oldest = recent[recent.length - this.limit] ?? now;
      return { ok: false, retryAfterMs: Math.max(1_000, oldest + this.windowMs - now) };
    }
    recent.push(now);
    this.placed.set(key, recent);
    return { ok: true };
  }

  /** The order times (of the last hour, as of the last `take`) counted for `key`: to record on the Secret. */
  orders(key: string): number[] {
    return [...(this.placed.get(key) ?? [])];
  }
}
