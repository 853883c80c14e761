import type { ScanRow } from './scan-rows.ts';

export type OutputFormat = 'table' | 'wide' | 'json';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'wide', 'json'];

export const TABLE_COLUMNS = [
  'NAMESPACE',
  'NAME',
  'MANAGED',
  'ISSUER',
  'NOT-AFTER',
  'TIME-LEFT',
  'RENEWAL',
  'STATE',
  'PROBLEM',
] as const;
export const WIDE_COLUMNS = [
  ...TABLE_COLUMNS.slice(0, -1),
  'CONTROLLER-STATE',
  'SERIAL',
  'DNS-NAMES',
  'PROBLEM',
] as const;

/** RFC 3339 to the second (the table's width matters; JSON keeps the milliseconds). */
function shortTime(iso: string | null): string {
  return iso === null ? '-' : iso.replace(/\.\d{3}Z$/, 'Z');
}

/** The largest unit and the next one: 29d23h, 1d0h, 3h12m, 45s; negative when expired. */
export function compactDuration(seconds: number): string {
  const sign = seconds < 0 ? '-' : '';
  const abs = Math.abs(Math.trunc(seconds));
  const units = [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const;
  const first = units.findIndex(([, size]) => abs >= size);
  if (first < 0) return '0s';
  const [unit, size] = units[first] as (typeof units)[number];
  const next = units[first + 1];
  const whole = Math.floor(abs / size);
  if (!next) return `${sign}${whole}${unit}`;
  return `${sign}${whole}${unit}${Math.floor((abs - whole * size) / next[1])}${next[0]}`;
}

function cells(row: ScanRow, wide: boolean): string[] {
  const qualified =
    row.kind === 'Secret' || row.kind === 'File' ? row.name : `${row.kind.toLowerCase()}/${row.name}`;
  const name = row.source && row.source !== 'certificate' ? `${qualified} (${row.source})` : qualified;
  const base = [
    row.namespace ?? '-',
    name,
    row.kind !== 'Secret' || row.source !== null ? '-' : row.managed ? 'yes' : 'no',
    row.issuer ?? '-',
    shortTime(row.notAfter),
    row.timeLeftSeconds === null ? '-' : compactDuration(row.timeLeftSeconds),
    row.plannedRenewal === 'now' ? 'now' : shortTime(row.plannedRenewal),
    row.state,
  ];
  const problem = row.problems.length > 0 ? row.problems.join('; ') : '-';
  if (!wide) return [...base, problem];
  return [...base, row.controllerState ?? '-', row.serial ?? '-', row.dnsNames.join(',') || '-', problem];
}

/** Aligned columns, kubectl style: a header, then one line per row; the last column is not padded. */
export function formatTable(rows: ScanRow[], wide: boolean): string {
  const header: readonly string[] = wide ? WIDE_COLUMNS : TABLE_COLUMNS;
  const lines = [header as string[], ...rows.map((r) => cells(r, wide))];
  const widths = header.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)));
  return `${lines
    .map((l) =>
      l
        .map((c, i) => (i === l.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('   ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

export function formatJson(rows: ScanRow[], meta: { scannedAt: string; expiringWithin?: string }): string {
  return `${JSON.stringify({ ...meta, items: rows }, null, 2)}\n`;
}
