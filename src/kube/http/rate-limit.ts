/**
 * client-go's token bucket (flowcontrol.NewTokenBucketRateLimiter): `burst` requests may start at
 * once, then `qps` per second on average. `qps <= 0` disables the limit. Waiters are served in
 * arrival order.
 */
export class TokenBucket {
  private readonly qps: number;
  private readonly burst: number;
  private tokens: number;
  private last: number;
  private readonly queue: Array<{
    resolve: () => void;
    reject: (err: unknown) => void;
    signal?: AbortSignal;
  }> = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(qps: number, burst: number, now: () => number = () => performance.now()) {
    if (!(qps <= 0) && !(burst >= 1)) throw new Error(`client burst must be at least 1 (got ${burst})`);
    this.qps = qps;
    this.burst = Math.max(1, Math.floor(burst));
    this.tokens = this.burst;
    this.now = now;
    this.last = now();
  }

  /** Resolves when the caller may send one request. */
  take(signal?: AbortSignal): Promise<void> {
    if (this.qps <= 0) return Promise.resolve();
    this.refill();
    if (this.queue.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = { resolve, reject, ...(signal ? { signal } : {}) };
      this.queue.push(waiter);
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) {
            this.queue.splice(i, 1);
            reject(signal.reason);
          }
        },
        { once: true },
      );
      this.arm();
    });
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.qps);
    this.last = t;
  }

  private arm(): void {
    if (this.timer) return;
    const wait = Math.max(0, ((1 - this.tokens) / this.qps) * 1000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      while (this.queue.length > 0 && this.tokens >= 1) {
        this.tokens -= 1;
        this.queue.shift()?.resolve();
      }
      if (this.queue.length > 0) this.arm();
    }, Math.ceil(wait));
  }
}
