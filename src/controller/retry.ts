/**
 * When may a Secret be tried again? One retry state per Secret, with two cases:
 * - a failed renewal (the issuer refused, the key was unusable, ...): 5 min at first, growing
 *   threefold with decorrelated jitter up to 32 h (`renewalBackoff`), the issuer's Retry-After
 *   as a floor; reset by a success. Its count is what `fallbackAfter` compares against.
 * - an unexpected error (the API server unreachable): 1 s at first, doubling with full jitter up
 *   to 5 min; reset as soon as a reconcile gets through.
 *
 * The renewal case survives a restart: the controller writes `failures`, `last-failure-time` and
 * `next-attempt-time` (which carries an issuer's Retry-After) on the Secret, and the jitter of the n-th delay is drawn from a hash of (Secret uid, n), so a
 * restarted or newly elected controller computes the very delay the previous one waited.
 */
import { createHash } from 'node:crypto';
import { StatusAnnotation } from '../names.ts';

export interface RenewalBackoff {
  baseMs: number;
  capMs: number;
}

/** The short retry after an unexpected error: 1 s doubling to 5 min, full jitter. */
export const TRANSIENT_BACKOFF = Object.freeze({ baseMs: 1_000, capMs: 5 * 60_000, factor: 2 });
/** Growth of the renewal backoff per failure. */
export const RENEWAL_FACTOR = 3;
/** More failures than this in the annotation are read as this many (the delay is capped long before). */
const MAX_FAILURES = 1_000;

export interface RetryEntry {
  /** Consecutive failed renewals. */
  failures: number;
  /** When the last renewal failed (ms). */
  lastFailureAt: number;
  /** No renewal attempt before this time. */
  renewalNotBefore: number;
  /** A pending attempt (a CSR not approved yet): look again at this time; 0 when none. */
  pendingUntil: number;
  /** Consecutive unexpected errors since the last reconcile that got through. */
  transientErrors: number;
  /** No reconcile before this time. */
  transientNotBefore: number;
}

/** Uniform in [0, 1) from a hash of `seed` and `n`: the same for every process. */
export function seededUnit(seed: string, n: number): number {
  const digest = createHash('sha256').update(`${seed}|${n}`).digest();
  return digest.readUInt32BE(0) / 2 ** 32;
}

/**
 * The wait after the `failures`-th consecutive failed renewal (1-based): the decorrelated-jitter
 * chain d₁ … dₙ, dₖ uniform in [base, min(cap, 3·max(dₖ₋₁, base))], with d₀ = base.
 */
export function renewalDelayMs(
  backoff: RenewalBackoff,
  failures: number,
  unit: (n: number) => number,
): number {
  let previous = backoff.baseMs;
  let delay = backoff.baseMs;
  for (let n = 1; n <= Math.min(failures, MAX_FAILURES); n++) {
    const upper = Math.min(backoff.capMs, previous * RENEWAL_FACTOR);
    delay = Math.floor(Math.min(backoff.capMs, backoff.baseMs + unit(n) * (upper - backoff.baseMs)));
    previous = Math.max(delay, backoff.baseMs);
  }
  return delay;
}

/** The wait after the `errors`-th consecutive unexpected error (1-based). */
export function transientDelayMs(errors: number, random: () => number): number {
  const ceiling = Math.min(
    TRANSIENT_BACKOFF.capMs,
    TRANSIENT_BACKOFF.baseMs * TRANSIENT_BACKOFF.factor ** Math.max(0, errors - 1),
  );
  return Math.floor(random() * ceiling);
}

/** The longest wait an annotation can ask for after the failure it records. */
const MAX_RECORDED_WAIT_MS = 31 * 86_400_000;

/**
 * `failures` and `last-failure-time` as the controller wrote them, if both are well-formed, and
 * `next-attempt-time` (an issuer's Retry-After beyond the backoff) when it is, bounded.
 */
export function failureFromAnnotations(
  annotations: Record<string, string>,
): { failures: number; at: number; nextAttempt?: number } | undefined {
  const text = annotations[StatusAnnotation.failures];
  const when = annotations[StatusAnnotation.lastFailureTime];
  if (text === undefined || when === undefined || !/^\d{1,6}$/.test(text)) return undefined;
  const failures = Math.min(Number(text), MAX_FAILURES);
  const at = Date.parse(when);
  if (failures < 1 || !Number.isFinite(at)) return undefined;
  const next = Date.parse(annotations[StatusAnnotation.nextAttemptTime] ?? '');
  if (!Number.isFinite(next) || next <= at) return { failures, at };
  return { failures, at, nextAttempt: Math.min(next, at + MAX_RECORDED_WAIT_MS) };
}

export class RetryStates {
  readonly #backoff: RenewalBackoff;
  readonly #random: () => number;
  readonly #entries = new Map<string, RetryEntry>();

  constructor(backoff: RenewalBackoff, random: () => number = Math.random) {
    this.#backoff = backoff;
    this.#random = random;
  }

