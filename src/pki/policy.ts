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
import { CronTime } from 'cron';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Upper bound for any duration a user writes: 10 years of 365 days. */
export const MAX_DURATION_MS = 3650 * DAY;

/** A user-supplied value did not parse. `message` says what is wrong and what would be right. */
export class PolicyInputError extends Error {
  override readonly name = 'PolicyInputError';
}

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
// Maintenance windows

/**
 * A recurring maintenance window: starts at every match of a 5-field cron expression in the
 * given IANA time zone (default UTC) and lasts durationMs.
 */
export type Window = { cron: string; durationMs: number; timezone?: string | undefined };

const CRON_PRESETS = new Set([
  '@yearly',
  '@monthly',
  '@weekly',
  '@daily',
  '@hourly',
  '@weekdays',
  '@weekends',
]);

/** Why a cron expression is not acceptable for a window, or undefined if it is. */
export function cronProblem(expression: string): string | undefined {
  const trimmed = expression.trim();
  if (trimmed.length === 0) return 'is empty; use a 5-field cron expression, e.g. "0 2 * * 6"';
  if (trimmed.length > 256) return 'is longer than 256 characters';
  if (trimmed.startsWith('@')) {
    return CRON_PRESETS.has(trimmed.toLowerCase())
      ? undefined
      : `"${truncate(trimmed)}" is not a supported preset (${[...CRON_PRESETS].join(', ')})`;
  }
  const fields = trimmed.split(/\s+/).length;
  if (fields !== 5) {
    return `"${truncate(trimmed)}" has ${fields} fields; use 5 (minute hour day-of-month month day-of-week)`;
  }
  try {
    new CronTime(trimmed, 'UTC');
  } catch (err) {
    return `"${truncate(trimmed)}" is not a valid cron expression: ${err instanceof Error ? err.message : String(err)}`;
  }
  return undefined;
}

/** Why a time zone name is not acceptable, or undefined if it is a zone this runtime knows. */
export function timezoneProblem(zone: string): string | undefined {
  if (zone.length === 0 || zone.length > 64) return `"${truncate(zone)}" is not an IANA time zone name`;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return undefined;
  } catch {
    return `"${truncate(zone)}" is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)`;
  }
}

/** A compiled window: the cron library's schedule plus the field sets used to check its answers. */
interface CompiledCron {
  schedule: CronTime;
  zone: string;
  minute: Set<number>;
  hour: Set<number>;
  dayOfMonth: Set<number>;
  month: Set<number>;
  dayOfWeek: Set<number>;
}

const cronCache = new Map<string, CompiledCron>();
const wallFormatCache = new Map<string, Intl.DateTimeFormat>();

function compile(window: Window): CompiledCron {
  const zone = window.timezone ?? 'UTC';
  const key = `${window.cron}\u0000${zone}`;
  let compiled = cronCache.get(key);
  if (!compiled) {
    const problem = cronProblem(window.cron) ?? timezoneProblem(zone);
    if (problem) throw new PolicyInputError(`window ${problem}`);
    const schedule = new CronTime(window.cron.trim(), zone);
    // toJSON: [second, minute, hour, dayOfMonth, month, dayOfWeek], each "*" or "a,b,c".
    const [, minute, hour, dayOfMonth, month, dayOfWeek] = schedule.toJSON();
    compiled = {
      schedule,
      zone,
      minute: fieldSet(minute, 0, 59),
      hour: fieldSet(hour, 0, 23),
      dayOfMonth: fieldSet(dayOfMonth, 1, 31),
      month: fieldSet(month, 1, 12),
      dayOfWeek: fieldSet(dayOfWeek, 0, 6),
    };
    if (cronCache.size >= 512) cronCache.clear();
    cronCache.set(key, compiled);
  }
  return compiled;
}

function fieldSet(field: string | undefined, low: number, high: number): Set<number> {
  if (field === undefined || field === '*')
    return new Set(Array.from({ length: high - low + 1 }, (_, i) => low + i));
  return new Set(field.split(',').map(Number));
}

interface Wall {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
}

/** The local wall-clock time (to the minute) of an instant in a zone. */
function wallTime(ms: number, zone: string): Wall {
  let format = wallFormatCache.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      hourCycle: 'h23',
    });
    wallFormatCache.set(zone, format);
  }
  const parts: Record<string, number> = {};
  for (const part of format.formatToParts(ms)) parts[part.type] = Number(part.value);
  return {
    year: parts.year ?? 0,
    month: parts.month ?? 0,
    day: parts.day ?? 0,
    hour: parts.hour ?? 0,
    minute: parts.minute ?? 0,
  };
}

/** The zone's UTC offset at an instant, in minutes. */
function offsetMinutes(ms: number, zone: string): number {
  const w = wallTime(ms, zone);
  const wallAsUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute);
  return Math.round((wallAsUtc - (ms - (((ms % MINUTE) + MINUTE) % MINUTE))) / MINUTE);
}

