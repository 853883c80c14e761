/**
 * The chart's alert rules, checked and unit-tested by promtool over series captured from a real
 * controller run: Secrets that are expired, expiring in 10 and in 5 days, fine, planned for
 * renewal, renewed, and failing to renew are created against the test API server; the
 * controller's /metrics is scraped at each stage and the samples become promtool input_series.
 *
 * Time: promtool starts at 0, so every `_timestamp_seconds` value is shifted by the Unix time
 * of the first scrape. Each scrape is held for a stage of simulated minutes (what a Prometheus
 * scraping every minute would see of an unchanged controller), long enough for the rules'
 * `for:` and the renewal-failure window to play out. The last stage is the controller stopped:
 * its scrape fails for real, so `up` is 0 and every series goes stale.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { Metric } from '../../src/names.ts';
import {
  type ControllerProcess,
  killAllControllers,
  metricValue,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { makeLeaf, makeTestCA, tlsSecret } from '../testenv/tls-fixtures.ts';

const CHART = new URL('../../charts/cert-rotator', import.meta.url).pathname;
const JOB = 'cert-rotator';
const A = 'cert-rotator.io/';
const MIN = 60_000;
const DAY = 24 * 60 * MIN;

const ns = useNamespace(import.meta.url);
let dir = '';
let core: k8s.CoreV1Api;

interface RunResult {
  code: number;
  out: string;
}

async function run(bin: string, args: string[], cwd?: string): Promise<RunResult> {
  return await new Promise((resolve) => {
    execFile(
      bin,
      args,
      { cwd, env: { PATH: process.env.PATH ?? '', HOME: dir }, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
      },
    );
  });
}

interface Rule {
  alert: string;
  expr: string;
  annotations: Record<string, string>;
}

/** The chart's rules as a plain Prometheus rules file, exactly as the PrometheusRule carries them. */
async function renderRules(file: string, ...set: string[]): Promise<Rule[]> {
  const r = await run(testEnv().bins.helm, [
    'template',
    'cert-rotator',
    CHART,
    '--namespace',
    'cert-rotator',
    '--set',
    'prometheusRule.enabled=true',
    ...set.flatMap((s) => ['--set', s]),
    '--show-only',
    'templates/prometheusrule.yaml',
  ]);
  expect(r.code, r.out).toBe(0);
  const spec = (parse(r.out) as { spec: { groups: Array<{ rules: Rule[] }> } }).spec;
  await writeFile(join(dir, file), stringify(spec));
  return spec.groups.flatMap((g) => g.rules);
}

// ---------------------------------------------------------------------------------------------
// Capture

/** The Secrets of the run; every alert expectation below follows from this table. */
const SECRETS = {
  expired: { managed: false, fromMs: -30 * DAY, toMs: -DAY },
  'expiring-10d': { managed: false, fromMs: -20 * DAY, toMs: 10 * DAY },
  'expiring-5d': { managed: false, fromMs: -25 * DAY, toMs: 5 * DAY },
  fine: { managed: false, fromMs: -30 * DAY, toMs: 60 * DAY },
  // Managed, 5 days left, renewal planned 2 days before expiry: not a problem yet.
  'managed-planned': { managed: true, fromMs: -25 * DAY, toMs: 5 * DAY, renewBefore: '2d' },
  renewed: { managed: true, fromMs: -10 * MIN, toMs: 2 * MIN },
  // Managed, 3 days left of 30, due since 7 days, and the renewal fails (key does not match,
  // rotate-key "false"): overdue, critical, and a renewal failure.
  'failing-a': { managed: true, fromMs: -27 * DAY, toMs: 3 * DAY, failing: true },
  'failing-b': { managed: true, fromMs: -27 * DAY, toMs: 3 * DAY, failing: true },
} as const;
type SecretName = keyof typeof SECRETS | 'internal-ca';

async function createSecret(name: keyof typeof SECRETS): Promise<void> {
  const s: { managed: boolean; fromMs: number; toMs: number; renewBefore?: string; failing?: boolean } =
    SECRETS[name];
  const pair = await makeLeaf({ dnsNames: [`${name}.example.com`], fromMs: s.fromMs, toMs: s.toMs });
  const annotations: Record<string, string> = {};
  if (s.managed) annotations[`${A}enabled`] = 'true';
  if (s.renewBefore) annotations[`${A}renew-before`] = s.renewBefore;
  let keyPem = pair.keyPem;
  if (s.failing) {
    annotations[`${A}rotate-key`] = 'false';
    keyPem = (await makeLeaf({ dnsNames: ['other.example.com'], fromMs: -DAY, toMs: DAY })).keyPem;
  }
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret(name, { certPem: pair.certPem, keyPem }, annotations),
  });
}

