/**
 * The Grafana dashboard against a real Prometheus, for the tests that check its panels with real
 * data (dashboard.test.ts, and pod-certificates.test.ts for the panels only its scenario feeds):
 * Debian's Prometheus scraping given targets every second, and every chosen panel's query, with
 * the dashboard's variables filled from their own label_values() through Prometheus' API and
 * Grafana's $__rate_interval worked out the way Grafana does, evaluated with query_range.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testEnv } from './kube.ts';
import { freePort, waitFor } from './net.ts';
import { type Peer, startPeer } from './processes.ts';

export const DASHBOARD = new URL('../../charts/cert-rotator/dashboards/cert-rotator.json', import.meta.url)
  .pathname;
export const SCRAPE_S = 1;
const STEP_S = 2;
/** Grafana's $__rate_interval: max($__interval + scrape interval, 4 × scrape interval). */
const RATE_INTERVAL = `${Math.max(STEP_S + SCRAPE_S, 4 * SCRAPE_S)}s`;

/**
 * Panels whose data dashboard.test.ts's scenario cannot produce, each with the test that checks
 * them against real data instead, with evaluatePanels. dashboard.test.ts still runs their queries
 * (Prometheus must accept them) without requiring data, and fails on a title listed here that the
 * dashboard does not have; the test named checks every panel listed for it.
 */
export const CHECKED_ELSEWHERE: ReadonlyMap<string, string> = new Map([
  ['Pod Certificate requests by result', 'pod-certificates.test.ts'],
  ['Pod Certificate issue time', 'pod-certificates.test.ts'],
]);

interface Target {
  expr: string;
  refId: string;
}
export interface Panel {
  title: string;
  type: string;
  targets?: Target[];
}
interface Variable {
  name: string;
  type: string;
  query?: { query: string } | string;
}
export interface Dashboard {
  panels: Panel[];
  templating: { list: Variable[] };
}

export type Sample = { metric: Record<string, string>; value: [number, string] };

export interface Prometheus {
  url: string;
  /** When it started: the beginning of every query_range. */
  start: number;
  query(path: string, params: Record<string, string>): Promise<unknown>;
  instant(expr: string): Promise<Sample[]>;
  stop(): Promise<void>;
}

export async function readDashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
}

/** Debian's Prometheus scraping `targets` (host:port) every second as job "cert-rotator". */
export async function startPrometheus(dir: string, targets: string[]): Promise<Prometheus> {
  const port = await freePort();
  await writeFile(
    join(dir, 'prometheus.yml'),
    [
      'global:',
      `  scrape_interval: ${SCRAPE_S}s`,
      `  evaluation_interval: ${SCRAPE_S}s`,
      'scrape_configs:',
      '  - job_name: cert-rotator',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const peer: Peer = await startPeer(
    'prometheus',
    testEnv().bins.prometheus,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { logDir: dir },
  );
  const url = `http://127.0.0.1:${port}`;
  const query = async (path: string, params: Record<string, string>): Promise<unknown> => {
    const res = await fetch(`${url}${path}?${new URLSearchParams(params)}`);
    const body = (await res.json()) as { status: string; data: unknown; error?: string };
    if (body.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${body.error}`);
    return body.data;
  };
  const instant = async (expr: string) =>
    ((await query('/api/v1/query', { query: expr })) as { result: Sample[] }).result;
  const prom: Prometheus = {
    url,
    start: Math.floor(Date.now() / 1000),
    query,
    instant,
    stop: () => peer.stop(),
  };
  await waitFor('Prometheus to scrape every target', async () => {
    const up = await instant('up{job="cert-rotator"} == 1').catch(() => []);
    return up.length === targets.length || undefined;
  });
  return prom;
}

/** Grafana's formatting of a multi-value variable for a Prometheus regex matcher. */
function regexValue(values: string[]): string {
  const esc = values.map((v) => v.replace(/[\\^$*+?.()|[\]{}]/g, '\\$&'));
  return esc.length === 1 ? (esc[0] as string) : `(${esc.join('|')})`;
}

export interface PanelResults {
  /** What failed, each naming its panel (or variable). */
  failures: string[];
  /** Queries that returned numbers. */
  checked: number;
  /** Queries of panels in `noDataAllowed`: run (Prometheus must accept them), not required to return data. */
  accepted: number;
}

/**
 * Evaluates the queries of the panels `select` picks over the run. A variable a chosen query
 * uses must have values; a query must return a number unless its panel is in `noDataAllowed`.
 */
export async function evaluatePanels(
  prom: Prometheus,
  dashboard: Dashboard,
  opts: { select?: (p: Panel) => boolean; noDataAllowed?: ReadonlySet<string> } = {},
): Promise<PanelResults> {
  const failures: string[] = [];
  const values = new Map<string, string>();
  const empty = new Set<string>();
  const end = Math.ceil(Date.now() / 1000);
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    const m = /^label_values\((\w+),\s*(\w+)\)$/.exec(q);
    if (!m) {
      failures.push(`variable ${v.name}: query "${q}" is not label_values(metric, label)`);
      continue;
    }
    const found = (await prom.query(`/api/v1/label/${m[2]}/values`, {
      'match[]': m[1] ?? '',
      start: String(prom.start),
      end: String(end),
    })) as string[];
    if (found.length === 0) empty.add(v.name);
    values.set(v.name, regexValue(found));
  }
  let checked = 0;
  let accepted = 0;
  for (const panel of dashboard.panels) {
    if (opts.select && !opts.select(panel)) continue;
    for (const t of panel.targets ?? []) {
      for (const [, name] of t.expr.matchAll(/\$(\w+)/g)) {
        if (name && empty.has(name))
          failures.push(`${panel.title} (${t.refId}): variable ${name} has no values`);
      }
      const expr = t.expr
        .replaceAll('$__rate_interval', RATE_INTERVAL)
        .replace(/\$(\w+)/g, (all, name: string) => values.get(name) ?? all);
      if (/\$\w/.test(expr)) {
        failures.push(`${panel.title} (${t.refId}): unresolved variable in ${expr}`);
        continue;
      }
      const data = (await prom.query('/api/v1/query_range', {
        query: expr,
        start: String(prom.start),
        end: String(end),
        step: String(STEP_S),
      })) as { result: Array<{ values: Array<[number, string]> }> };
      if (opts.noDataAllowed?.has(panel.title)) {
        accepted++;
        continue;
      }
      const numbers = data.result.flatMap((s) => s.values.map(([, v]) => Number(v))).filter(Number.isFinite);
      if (numbers.length === 0) failures.push(`${panel.title} (${t.refId}): no data for ${expr}`);
      checked++;
    }
  }
  return { failures, checked, accepted };
}
