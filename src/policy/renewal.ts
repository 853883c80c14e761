/**
 * The renewal decision: when must a certificate be renewed, and may it be renewed now?
 * Pure functions of (certificate validity, policy, now) — no I/O, no clock of its own.
 *
 * Rules (docs/configuration.md):
 * - renewal time = notAfter − renewBefore; a percentage is of the lifetime (notAfter − notBefore);
 *   the default is one third of the lifetime. A renewBefore at or beyond the lifetime falls back
 *   to renewing when one third of the lifetime remains (cert-manager's rule), so a too-large
 *   renewBefore never causes a renewal loop.
 * - an expired or unparseable certificate is renewed at once.
 * - with a maintenance window, a due certificate waits for the next window start unless less than
 *   min(lifetime / 10, 24h) remains before notAfter (the emergency point): then it is renewed now.
 */
import { PolicyInputError, truncate } from './policy-error.ts';
import { type Window, windowDecision } from './windows.ts';

export { PolicyInputError } from './policy-error.ts';
export {
  cronProblem,
  currentWindow,
  isInsideWindow,
  nextWindowStart,
  timezoneProblem,
  type Window,
  type WindowState,
  windowDecision,
} from './windows.ts';

import { DAY, parseDuration } from './duration.ts';

export {
  type DurationOptions,
  formatDuration,
  MAX_DURATION_MS,
  parseDuration,
} from './duration.ts';

/** How long before notAfter to renew: a fixed duration, or a fraction of the lifetime. */
export type RenewBefore = { kind: 'duration'; ms: number } | { kind: 'percent'; fraction: number };

/** One third of the lifetime: what a Secret gets when neither annotation nor config says otherwise. */
export const DEFAULT_RENEW_BEFORE: RenewBefore = { kind: 'percent', fraction: 1 / 3 };

const PERCENT = /^(\d{1,2}(?:\.\d{1,6})?)%$/;

/** Parses `720h`, `30d` (a duration) or `33%`, `12.5%` (of the lifetime; strictly between 0 and 100). */
export function parseRenewBefore(text: string): RenewBefore {
  const trimmed = text.trim();
  if (trimmed.endsWith('%')) {
    const match = PERCENT.exec(trimmed);
    const percent = match ? Number(match[1]) : Number.NaN;
    if (!(percent > 0 && percent < 100)) {
      throw new PolicyInputError(
        `"${truncate(text)}" must be a percentage above 0% and below 100%, e.g. 33%`,
      );
    }
    return { kind: 'percent', fraction: percent / 100 };
  }
  try {
    return { kind: 'duration', ms: parseDuration(trimmed) };
  } catch (err) {
    if (err instanceof PolicyInputError) {
      throw new PolicyInputError(`${err.message}, or a percentage of the lifetime such as 33%`);
    }
    throw err;
  }
}

export interface Validity {
  /** ms since the epoch */
  notBefore: number;
  /** ms since the epoch */
  notAfter: number;
}

/**
 * When the certificate should be renewed (ms since the epoch). Always within [notBefore, notAfter]
 * for a certificate whose notAfter is after its notBefore; for a degenerate one it is notAfter.
 * A renewBefore at or beyond the lifetime falls back to renewing with one third of the lifetime left.
 */
export function computeRenewalTime(input: Validity & { renewBefore?: RenewBefore | undefined }): number {
  const { notBefore, notAfter } = input;
  const lifetime = notAfter - notBefore;
  if (!(lifetime > 0)) return notAfter;
  const renewBefore = input.renewBefore ?? DEFAULT_RENEW_BEFORE;
  let beforeMs =
    renewBefore.kind === 'percent' ? Math.round(lifetime * renewBefore.fraction) : Math.round(renewBefore.ms);
  if (beforeMs >= lifetime || beforeMs < 0) beforeMs = Math.round(lifetime / 3);
  return Math.min(notAfter, Math.max(notBefore, notAfter - beforeMs));
}

/** After this instant a due certificate is renewed even outside its maintenance window. */
export function emergencyPoint(validity: Validity): number {
  const lifetime = Math.max(0, validity.notAfter - validity.notBefore);
  return validity.notAfter - Math.min(Math.round(lifetime / 10), DAY);
}

// ---------------------------------------------------------------------------------------------
// The decision

export type RenewalReason =
  | 'expired'
  | 'unparseable'
  | 'due'
  | 'not-due'
  | 'window-wait'
  | 'inside-window'
  | 'emergency'
  /** `renew-requested-at` holds a value the controller has not acted on yet. */
  | 'requested'
  /** A CA Secret whose renewal went through a CA rollover: held while it runs, recorded after. */
  | 'ca-rollover';

export interface RenewalDecision {
  action: 'renew-now' | 'wait';
  /** When to act ('renew-now': now) or re-check ('wait': always after now). */
  at: number;
  reason: RenewalReason;
}

export interface RenewalInput {
  /** null: the Secret's certificate could not be parsed (or is missing). */
  cert: Validity | null;
  renewBefore?: RenewBefore | undefined;
  window?: Window | undefined;
  now: number;
}

export function decideRenewal(input: RenewalInput): RenewalDecision {
  const { cert, now } = input;
  if (cert === null || !(cert.notAfter > cert.notBefore)) {
    return { action: 'renew-now', at: now, reason: 'unparseable' };
  }
  if (now >= cert.notAfter) return { action: 'renew-now', at: now, reason: 'expired' };
  const renewalTime = computeRenewalTime({ ...cert, renewBefore: input.renewBefore });
  if (now < renewalTime) return { action: 'wait', at: renewalTime, reason: 'not-due' };
  if (!input.window) return { action: 'renew-now', at: now, reason: 'due' };

  const emergency = emergencyPoint(cert);
  if (now >= emergency) return { action: 'renew-now', at: now, reason: 'emergency' };
  const state = windowDecision(input.window, now);
  if (state.inside) return { action: 'renew-now', at: now, reason: 'inside-window' };
  const at = state.nextStart === null ? emergency : Math.min(state.nextStart, emergency);
  return { action: 'wait', at, reason: 'window-wait' };
}
