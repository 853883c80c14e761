/**
 * Time as the controller sees it. Everything that decides or schedules by time takes a
 * Clock so tests can drive hours of certificate lifetime in milliseconds.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Like the global setTimeout; returns a handle for clearTimeout. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    // Node caps timers at 2^31-1 ms (~24.8 days); callers re-arm after a capped wait.
    const t = setTimeout(fn, Math.min(Math.max(0, ms), 2 ** 31 - 1));
    t.unref?.();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** RFC 3339 in whole seconds (`2026-11-25T16:32:59Z`), as annotations, events and logs show times. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * A pass that runs now and again `intervalMs` after each pass ends, on a Clock: never two at
 * once; a pass that fails goes to `onError` and the next one still comes. `stop()` waits for a
 * pass in flight and schedules no other.
 */
export class PeriodicTask {
  readonly #clock: Clock;
  readonly #intervalMs: () => number;
  readonly #pass: () => Promise<unknown>;
  readonly #onError: (err: unknown) => void;
  #timer: unknown;
  #running: Promise<void> | undefined;
  #stopped = false;
  #again = false;

  constructor(opts: {
    clock: Clock;
    intervalMs: () => number;
    pass: () => Promise<unknown>;
    onError: (err: unknown) => void;
  }) {
    this.#clock = opts.clock;
    this.#intervalMs = opts.intervalMs;
    this.#pass = opts.pass;
    this.#onError = opts.onError;
  }

  start(): void {
    this.#schedule(0);
  }

  /**
   * Runs a pass now instead of at the scheduled time (e.g. on becoming the leader); with a pass
   * in flight, the next one starts as soon as it ends (never two at once).
   */
  runSoon(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      // The pass in flight may have looked before the reason to run (a new lease) existed.
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#pass()
        .then(
          () => undefined,
          (err: unknown) => this.#onError(err),
        )
        .finally(() => {
          this.#running = undefined;
          const again = this.#again;
          this.#again = false;
          this.#schedule(again ? 0 : this.#intervalMs());
        });
    }, ms);
  }
}