interface Scrape {
  /** promtool series selector (with job and instance, as Prometheus adds them) → value. */
  samples: Map<string, number>;
  up: boolean;
}

const KEEP = new Set<string>(Object.values(Metric));

function parseScrape(text: string, instance: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m?.[1] || m[3] === undefined) continue;
    const name = m[1];
    const base = name.replace(/_(bucket|sum|count)$/, '');
    if (!KEEP.has(name) && !KEEP.has(base)) continue;
    const labels = [m[2], `job="${JOB}"`, `instance="${instance}"`].filter(Boolean).join(',');
    samples.set(`${name}{${labels}}`, Number(m[3]));
  }
  return samples;
}

/** Stages in simulated minutes: [first step, number of steps]. */
const STAGES = [
  { name: 'all Secrets listed, one renewed', start: 0, steps: 30 },
  { name: 'failing-a failed once', start: 30, steps: 30 },
  { name: 'failing-b failed too', start: 60, steps: 60 },
  { name: 'controller stopped', start: 120, steps: 21 },
] as const;

function stageAt(minute: number): number {
  return STAGES.findLastIndex((s) => minute >= s.start);
}

interface Capture {
  scrapes: Scrape[];
  /** Unix seconds of the first scrape: promtool's time 0. */
  t0: number;
  instance: string;
}

function isTimestamp(series: string): boolean {
  return /^[\w:]+_timestamp_seconds\{/.test(series);
}

function inputSeries(c: Capture): Array<{ series: string; values: string }> {
  const all = new Set<string>();
  for (const s of c.scrapes) for (const k of s.samples.keys()) all.add(k);
  const out: Array<{ series: string; values: string }> = [];
  for (const series of [...all].sort()) {
    const parts: string[] = [];
    let present = false;
    c.scrapes.forEach((scrape, i) => {
      const stage = STAGES[i];
      if (!stage) throw new Error(`no stage ${i}`);
      const raw = scrape.samples.get(series);
      if (raw === undefined) {
        // Scraped and missing: stale right after a sample, else simply absent.
        parts.push(...(present ? ['stale'] : []), ...Array(stage.steps - (present ? 1 : 0)).fill('_'));
        present = false;
      } else {
        const v = isTimestamp(series) ? raw - c.t0 : raw;
        parts.push(`${v}x${stage.steps - 1}`);
        present = true;
      }
    });
    out.push({ series, values: parts.join(' ') });
  }
  out.push({
    series: `up{job="${JOB}",instance="${c.instance}"}`,
    values: c.scrapes.map((s, i) => `${s.up ? 1 : 0}x${(STAGES[i]?.steps ?? 1) - 1}`).join(' '),
  });
  return out;
}

/** The value of one certificate metric for a Secret at a simulated minute, shifted to promtool time. */
function certValue(c: Capture, metric: string, secret: SecretName, minute: number): number {
  const scrape = c.scrapes[stageAt(minute)];
  for (const [series, v] of scrape?.samples ?? []) {
    if (series.startsWith(`${metric}{`) && series.includes(`secret="${secret}"`)) return v - c.t0;
  }
  throw new Error(`no ${metric} for ${secret} at ${minute}m`);
}

// ---------------------------------------------------------------------------------------------
// Expectations

/** Go's humanizeDuration from Prometheus' template functions (for the values seen here). */
function humanizeDuration(value: number): string {
  if (value === 0) return '0s';
  let v = value;
  let sign = '';
  if (v < 0) {
    sign = '-';
    v = -v;
  }
  if (v < 1) throw new Error(`humanizeDuration of ${value} is not needed here`);
  const d = Math.trunc(v);
  const [days, hours, minutes, seconds] = [
    Math.trunc(d / 86400),
    Math.trunc(d / 3600) % 24,
    Math.trunc(d / 60) % 60,
    d % 60,
  ];
  if (days) return `${sign}${days}d ${hours}h ${minutes}m ${seconds}s`;
  if (hours) return `${sign}${hours}h ${minutes}m ${seconds}s`;
  if (minutes) return `${sign}${minutes}m ${seconds}s`;
  return `${sign}${Number(v.toPrecision(4))}s`;
}

function expand(template: string, labels: Record<string, string>, value?: number): string {
  return template
    .replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, k: string) => labels[k] ?? '')
    .replace(/\{\{ \$value \| humanizeDuration \}\}/g, () => {
      if (value === undefined) throw new Error(`template needs $value: ${template}`);
      return humanizeDuration(value);
    });
}