/** Whether the wall-clock time of an instant is one the cron expression names (cron's day rules). */
function matchesWall(cron: CompiledCron, ms: number): boolean {
  const w = wallTime(ms, cron.zone);
  const weekday = new Date(Date.UTC(w.year, w.month - 1, w.day)).getUTCDay();
  const domRestricted = cron.dayOfMonth.size !== 31;
  const dowRestricted = cron.dayOfWeek.size !== 7;
  const domOk = cron.dayOfMonth.has(w.day);
  const dowOk = cron.dayOfWeek.has(weekday);
  const dayOk =
    domRestricted && dowRestricted ? domOk || dowOk : (!domRestricted || domOk) && (!dowRestricted || dowOk);
  return dayOk && cron.month.has(w.month) && cron.hour.has(w.hour) && cron.minute.has(w.minute);
}

/**
 * True when the instant is the second occurrence of a wall-clock time that repeats because
 * clocks went back (DST end). Windows start at the first occurrence only.
 */
function isRepeatedWallTime(ms: number, zone: string): boolean {
  const wall = JSON.stringify(wallTime(ms, zone));
  return [30 * MINUTE, HOUR, 2 * HOUR].some((shift) => JSON.stringify(wallTime(ms - shift, zone)) === wall);
}

/**
 * The first instant after a DST gap (clocks jumped forward) that ended within the 3 hours up to
 * `ms`, or undefined when there was none.
 */
function gapEndBefore(ms: number, zone: string): number | undefined {
  const from = ms - 3 * HOUR;
  const offsetAfter = offsetMinutes(ms, zone);
  if (!(offsetAfter > offsetMinutes(from, zone))) return undefined;
  // Binary search, to the minute, for the first instant carrying the later offset.
  let low = Math.floor(from / MINUTE);
  let high = Math.floor(ms / MINUTE);
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (offsetMinutes(mid * MINUTE, zone) === offsetAfter) high = mid;
    else low = mid;
  }
  return high * MINUTE;
}

/** Iteration cap for the DST guard: a repeated hour needs at most ~60 one-minute steps. */
const MAX_GUARD_STEPS = 400;

/**
 * The first window start strictly after `after` (ms), or null when none is found in the cron
 * library's search horizon (about 8 years). Times always move forward and are monotonic in `after`:
 * - a wall time skipped by DST start (02:30 on the spring-forward day in Europe/Berlin) starts
 *   at the first instant after the gap (03:00 local);
 * - a wall time repeated by DST end starts at its first occurrence only, never twice.
 * The cron library's own answers are checked against both rules, because at DST transitions it
 * can return an instant in the past, a second occurrence, or a time shifted past the gap.
 */
export function nextWindowStart(window: Window, after: number): number | null {
  const cron = compile(window);
  let cursor = after;
  for (let step = 0; step < MAX_GUARD_STEPS; step++) {
    let candidate: number;
    try {
      candidate = cron.schedule.getNextDateFrom(new Date(cursor), cron.zone).toMillis();
    } catch {
      // The library gives up beyond ~8 years (e.g. "0 0 30 2 *" never matches).
      return null;
    }
    if (!Number.isFinite(candidate)) return null;
    if (candidate <= cursor) {
      // DST end: the library mapped a wall time of the repeated hour to its first, already past,
      // occurrence. Walk the wall clock forward until it leaves the repeated hour.
      cursor += MINUTE;
      continue;
    }
    if (isRepeatedWallTime(candidate, cron.zone)) {
      cursor = candidate;
      continue;
    }
    if (!matchesWall(cron, candidate)) {
      // Not a time the expression names: the library resolved a wall time inside a DST gap.
      const gapEnd = gapEndBefore(candidate, cron.zone);
      if (gapEnd !== undefined && gapEnd > after) return gapEnd;
      cursor = candidate;
      continue;
    }
    if (candidate > after) return candidate;
    cursor = candidate;
  }
  return null;
}

/** The window that contains `now` (the most recent start s with s ≤ now < s + duration), or null. */
export function currentWindow(window: Window, now: number): { start: number; end: number } | null {
  let start = nextWindowStart(window, now - window.durationMs);
  if (start === null || start > now) return null;
  // Overlapping windows (duration longer than the period): take the most recent start.
  for (let i = 0; i < 2000; i++) {
    const next = nextWindowStart(window, start);
    if (next === null || next > now) break;
    start = next;
  }
  return { start, end: start + window.durationMs };
}

export function isInsideWindow(window: Window, now: number): boolean {
  return currentWindow(window, now) !== null;
}

export type WindowState =
  | { inside: true; start: number; end: number }
  | { inside: false; nextStart: number | null };

/** Whether `now` is inside the window, and if not, when the next one starts (null: never found). */
export function windowDecision(window: Window, now: number): WindowState {
  const current = currentWindow(window, now);
  if (current) return { inside: true, ...current };
  return { inside: false, nextStart: nextWindowStart(window, now) };
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
  | 'emergency';

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

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
