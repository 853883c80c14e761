import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Keeps docs/architecture.md true: every import in src/ must go down the documented layers (or
 * be a documented same-layer exception), and every folder and top-level file must be placed.
 */
const root = resolve(new URL('../..', import.meta.url).pathname);
const src = join(root, 'src');
const doc = readFileSync(join(root, 'docs', 'architecture.md'), 'utf8');

function layers(): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of doc.matchAll(/^\| (\d+) \| (.+) \|$/gm)) {
    for (const unit of (m[2] ?? '').matchAll(/`([^`]+)`/g)) out.set(unit[1] ?? '', Number(m[1]));
  }
  return out;
}

function exceptions(): Set<string> {
  return new Set([...doc.matchAll(/^- `([\w.-]+) -> ([\w.-]+)`:/gm)].map((m) => `${m[1]}->${m[2]}`));
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The unit of a path under src/: its first folder, or the top-level file's name. */
function unitOf(path: string): string {
  const rel = relative(src, path).split(sep);
  return rel.length > 1 ? (rel[0] ?? '') : (rel[0] ?? '');
}

interface Import {
  from: string;
  spec: string;
  typeOnly: boolean;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const out: Import[] = [];
  const re =
    /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const m of text.matchAll(re)) {
    const spec = m[3] ?? m[4];
    if (spec) out.push({ from: file, spec, typeOnly: Boolean(m[2]) });
  }
  return out;
}

const all = files(src).flatMap(importsOf);
const placed = layers();
const allowed = exceptions();

describe('src/ follows docs/architecture.md', () => {
  it('the doc places at least the core units', () => {
    for (const unit of [
      'pki',
      'policy',
      'config',
      'kube',
      'issuers',
      'controller',
      'app',
      'cli.ts',
      'names.ts',
    ])
      expect(placed.has(unit), unit).toBe(true);
  });

  it('every folder and top-level file of src/ is placed in a layer', () => {
    const units = new Set(
      readdirSync(src).filter((n) => n.endsWith('.ts') || statSync(join(src, n)).isDirectory()),
    );
    expect([...units].filter((u) => !placed.has(u))).toEqual([]);
  });

  it('no import goes up a layer or sideways without a documented exception', () => {
    const bad: string[] = [];
    for (const imp of all) {
      if (!imp.spec.startsWith('.')) continue;
      const target = resolve(imp.from, '..', imp.spec);
      if (!target.startsWith(src + sep)) {
        bad.push(`${relative(root, imp.from)} imports ${imp.spec}, outside src/`);
        continue;
      }
      const a = unitOf(imp.from);
      const b = unitOf(target);
      if (a === b) continue;
      const la = placed.get(a);
      const lb = placed.get(b);
      if (la === undefined || lb === undefined) continue; // reported by the test above
      if (lb < la || allowed.has(`${a}->${b}`)) continue;
      bad.push(`${relative(root, imp.from)} (${a}, layer ${la}) imports ${imp.spec} (${b}, layer ${lb})`);
    }
    expect(bad).toEqual([]);
  });

  it('there is no cycle between folders', () => {
    const edges = new Map<string, Set<string>>();
    for (const imp of all) {
      if (!imp.spec.startsWith('.')) continue;
      const a = unitOf(imp.from);
      const b = unitOf(resolve(imp.from, '..', imp.spec));
      if (a !== b) edges.set(a, (edges.get(a) ?? new Set()).add(b));
    }
    const cycles: string[] = [];
    const visit = (node: string, path: string[]) => {
      for (const next of edges.get(node) ?? []) {
        if (path.includes(next)) cycles.push([...path.slice(path.indexOf(next)), next].join(' -> '));
        else if (path.length < 20) visit(next, [...path, next]);
      }
    };
    for (const node of edges.keys()) visit(node, [node]);
    expect(cycles).toEqual([]);
  });

  it('only kube/ loads @kubernetes/client-node at run time', () => {
    const bad = all
      .filter((i) => i.spec.startsWith('@kubernetes/client-node') && !i.typeOnly && unitOf(i.from) !== 'kube')
      .map((i) => relative(root, i.from));
    expect(bad).toEqual([]);
  });

  it('pki/, policy/ and config/ do no I/O', () => {
    const io = /^node:(fs|fs\/promises|http|https|child_process|dgram|tls)$/;
    const bad = all
      .filter((i) => ['pki', 'policy', 'config'].includes(unitOf(i.from)) && io.test(i.spec))
      .map((i) => `${relative(root, i.from)}: ${i.spec}`);
    expect(bad).toEqual([]);
  });

  it('the checker itself sees imports (a guard against a regex that matches nothing)', () => {
    expect(
      all.filter((i) => unitOf(i.from) === 'controller' && i.spec.includes('../pki/')).length,
    ).toBeGreaterThan(0);
    expect(all.some((i) => i.typeOnly)).toBe(true);
  });
});