type AlertName =
  | 'CertRotatorRenewalOverdue'
  | 'CertRotatorCertificateExpiringSoon'
  | 'CertRotatorCertificateExpiringCritical'
  | 'CertRotatorCertificateExpired'
  | 'CertRotatorRenewalFailures'
  | 'CertRotatorCAExpiringSoon'
  | 'CertRotatorAbsent';

/** Which alerts fire at each checked minute; every alert not listed must be silent then. */
const EXPECTED: Record<number, Partial<Record<AlertName, string[]>>> = {
  // Expiry alerts have fired (for: 15m); nothing is failing yet.
  29: {
    CertRotatorCertificateExpiringSoon: ['expiring-10d'],
    CertRotatorCertificateExpiringCritical: ['expiring-5d'],
    CertRotatorCertificateExpired: ['expired'],
  },
  // failing-a failed a minute ago: the failure alert fires at once, overdue is still pending.
  31: {
    CertRotatorCertificateExpiringSoon: ['expiring-10d'],
    CertRotatorCertificateExpiringCritical: ['expiring-5d'],
    CertRotatorCertificateExpired: ['expired'],
    CertRotatorRenewalFailures: ['internal-ca'],
  },
  59: {
    CertRotatorCertificateExpiringSoon: ['expiring-10d'],
    CertRotatorCertificateExpiringCritical: ['expiring-5d', 'failing-a'],
    CertRotatorCertificateExpired: ['expired'],
    CertRotatorRenewalOverdue: ['failing-a'],
    CertRotatorRenewalFailures: ['internal-ca'],
  },
  89: {
    CertRotatorCertificateExpiringSoon: ['expiring-10d'],
    CertRotatorCertificateExpiringCritical: ['expiring-5d', 'failing-a', 'failing-b'],
    CertRotatorCertificateExpired: ['expired'],
    CertRotatorRenewalOverdue: ['failing-a', 'failing-b'],
    CertRotatorRenewalFailures: ['internal-ca'],
  },
  // No new failure for an hour: the failure alert is over; the Secrets are still overdue.
  119: {
    CertRotatorCertificateExpiringSoon: ['expiring-10d'],
    CertRotatorCertificateExpiringCritical: ['expiring-5d', 'failing-a', 'failing-b'],
    CertRotatorCertificateExpired: ['expired'],
    CertRotatorRenewalOverdue: ['failing-a', 'failing-b'],
  },
  // Controller stopped at 120: its series are stale, so its certificate alerts end; absent is pending.
  125: {},
  135: { CertRotatorAbsent: ['-'] },
};

function expectedAlerts(rules: Rule[], c: Capture, minute: number) {
  const t = minute * 60;
  const tests: Array<{
    eval_time: string;
    alertname: string;
    exp_alerts: Array<{ exp_labels: Record<string, string>; exp_annotations: Record<string, string> }>;
  }> = [];
  for (const rule of rules) {
    const alert = rule.alert as AlertName;
    const subjects = EXPECTED[minute]?.[alert] ?? [];
    const exp = subjects.map((subject) => {
      let labels: Record<string, string>;
      let value: number | undefined;
      const severity = /Critical|Expired|Absent/.test(alert) ? 'critical' : 'warning';
      if (alert === 'CertRotatorRenewalFailures') {
        labels = { issuer: subject };
      } else if (alert === 'CertRotatorAbsent') {
        labels = {};
      } else {
        const secret = subject as SecretName;
        const managed = secret in SECRETS && SECRETS[secret as keyof typeof SECRETS].managed;
        labels = {
          namespace: ns(),
          secret,
          managed: String(managed),
          ...(managed ? { issuer: 'internal-ca' } : {}),
        };
        if (alert === 'CertRotatorRenewalOverdue') {
          value = t - certValue(c, Metric.certificateRenewalTime, secret, minute);
        } else if (alert === 'CertRotatorCertificateExpired') {
          value = t - certValue(c, Metric.certificateNotAfter, secret, minute);
        } else {
          value = certValue(c, Metric.certificateNotAfter, secret, minute) - t;
        }
      }
      const annotations = Object.fromEntries(
        Object.entries(rule.annotations).map(([k, tpl]) => [k, expand(tpl, labels, value)]),
      );
      return { exp_labels: { ...labels, severity }, exp_annotations: annotations };
    });
    tests.push({ eval_time: `${minute}m`, alertname: alert, exp_alerts: exp });
  }
  return tests;
}

