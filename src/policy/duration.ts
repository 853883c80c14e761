/**
 * The duration grammar of every flag, annotation and config key (`720h`, `30d`, `1h30m`, `90s`).
 * Its own module so a small process (the sidecar) can parse durations without loading the
 * maintenance-window code and its cron library.
 */
import { PolicyInputError, truncate } from './policy-error.ts';

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
/** Upper bound for any duration a user writes: 10 years of 365 days. */
export const MAX_DURATION_MS = 3650 * DAY;

export interface DurationOptions {
  /** Accept "0" / "0s" (e.g. a debounce that may be switched off). Default false. */
  allowZero?: boolean;
  /** Largest accepted value in ms. Default and hard limit: 10 years. */
  maxMs?: number;
}

const DURATION_UNIT_MS: Record<string, number> = { d: DAY, h: HOUR, m: MINUTE, s: SECOND, ms: 1 };
const DURATION_WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|d|h|m|s))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|d|h|m|s)/g;

/**
 * Parses a Go-style duration (`720h`, `1h30m`, `90s`, `45m`, `1.5h`) extended with days (`30d`).
 * Returns milliseconds. Throws PolicyInputError for garbage, negatives, zero (unless allowed) and
 * anything over 10 years.
 */
export function parseDuration(text: string, options: DurationOptions = {}): number {
  const maxMs = Math.min(options.maxMs ?? MAX_DURATION_MS, MAX_DURATION_MS);
  const trimmed = text.trim();
  const example = 'use a number and a unit (d, h, m, s, ms), e.g. 720h, 30d, 1h30m, 90s';
  if (trimmed.startsWith('-')) throw new PolicyInputError(`"${text}" is negative; ${example}`);
  if (trimmed === '0') {
    if (options.allowZero) return 0;
    throw new PolicyInputError(`"${text}" must be greater than zero`);
  }
  if (trimmed.length === 0 || trimmed.length > 64 || !DURATION_WHOLE.test(trimmed)) {
    throw new PolicyInputError(`"${truncate(text)}" is not a duration; ${example}`);
  }
  let total = 0;
  for (const match of trimmed.matchAll(DURATION_PART)) {
    total += Number(match[1]) * (DURATION_UNIT_MS[match[2] ?? ''] ?? Number.NaN);
  }
  total = Math.round(total);
  if (!Number.isFinite(total))
    throw new PolicyInputError(`"${truncate(text)}" is not a duration; ${example}`);
  if (total === 0 && !options.allowZero) throw new PolicyInputError(`"${text}" must be greater than zero`);
  if (total > maxMs) {
    throw new PolicyInputError(`"${text}" is too long; the maximum is ${formatDuration(maxMs)}`);
  }
  return total;
}

/** Formats ms the way parseDuration reads it, largest units first (e.g. 90000 → "1m30s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [unit, size] of [
    ['d', DAY],
    ['h', HOUR],
    ['m', MINUTE],
    ['s', SECOND],
    ['ms', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
