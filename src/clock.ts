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