async function writePromtoolTest(file: string, rulesFile: string, rules: Rule[], c: Capture): Promise<void> {
  const doc = {
    rule_files: [rulesFile],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: inputSeries(c),
        alert_rule_test: Object.keys(EXPECTED).flatMap((m) => expectedAlerts(rules, c, Number(m))),
      },
    ],
  };
  await writeFile(join(dir, file), stringify(doc, { lineWidth: 0 }));
}

// ---------------------------------------------------------------------------------------------

let rules: Rule[] = [];
let capture: Capture;
let controller: ControllerProcess;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cert-rotator-alerts-'));
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  rules = await renderRules('rules.yaml');

  const ca = await makeTestCA('cert-rotator alerts test CA');
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    issuers: [{ name: 'internal-ca', ca: { secret: { namespace: ns(), name: 'internal-ca' } } }],
    leaderElection: { namespace: ns() },
  });
  for (const name of [
    'expired',
    'expiring-10d',
    'expiring-5d',
    'fine',
    'managed-planned',
    'renewed',
  ] as const) {
    await createSecret(name);
  }
  controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  const url = await controller.metricsUrl();
  const instance = new URL(url).host;
  const scrape = async (): Promise<Scrape> => ({
    samples: parseScrape(await (await fetch(url)).text(), instance),
    up: true,
  });
  const failures = () =>
    metricValue(url, Metric.renewalsTotal, { issuer: 'internal-ca', result: 'failure' }).then((v) => v ?? 0);

  // Stage 0: every Secret exported, `renewed` renewed.
  await waitFor('renewed to be renewed', async () => {
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'renewed' });
    return s.metadata?.annotations?.[`${A}revision`] === '1' || undefined;
  });
  await waitFor('every Secret in the metrics, renewed with its new certificate', async () => {
    for (const name of [...Object.keys(SECRETS).filter((n) => !n.startsWith('failing')), 'internal-ca']) {
      if ((await metricValue(url, Metric.certificateNotAfter, { secret: name })) === undefined)
        return undefined;
    }
    const renewedNotAfter = await metricValue(url, Metric.certificateNotAfter, { secret: 'renewed' });
    return (renewedNotAfter ?? 0) * 1000 > Date.now() + 80 * DAY || undefined;
  });
  const t0 = Math.floor(Date.now() / 1000);
  const scrapes = [await scrape()];
  expect(await failures()).toBe(0);

  // Stage 1 and 2: one failing Secret each.
  for (const [i, name] of (['failing-a', 'failing-b'] as const).entries()) {
    await createSecret(name);
    await waitFor(`${name} to fail`, async () => ((await failures()) === i + 1 ? true : undefined));
    scrapes.push(await scrape());
  }

  // Stage 3: the controller is gone; the scrape fails.
  expect(await controller.stop()).toBe(0);
  await expect(fetch(url)).rejects.toThrow();
  scrapes.push({ samples: new Map(), up: false });
  capture = { scrapes, t0, instance };
});

afterAll(async () => {
  await killAllControllers();
});

