/** Times and durations as the status page writes them: UTC to the minute, and "3d 4h". */

export function formatTime(ms: number): string {
  if (!Number.isFinite(ms)) return '';
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** A duration to two units: `45s`, `12m`, `3h 5m`, `41d 2h`. */
export function formatDuration(ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d ${h % 24}h` : `${d}d`;
}

/** `in 3d 4h`, or `expired 2h 5m ago`. */
export function formatTimeLeft(ms: number): string {
  return ms > 0 ? formatDuration(ms) : `expired ${formatDuration(ms)} ago`;
}

/** `5m ago`. */
export function formatAge(ms: number): string {
  return `${formatDuration(Math.max(0, ms))} ago`;
}
