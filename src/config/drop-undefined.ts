/** Removes keys whose value is undefined, so loaded objects compare and print cleanly. */
export function dropUndefined<T extends object>(value: T): T;
export function dropUndefined<T extends object>(value: T | undefined): T | undefined;
export function dropUndefined<T extends object>(value: T | undefined): T | undefined {
  if (value === undefined) return undefined;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (record[key] === undefined) delete record[key];
  }
  return value;
}
