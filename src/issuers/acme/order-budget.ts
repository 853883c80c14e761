/**
 * A cap on new ACME orders per managed Secret in any sliding hour (in memory, per process).
 * The backoff already spaces failures out; this bounds what a misbehaving Secret (edited in a
 * loop, say) can cost against the CA's rate limits.
 */
const HOUR_MS = 3_600_000;

export class OrderBudget {
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly placed = new Map<string, number[]>();

  constructor(limit: number, windowMs = HOUR_MS) {
    this.limit = limit;
    this.windowMs = windowMs;
  }

  /** Takes one order for `key` at `now`; or says how long until one is allowed again. */
  take(key: string, now: number): { ok: true } | { ok: false; retryAfterMs: number } {
    const recent = (this.placed.get(key) ?? []).filter((t) => t > now - this.windowMs);
    if (recent.length >= this.limit) {
      this.placed.set(key, recent);
      const oldest = recent[0] ?? now;
      return { ok: false, retryAfterMs: Math.max(1_000, oldest + this.windowMs - now) };
    }
    recent.push(now);
    this.placed.set(key, recent);
    return { ok: true };
  }

  forget(key: string): void {
    this.placed.delete(key);
  }
}
