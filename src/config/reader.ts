/**
 * A small path-tracking reader over untyped YAML data. Every check records an issue with the
 * exact path instead of throwing, so one run reports every problem in the file.
 */

export interface ConfigIssue {
  /** e.g. `issuers[0].ca.secret.name`; `(file)` for YAML syntax errors, `(root)` for the document. */
  path: string;
  message: string;
}

export type Mapping = Record<string, unknown>;

export class Reader {
  readonly issues: ConfigIssue[] = [];

  report(path: string, message: string): void {
    this.issues.push({ path: path === '' ? '(root)' : path, message });
  }

  /**
   * The value as a mapping whose keys all belong to `keys`; reports the wrong type and every
   * unknown key (with a suggestion for a likely typo). Returns undefined for a wrong type.
   */
  mapping(value: unknown, path: string, keys: readonly string[]): Mapping | undefined {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.report(path, `must be a mapping, got ${describe(value)}`);
      return undefined;
    }
    const map = value as Mapping;
    for (const key of Object.keys(map)) {
      if (keys.includes(key)) continue;
      const guess = closest(key, keys);
      const hint = guess
        ? `; did you mean "${guess}"?`
        : keys.length
          ? ` (known keys: ${keys.join(', ')})`
          : '';
      this.report(join(path, key), `unknown key${hint}`);
    }
    return map;
  }

  /** An optional mapping; absent or null gives `{}` checked the same way. */
  optionalMapping(value: unknown, path: string, keys: readonly string[]): Mapping | undefined {
    return value === undefined || value === null ? {} : this.mapping(value, path, keys);
  }

  string(map: Mapping, key: string, path: string, required: true): string | undefined;
  string(map: Mapping, key: string, path: string, required?: false): string | undefined;
  string(map: Mapping, key: string, path: string, required = false): string | undefined {
    const value = map[key];
    const at = join(path, key);
    if (value === undefined || value === null) {
      if (required) this.report(at, 'required');
      return undefined;
    }
    if (typeof value !== 'string') {
      this.report(at, `must be a string, got ${describe(value)}`);
      return undefined;
    }
    if (value.trim() === '') {
      this.report(at, 'must not be empty');
      return undefined;
    }
    return value.trim();
  }

  boolean(map: Mapping, key: string, path: string): boolean | undefined {
    const value = map[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') {
      this.report(join(path, key), `must be true or false, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  integer(map: Mapping, key: string, path: string, min: number, max: number): number | undefined {
    const value = map[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      this.report(join(path, key), `must be an integer, got ${describe(value)}`);
      return undefined;
    }
    if (value < min || value > max) {
      this.report(join(path, key), `must be between ${min} and ${max}, got ${value}`);
      return undefined;
    }
    return value;
  }

  /** A list of non-empty strings, each checked by `problem`; reports per element path. */
  stringList(
    map: Mapping,
    key: string,
    path: string,
    problem: (item: string) => string | undefined,
  ): string[] | undefined {
    const value = map[key];
    const at = join(path, key);
    if (value === undefined || value === null) return undefined;
    if (!Array.isArray(value)) {
      this.report(at, `must be a list, got ${describe(value)}`);
      return undefined;
    }
    if (value.length === 0) {
      this.report(at, 'must not be empty (omit the key for the default)');
      return undefined;
    }
    const out: string[] = [];
    let ok = true;
    value.forEach((item: unknown, i) => {
      const itemPath = `${at}[${i}]`;
      if (typeof item !== 'string') {
        this.report(itemPath, `must be a string, got ${describe(item)}`);
        ok = false;
        return;
      }
      const message = problem(item);
      if (message) {
        this.report(itemPath, message);
        ok = false;
        return;
      }
      out.push(item);
    });
    return ok ? out : undefined;
  }

  /** Applies `parse` (which throws with a user-facing message) to a string value. */
  parsed<T>(map: Mapping, key: string, path: string, parse: (text: string) => T): T | undefined {
    const text = this.string(map, key, path);
    if (text === undefined) return undefined;
    try {
      return parse(text);
    } catch (err) {
      this.report(join(path, key), err instanceof Error ? err.message : String(err));
      return undefined;
    }
  }
}

export function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string')
    return `the string "${value.length > 40 ? `${value.slice(0, 37)}...` : value}"`;
  return `${typeof value} ${String(value)}`;
}

/** The known key within edit distance 2 of a typo, if exactly one is that close. */
function closest(key: string, keys: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of keys) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(
        Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost),
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