describe('alert rules (promtool)', () => {
  it('promtool check rules accepts the rendered rules', async () => {
    const r = await run(testEnv().bins.promtool, ['check', 'rules', join(dir, 'rules.yaml')]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(rules.map((x) => x.alert)).toHaveLength(7);
  });

  it('the capture holds what the rules read: certificates of every Secret, planned renewals, failures', () => {
    const [s0, s1, s2] = capture.scrapes;
    const names = (s: Scrape | undefined) =>
      [...(s?.samples.keys() ?? [])]
        .filter((k) => k.startsWith(`${Metric.certificateNotAfter}{`))
        .map((k) => /secret="([^"]+)"/.exec(k)?.[1])
        .sort();
    expect(names(s0)).toEqual(
      ['expired', 'expiring-10d', 'expiring-5d', 'fine', 'internal-ca', 'managed-planned', 'renewed'].sort(),
    );
    expect(names(s2)).toEqual([...names(s0), 'failing-a', 'failing-b'].sort());
    const renewal = (s: Scrape | undefined) =>
      [...(s?.samples.keys() ?? [])].filter((k) => k.startsWith(`${Metric.certificateRenewalTime}{`)).length;
    expect(renewal(s0)).toBe(2); // managed-planned, renewed: only managed Secrets have a plan
    expect(renewal(s1)).toBe(3);
    const failure = (s: Scrape | undefined) =>
      [...(s?.samples ?? [])].find(
        ([k]) => k.startsWith(`${Metric.renewalsTotal}{`) && k.includes('failure'),
      )?.[1];
    expect([failure(s0), failure(s1), failure(s2)]).toEqual([undefined, 1, 2]);
  });

  it('promtool test rules: each alert fires when it should and stays silent when it should', async () => {
    await writePromtoolTest('alerts.test.yaml', 'rules.yaml', rules, capture);
    const r = await run(testEnv().bins.promtool, ['test', 'rules', 'alerts.test.yaml'], dir);
    expect(r.code, `${r.out}\n(files in ${dir})`).toBe(0);
    expect(r.out).toContain('SUCCESS');
  });

  it("the CA expiry alert: the controller exports its ca issuer's CA notAfter; a CA with less than 60 days left fires", async () => {
    // The capture's CA (one year left) keeps the alert silent above; here two issuers' series.
    const ca = [...(capture.scrapes[0]?.samples.keys() ?? [])].filter((k) =>
      k.startsWith(`${Metric.caNotAfter}{`),
    );
    expect(ca).toEqual([expect.stringContaining('issuer="internal-ca"')]);
    const day = 86_400;
    await writeFile(
      join(dir, 'ca-alert.test.yaml'),
      stringify({
        rule_files: ['rules.yaml'],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: [
              { series: `${Metric.caNotAfter}{issuer="old-ca",instance="a"}`, values: `${40 * day}x30` },
              { series: `${Metric.caNotAfter}{issuer="old-ca",instance="b"}`, values: `${40 * day}x30` },
              { series: `${Metric.caNotAfter}{issuer="new-ca",instance="a"}`, values: `${200 * day}x30` },
            ],
            alert_rule_test: [
              { eval_time: '10m', alertname: 'CertRotatorCAExpiringSoon', exp_alerts: [] },
              {
                eval_time: '20m',
                alertname: 'CertRotatorCAExpiringSoon',
                exp_alerts: [
                  {
                    exp_labels: { severity: 'warning', issuer: 'old-ca' },
                    exp_annotations: {
                      summary: 'The CA of issuer old-ca expires in less than 60 days',
                      description: `The signing CA of ca issuer old-ca expires in ${humanizeDuration(40 * day - 20 * 60)}; leaves it signs are cut off at that time. Stage the next CA and let cert-rotator roll it over (docs/ca-rollover.md) well before then.`,
                    },
                  },
                ],
              },
            ],
          },
        ],
      }),
    );
    const r = await run(testEnv().bins.promtool, ['test', 'rules', 'ca-alert.test.yaml'], dir);
    expect(r.code, `${r.out}\n(files in ${dir})`).toBe(0);
  });

  it('the thresholds come from values: with critical at 4 days the 5-day certificate is only a warning', async () => {
    // Same series and expectations, rules rendered with another threshold: promtool must object.
    const alt = await renderRules('rules-critical-4d.yaml', 'prometheusRule.alerts.expiringCritical.days=4');
    expect(alt.find((x) => x.alert === 'CertRotatorCertificateExpiringCritical')?.expr).toContain(
      '< 4 * 86400',
    );
    await writePromtoolTest('alerts-critical-4d.test.yaml', 'rules-critical-4d.yaml', alt, capture);
    const r = await run(testEnv().bins.promtool, ['test', 'rules', 'alerts-critical-4d.test.yaml'], dir);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/alertname: CertRotatorCertificateExpiringSoon[\s\S]*secret="expiring-5d"/);
    expect(r.out).toMatch(/alertname: CertRotatorCertificateExpiringCritical/);
  });
});