  get(key: string): RetryEntry | undefined {
    return this.#entries.get(key);
  }

  /** Consecutive failed renewals of `key` (what `fallbackAfter` counts). */
  failures(key: string): number {
    return this.#entries.get(key)?.failures ?? 0;
  }

  /** No reconcile of `key` is useful before this time (0: any time). */
  notBefore(key: string): number {
    const e = this.#entries.get(key);
    return e ? Math.max(e.renewalNotBefore, e.pendingUntil, e.transientNotBefore) : 0;
  }

  /** May a renewal of `key` be attempted at `now`? */
  renewalAllowed(key: string, now: number): boolean {
    const e = this.#entries.get(key);
    return e === undefined || Math.max(e.renewalNotBefore, e.pendingUntil) <= now;
  }

  /**
   * Records a failed renewal; returns the wait before the next attempt and the new count.
   * `seed` (the Secret's uid) picks the jitter, so every process computes the same wait.
   */
  renewalFailed(
    key: string,
    seed: string,
    now: number,
    retryAfterMs = 0,
  ): { delayMs: number; failures: number } {
    const e = this.#entry(key);
    e.failures++;
    e.lastFailureAt = now;
    e.pendingUntil = 0;
    const delayMs = Math.max(
      renewalDelayMs(this.#backoff, e.failures, (n) => seededUnit(seed, n)),
      retryAfterMs,
    );
    e.renewalNotBefore = now + delayMs;
    return { delayMs, failures: e.failures };
  }

  /**
   * The issuer is still waiting (a CSR not approved yet): no attempt before `now + afterMs`,
   * neither a failure counted nor the backoff grown. Dropped by the next reconcile that reaches
   * the API server (that reconcile is the look again), unless failures are recorded.
   */
  pending(key: string, now: number, afterMs: number): number {
    const e = this.#entry(key);
    e.pendingUntil = now + afterMs;
    return e.pendingUntil;
  }

  /** What the pending attempt waited for has happened (the CSR was issued or refused): look now. */
  pendingOver(key: string): void {
    const e = this.#entries.get(key);
    if (e) e.pendingUntil = 0;
  }

  /** Records an unexpected error; returns the wait before the next reconcile. */
  transientError(key: string, now: number): number {
    const e = this.#entry(key);
    e.transientErrors++;
    const delay = transientDelayMs(e.transientErrors, this.#random);
    e.transientNotBefore = now + delay;
    return delay;
  }

  /**
   * A reconcile got through to the API server: the short retry starts over. A pending attempt's
   * look-again time (no failures) is kept until it has passed.
   */
  reachedApi(key: string, now = Number.POSITIVE_INFINITY): void {
    const e = this.#entries.get(key);
    if (!e) return;
    e.transientErrors = 0;
    e.transientNotBefore = 0;
    if (e.failures === 0 && e.pendingUntil <= now) this.#entries.delete(key);
  }

  /** A renewal succeeded: both cases start over. */
  succeeded(key: string): void {
    this.#entries.delete(key);
  }

  forget(key: string): void {
    this.#entries.delete(key);
  }

  /**
   * Brings the renewal case up to date with what the Secret says: after a restart or a failover
   * this process has no entry (or an older one) while the Secret carries `failures` and
   * `last-failure-time`; a Secret renewed since (no `failures`, `last-renewed` after our last
   * failure) clears it. The Secret's own count never lowers ours: our failure may be newer than
   * a write that did not land.
   */
  restore(key: string, seed: string, annotations: Record<string, string>): void {
    const persisted = failureFromAnnotations(annotations);
    const e = this.#entries.get(key);
    if (persisted === undefined) {
      if (!e || e.failures === 0) return;
      const renewed = Date.parse(annotations[StatusAnnotation.lastRenewed] ?? '');
      // last-renewed has whole seconds: compare at that precision.
      if (Number.isFinite(renewed) && renewed >= Math.floor(e.lastFailureAt / 1000) * 1000) {
        this.succeeded(key);
      }
      return;
    }
    if (e && e.failures >= persisted.failures) return;
    const target = e ?? this.#entry(key);
    target.failures = persisted.failures;
    target.lastFailureAt = persisted.at;
    target.renewalNotBefore = Math.max(
      persisted.at + renewalDelayMs(this.#backoff, persisted.failures, (n) => seededUnit(seed, n)),
      persisted.nextAttempt ?? 0,
    );
  }

  /** Secrets with retry state: the memory this holds. */
  get size(): number {
    return this.#entries.size;
  }

  #entry(key: string): RetryEntry {
    let e = this.#entries.get(key);
    if (!e) {
      e = {
        failures: 0,
        lastFailureAt: 0,
        renewalNotBefore: 0,
        pendingUntil: 0,
        transientErrors: 0,
        transientNotBefore: 0,
      };
      this.#entries.set(key, e);
    }
    return e;
  }
}
