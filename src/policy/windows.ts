/**
 * Maintenance windows: when does a window start, and is an instant inside one?
 * Pure functions of (window, now) — no I/O, no clock of its own. Windows start at every match of
 * a cron expression in an IANA time zone; the DST guards keep starts monotonic and never doubled.
 */
import { CronTime } from 'cron';
import { PolicyInputError, truncate } from './policy-error.ts';

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;

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

/**
 * Several windows as one: inside when inside any of them (until the latest end among those
 * open now); otherwise the earliest next start among them. No windows at all: always inside.
 */
export function windowsDecision(windows: readonly Window[], now: number): WindowState {
  if (windows.length === 0) return { inside: true, start: now, end: Number.POSITIVE_INFINITY };
  let open: { start: number; end: number } | undefined;
  let nextStart: number | null = null;
  for (const w of windows) {
    const state = windowDecision(w, now);
    if (state.inside) {
      if (!open || state.end > open.end) open = { start: state.start, end: state.end };
    } else if (state.nextStart !== null && (nextStart === null || state.nextStart < nextStart)) {
      nextStart = state.nextStart;
    }
  }
  return open ? { inside: true, ...open } : { inside: false, nextStart };
}
