/**
 * Per-key exponential backoff. A failing key waits longer after each failure; keys fail
 * independently, so one broken Secret never slows the retries of another.
 *
 * Jitter modes:
 * - `full` — uniform in [0, min(cap, base·factor^n)] (AWS "full jitter"). Can return values
 *   near 0, so prefer it only where an immediate retry is harmless.
 * - `decorrelated` — uniform in [base, previous·factor], capped (AWS "decorrelated jitter").
 *   Never below `base`; needs factor ≈ 3 to grow, which is why 3 is the default factor.
 * - `none` — exactly min(cap, base·factor^n); deterministic, for tests and tooling.
 */

export type Jitter = 'full' | 'decorrelated' | 'none';

export interface BackoffOptions {
  /** Delay after the first failure (upper bound for `full` jitter), in ms. */
  baseMs?: number;
  /** No delay exceeds this, in ms. */
  capMs?: number;
  /** Growth per failure. */
  factor?: number;
  jitter?: Jitter;
  /** Uniform source in [0, 1); injectable so tests are deterministic. */
  random?: () => number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Defaults for retrying a failed certificate renewal: 5 min at first, at most 32 h apart. */
export const RENEWAL_BACKOFF: Readonly<Required<Omit<BackoffOptions, 'random'>>> = Object.freeze({
  baseMs: 5 * MINUTE,
  capMs: 32 * HOUR,
  factor: 3,
  jitter: 'decorrelated',
});

interface KeyState {
  failures: number;
  /** The last delay handed out; the seed of decorrelated jitter. */
  previousMs: number;
}

export class Backoff<K = string> {
  readonly baseMs: number;
  readonly capMs: number;
  readonly factor: number;
  readonly jitter: Jitter;
  readonly #random: () => number;
  readonly #state = new Map<K, KeyState>();

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? RENEWAL_BACKOFF.baseMs;
    this.capMs = options.capMs ?? RENEWAL_BACKOFF.capMs;
    this.factor = options.factor ?? RENEWAL_BACKOFF.factor;
    this.jitter = options.jitter ?? RENEWAL_BACKOFF.jitter;
    this.#random = options.random ?? Math.random;
    if (!(this.baseMs > 0) || !(this.capMs >= this.baseMs) || !(this.factor >= 1)) {
      throw new RangeError(
        `Backoff needs 0 < baseMs <= capMs and factor >= 1 (got baseMs=${this.baseMs}, capMs=${this.capMs}, factor=${this.factor})`,
      );
    }
  }

  /** Records one more failure of `key` and returns how long to wait before retrying it, in ms. */
  next(key: K): number {
    const state = this.#state.get(key) ?? { failures: 0, previousMs: this.baseMs };
    const delay = Math.floor(this.#delayFor(state));
    state.failures++;
    state.previousMs = Math.max(delay, this.baseMs);
    this.#state.set(key, state);
    return delay;
  }

  /** Failures recorded for `key` since its last reset. */
  failures(key: K): number {
    return this.#state.get(key)?.failures ?? 0;
  }

  /** Forgets `key`'s failures: its next delay starts from `base` again. */
  reset(key: K): void {
    this.#state.delete(key);
  }

  /** Number of keys currently backing off; the memory this instance holds. */
  get size(): number {
    return this.#state.size;
  }

  #delayFor(state: KeyState): number {
    // base·factor^n overflows to Infinity for large n; min() with the cap absorbs it.
    const ceiling = Math.min(this.capMs, this.baseMs * this.factor ** state.failures);
    switch (this.jitter) {
      case 'none':
        return ceiling;
      case 'full':
        return this.#random() * ceiling;
      case 'decorrelated': {
        // Jittered from the first failure on, so Secrets failing together retry apart.
        const upper = Math.min(this.capMs, state.previousMs * this.factor);
        return Math.min(this.capMs, this.baseMs + this.#random() * (upper - this.baseMs));
      }
    }
  }
}
