/**
 * The certificate monitor against the real API server: one object per source, created before
 * the controller starts (seen by the list) and changed after (seen by the watch). Every
 * expectation compares /metrics with the certificates as node:crypto reads them. The last test
 * feeds the webhook's scraped series to promtool with the chart's rules.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { EventReason, Metric } from '../../src/names.ts';
import { certificatesFromPem, generateKey, issueCertificate, toPem } from '../../src/pki/index.ts';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { eventsFor, makeLeaf, makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const FIXTURES = new URL('../unit/monitor/fixtures/', import.meta.url);
const CHART = new URL('../../charts/cert-rotator', import.meta.url).pathname;

const ns = useNamespace(import.meta.url);
let dir = '';
let core: k8s.CoreV1Api;
let admission: k8s.AdmissionregistrationV1Api;
let apiext: k8s.ApiextensionsV1Api;
let controller: ControllerProcess;
let url = '';
let configPath = '';
let chain: Pair;
let webhookCA: Pair;
let names: { vw: string; mw: string; crd: string; group: string };

const b64 = (v: string | Uint8Array) => Buffer.from(v).toString('base64');
/** notAfter of each certificate of a PEM bundle, in Unix seconds, as node:crypto reads it. */
const notAfters = (pem: string) =>
  certificatesFromPem(pem).map((der) => Date.parse(new X509Certificate(der).validTo) / 1000);

/** Every x509 sample of one scrape: `labels` text (without braces) → value. */
async function x509(metric: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(metric.length + 1, at - 1), Number(line.slice(at + 1)));
  }
  return out;
}

/** The values of one object's series, by `key#index`, from a scrape. */
function seriesOf(samples: Map<string, number>, source: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [labels, value] of samples) {
    if (!labels.startsWith(`source="${source}",`) || !labels.includes(`name="${name}",`)) continue;
    const key = /key="([^"]*)"/.exec(labels)?.[1] ?? '';
    const index = /index="(\d+)"/.exec(labels)?.[1];
    out[`${key}#${index}`] = value;
  }
  return out;
}

function readErrorsOf(samples: Map<string, number>, name: string): string[] {
  return [...samples.keys()]
    .filter((l) => l.includes(`name="${name}",`))
    .map((l) => `${/key="([^"]*)"/.exec(l)?.[1]}:${/reason="([^"]*)"/.exec(l)?.[1]}`);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cr-monitor-it-'));
  const kc = adminKubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  admission = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
  apiext = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const n = ns();
  names = { vw: `${n}-vw`, mw: `${n}-mw`, group: `${n}.example.com`, crd: `widgets.${n}.example.com` };

  // root → intermediate → leaf; a 2-day CA for the webhooks.
  const root = await makeTestCA('monitor root', 300 * DAY);
  const intKey = await generateKey('ecdsa-p256');
  const int = await issueCertificate({
    subjectKeyPem: intKey.privateKeyPem,
    identity: { commonName: 'monitor intermediate', dnsNames: [], ipAddresses: [], uris: [] },
    notBefore: Date.now() - MIN,
    notAfter: Date.now() + 200 * DAY,
    issuer: root,
    isCA: true,
  });
  const leaf = await makeLeaf({
    dnsNames: ['leaf.example.com'],
    fromMs: -MIN,
    toMs: 40 * DAY,
    ca: { certPem: int.certPem, keyPem: intKey.privateKeyPem },
  });
  const first = (pem: string) => toPem('CERTIFICATE', certificatesFromPem(pem)[0] as Uint8Array);
  chain = { certPem: first(leaf.certPem) + first(int.certPem) + first(root.certPem), keyPem: leaf.keyPem };
  webhookCA = await makeTestCA('webhook CA', 2 * DAY);
  const leafOnly = toPem('CERTIFICATE', certificatesFromPem(chain.certPem)[0] as Uint8Array);
  const p12 = await readFile(new URL('modern.p12', FIXTURES));
  const jks = await readFile(new URL('trust.jks', FIXTURES));

  const opaque = (name: string, data: Record<string, string | Uint8Array>) =>
    core.createNamespacedSecret({
      namespace: n,
      body: {
        metadata: { name },
        type: 'Opaque',
        data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
      },
    });
  await opaque('bundle', { 'ca.crt': chain.certPem, 'tls.key.pem': chain.keyPem, unrelated: 'x' });
  await opaque('der', { 'leaf.der': certificatesFromPem(chain.certPem)[0] as Uint8Array });
  await opaque('broken', {
    'ca.crt': '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n',
  });
  await opaque('ks-good', { 'keystore.p12': p12, password: 's3cret' });
  await opaque('ks-wrong', { 'keystore.p12': p12, password: 'not-the-password' });
  await opaque('ks-jks', { 'truststore.jks': jks, password: 'changeit' });
  await opaque('kc', {
    kubeconfig: stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'prod',
          cluster: { server: 'https://127.0.0.1:1', 'certificate-authority-data': b64(root.certPem) },
        },
      ],
      users: [
        {
          name: 'ci',
          user: { 'client-certificate-data': b64(leafOnly), 'client-key-data': b64(chain.keyPem) },
        },
      ],
    }),
  });
  await core.createNamespacedConfigMap({
    namespace: n,
    body: { metadata: { name: 'trust', labels: { team: 'payments' } }, data: { 'ca.crt': chain.certPem } },
  });
  // The existing TLS source, to show that its series are unchanged.
  await core.createNamespacedSecret({ namespace: n, body: tlsSecret('tls', chain) });

  // Webhooks that intercept nothing: rules for a group no one serves, failurePolicy Ignore.
  const hook = (name: string) => ({
    name,
    clientConfig: { url: 'https://127.0.0.1:1/never', caBundle: b64(webhookCA.certPem) },
    rules: [
      { apiGroups: [names.group], apiVersions: ['v1'], operations: ['CREATE'], resources: ['nothing'] },
    ],
    failurePolicy: 'Ignore',
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
  });
  const labels = { 'cert-rotator-test': n };
  await admission.createValidatingWebhookConfiguration({
    body: { metadata: { name: names.vw, labels }, webhooks: [hook(`check.${names.group}`)] },
  });
  await admission.createMutatingWebhookConfiguration({
    body: {
      metadata: { name: names.mw, labels },
      webhooks: [{ ...hook(`mutate.${names.group}`), reinvocationPolicy: 'Never' }],
    },
  });
  const schema = { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } };
  await apiext.createCustomResourceDefinition({
    body: {
      metadata: { name: names.crd, labels },
      spec: {
        group: names.group,
        names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
        scope: 'Namespaced',
        versions: [
          { name: 'v1', served: true, storage: true, schema },
          { name: 'v2', served: true, storage: false, schema },
        ],
        conversion: {
          strategy: 'Webhook',
          webhook: {
            conversionReviewVersions: ['v1'],
            clientConfig: { url: 'https://127.0.0.1:1/convert', caBundle: b64(chain.certPem) },
          },
        },
      },
    },
  });

  configPath = await writeConfig(dir, {
    namespaces: [n],
    monitoring: {
      copyLabels: ['team'],
      secrets: { enabled: true, keys: ['*.crt', '*.der'] },
      configMaps: { enabled: true, keys: ['ca.crt'] },
      keystores: { enabled: true, password: { key: 'password' } },
      kubeconfigs: { enabled: true },
      webhooks: { enabled: true, labelSelector: `cert-rotator-test=${n}` },
    },
  });
  controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  url = await controller.metricsUrl();
});

afterAll(async () => {
  await killAllControllers();
  await admission.deleteValidatingWebhookConfiguration({ name: names.vw }).catch(() => undefined);
  await admission.deleteMutatingWebhookConfiguration({ name: names.mw }).catch(() => undefined);
  await apiext.deleteCustomResourceDefinition({ name: names.crd }).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('certificate monitor (real API server)', () => {
  it('exports every certificate of every source with its notAfter', async () => {
    const want = notAfters(chain.certPem);
    const samples = await waitFor('the monitor to read every source', async () => {
      const s = await x509(Metric.x509NotAfter);
      return seriesOf(s, 'crdconversion', names.crd)['conversion#2'] !== undefined &&
        seriesOf(s, 'configmap', 'trust')['ca.crt#2'] !== undefined &&
        seriesOf(s, 'keystore', 'ks-jks')['truststore.jks#1'] !== undefined
        ? s
        : undefined;
    });
    const bundle = { 'ca.crt#0': want[0], 'ca.crt#1': want[1], 'ca.crt#2': want[2] };
    expect(seriesOf(samples, 'secret', 'bundle')).toEqual(bundle);
    expect(seriesOf(samples, 'secret', 'der')).toEqual({ 'leaf.der#0': want[0] });
    expect(seriesOf(samples, 'configmap', 'trust')).toEqual(bundle);
    const fixtures = JSON.parse(await readFile(new URL('expected.json', FIXTURES), 'utf8')) as Record<
      string,
      string
    >;
    const fx = (k: string) => Date.parse(fixtures[k] as string) / 1000;
    expect(Object.values(seriesOf(samples, 'keystore', 'ks-good')).sort()).toEqual(
      [fx('leaf'), fx('int'), fx('root')].sort(),
    );
    expect(Object.values(seriesOf(samples, 'keystore', 'ks-jks')).sort()).toEqual(
      [fx('int'), fx('root')].sort(),
    );
    expect(seriesOf(samples, 'kubeconfig', 'kc')).toEqual({
      'kubeconfig:cluster/prod#0': want[2],
      'kubeconfig:user/ci#0': want[0],
    });
    const hookAfter = notAfters(webhookCA.certPem)[0];
    expect(seriesOf(samples, 'validatingwebhook', names.vw)).toEqual({
      [`check.${names.group}#0`]: hookAfter,
    });
    expect(seriesOf(samples, 'mutatingwebhook', names.mw)).toEqual({
      [`mutate.${names.group}#0`]: hookAfter,
    });
    expect(seriesOf(samples, 'crdconversion', names.crd)).toEqual({
      'conversion#0': want[0],
      'conversion#1': want[1],
      'conversion#2': want[2],
    });
    // Names: the intermediate's CN, issued by the root; cluster-scoped objects have no namespace label.
    expect([...samples.keys()].find((l) => l.startsWith('source="secret"') && l.includes('index="1"'))).toBe(
      `source="secret",namespace="${ns()}",name="bundle",key="ca.crt",index="1",subject_cn="monitor intermediate",issuer_cn="monitor root"`,
    );
    expect(
      [...samples.keys()]
        .filter((l) => l.startsWith('source="validatingwebhook"'))
        .every((l) => !l.includes('namespace=')),
    ).toBe(true);
    // copyLabels: the ConfigMap's team label on its series, nothing on objects without it.
    expect(
      [...samples.keys()].filter((l) => l.includes('label_team=')).map((l) => /name="([^"]+)"/.exec(l)?.[1]),
    ).toEqual(['trust', 'trust', 'trust']);
    expect(
      [...samples.keys()].find((l) => l.startsWith('source="configmap"') && l.includes('name="trust"')),
    ).toMatch(/,label_team="payments"$/);
    // TLS Secrets are not read twice: the secret source excludes their type.
    expect(seriesOf(samples, 'secret', 'tls')).toEqual({});
  });

  it('keeps the TLS-Secret series exactly as before', async () => {
    const text = await (await fetch(url)).text();
    expect(text).toContain(
      `${Metric.certificateNotAfter}{namespace="${ns()}",secret="tls",issuer="",managed="false"} ${notAfters(chain.certPem)[0]}`,
    );
  });

  it('a wrong keystore password and a malformed object are read errors and events; the others are unaffected', async () => {
    const errors = await x509(Metric.x509ReadErrors);
    expect(readErrorsOf(errors, 'ks-wrong')).toEqual(['keystore.p12:wrong-password']);
    expect(readErrorsOf(errors, 'broken')).toEqual(['ca.crt:malformed']);
    expect(readErrorsOf(errors, 'ks-good')).toEqual([]);
    const event = await waitFor('the CertificateUnreadable event', async () =>
      (await eventsFor(core, ns(), 'ks-wrong')).find((e) => e.reason === EventReason.certificateUnreadable),
    );
    expect(event.type).toBe('Warning');
    expect(event.involvedObject.kind).toBe('Secret');
    expect(event.message).toBe(
      'certificates cannot be read: keystore.p12: the PKCS#12 integrity check failed: wrong password',
    );
    expect(event.message).not.toContain('not-the-password');
  });

  it('cert-rotator scan --config lists the same sources, read errors included', async () => {
    const cli = new URL('../../src/cli.ts', import.meta.url).pathname;
    const r = await run(process.execPath, [
      cli,
      'scan',
      '--config',
      configPath,
      '--kubeconfig',
      testEnv().kubeconfigPath,
      '-o',
      'json',
    ]);
    const rows = (
      JSON.parse(r.out.slice(r.out.indexOf('{'))) as {
        items: Array<{
          kind: string;
          namespace: string | null;
          name: string;
          source: string | null;
          notAfter: string | null;
          problems: string[];
        }>;
      }
    ).items.filter(
      (row) => row.namespace === ns() || row.name.startsWith(ns()) || row.name.endsWith(names.group),
    );
    const find = (name: string, source: string | null) =>
      rows.find((row) => row.name === name && row.source === source);
    const want = notAfters(chain.certPem).map((s) => new Date(s * 1000).toISOString());
    expect(find('bundle', 'secret ca.crt 3 of 3')?.notAfter).toBe(want[2]);
    expect(find('tls', null)?.kind).toBe('Secret');
    expect(find('trust', 'configmap ca.crt 1 of 3')?.kind).toBe('ConfigMap');
    expect(find(names.vw, `validatingwebhook check.${names.group}`)?.kind).toBe(
      'ValidatingWebhookConfiguration',
    );
    expect(find('ks-wrong', 'keystore keystore.p12')?.problems).toEqual([
      'wrong-password: the PKCS#12 integrity check failed: wrong password',
    ]);
    expect(find('kc', 'kubeconfig kubeconfig:user/ci')?.notAfter).toBe(want[0]);
  });

  it('follows updates and deletions through the watch', async () => {
    const fresh = await makeLeaf({ dnsNames: ['fresh.example.com'], fromMs: -MIN, toMs: 90 * DAY });
    await core.replaceNamespacedSecret({
      namespace: ns(),
      name: 'bundle',
      body: { metadata: { name: 'bundle' }, type: 'Opaque', data: { 'ca.crt': b64(fresh.certPem) } },
    });
    // The wrong password fixed: the read error goes, the certificates come.
    await core.patchNamespacedSecret(
      { namespace: ns(), name: 'ks-wrong', body: { data: { password: b64('s3cret') } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await core.deleteNamespacedConfigMap({ namespace: ns(), name: 'trust' });
    await admission.deleteValidatingWebhookConfiguration({ name: names.vw });
    const want = notAfters(fresh.certPem)[0];
    await waitFor('the watch to deliver every change', async () => {
      const s = await x509(Metric.x509NotAfter);
      const errors = await x509(Metric.x509ReadErrors);
      const bundle = seriesOf(s, 'secret', 'bundle');
      return JSON.stringify(bundle) === JSON.stringify({ 'ca.crt#0': want }) &&
        Object.keys(seriesOf(s, 'keystore', 'ks-wrong')).length === 3 &&
        readErrorsOf(errors, 'ks-wrong').length === 0 &&
        Object.keys(seriesOf(s, 'configmap', 'trust')).length === 0 &&
        Object.keys(seriesOf(s, 'validatingwebhook', names.vw)).length === 0
        ? true
        : undefined;
    });
    const s = await x509(Metric.x509NotAfter);
    expect(Object.keys(seriesOf(s, 'mutatingwebhook', names.mw))).toHaveLength(1);
    await core.deleteNamespacedSecret({ namespace: ns(), name: 'broken' });
    await waitFor('the read error of a deleted Secret to go', async () =>
      readErrorsOf(await x509(Metric.x509ReadErrors), 'broken').length === 0 ? true : undefined,
    );
  });

  it("an APIService's caBundle: exported while it exists, gone once it is deleted", async () => {
    // Created and deleted within the test: an APIService whose service does not exist makes
    // discovery of its group fail, which must not outlive this test.
    const apireg = adminKubeConfig().makeApiClient(k8s.ApiregistrationV1Api);
    // Not the CRD's group: that one already has the local APIService the CRD registered.
    const group = `agg-${names.group}`;
    const name = `v1.${group}`;
    await apireg.createAPIService({
      body: {
        metadata: { name, labels: { 'cert-rotator-test': ns() } },
        spec: {
          group,
          version: 'v1',
          service: { namespace: ns(), name: 'nothing-here', port: 443 },
          caBundle: b64(webhookCA.certPem),
          groupPriorityMinimum: 1000,
          versionPriority: 15,
        },
      },
    });
    try {
      const series = await waitFor('the APIService series', async () => {
        const s = seriesOf(await x509(Metric.x509NotAfter), 'apiservice', name);
        return Object.keys(s).length > 0 ? s : undefined;
      });
      expect(series).toEqual({ 'caBundle#0': notAfters(webhookCA.certPem)[0] });
    } finally {
      await apireg.deleteAPIService({ name });
    }
    await waitFor('the APIService series to go', async () =>
      Object.keys(seriesOf(await x509(Metric.x509NotAfter), 'apiservice', name)).length === 0
        ? true
        : undefined,
    );
  });

  it('promtool: a webhook CA bundle expiring in 2 days fires the critical alert', async () => {
    const bins = testEnv().bins;
    const rendered = await run(bins.helm, [
      'template',
      'cert-rotator',
      CHART,
      '--namespace',
      'cert-rotator',
      '--set',
      'prometheusRule.enabled=true',
      '--set',
      'config.monitoring.webhooks.enabled=true',
      '--show-only',
      'templates/prometheusrule.yaml',
    ]);
    expect(rendered.code, rendered.out).toBe(0);
    const spec = (
      parse(rendered.out) as {
        spec: { groups: Array<{ rules: Array<{ alert: string; annotations: Record<string, string> }> }> };
      }
    ).spec;
    await writeFile(join(dir, 'rules.yaml'), stringify(spec));
    const rule = spec.groups
      .flatMap((g) => g.rules)
      .find((r) => r.alert === 'CertRotatorWebhookCABundleExpiring');
    expect(rule).toBeDefined();
    // The mutating webhook's series and a keystore's as scraped, times shifted so that promtool's 0 is now.
    const now = Math.floor(Date.now() / 1000);
    const all = [...(await x509(Metric.x509NotAfter))];
    const hook = all.filter(
      ([l]) => l.startsWith('source="mutatingwebhook"') && l.includes(`name="${names.mw}"`),
    );
    const fine = all.filter(([l]) => l.startsWith('source="keystore"') && l.includes('name="ks-good"'));
    expect(hook).toHaveLength(1);
    const series = (rows: Array<[string, number]>) =>
      rows.map(([labels, v]) => ({
        series: `${Metric.x509NotAfter}{${labels},job="cert-rotator",instance="a"}`,
        values: `${v - now}x60`,
      }));
    const [hookLabels, hookNotAfter] = hook[0] as [string, number];
    const labels = Object.fromEntries(
      [...hookLabels.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] as string, m[2] as string]),
    );
    const value = hookNotAfter - now - 20 * 60;
    await writeFile(
      join(dir, 'x509.test.yaml'),
      stringify({
        rule_files: ['rules.yaml'],
        evaluation_interval: '1m',
        tests: [
          {
            interval: '1m',
            input_series: [...series(hook), ...series(fine)],
            alert_rule_test: [
              // for: 15m — pending at 10 minutes, firing at 20.
              { eval_time: '10m', alertname: 'CertRotatorWebhookCABundleExpiring', exp_alerts: [] },
              {
                eval_time: '20m',
                alertname: 'CertRotatorWebhookCABundleExpiring',
                exp_alerts: [
                  {
                    exp_labels: { ...labels, severity: 'critical' },
                    exp_annotations: Object.fromEntries(
                      Object.entries(rule?.annotations ?? {}).map(([k, t]) => [k, expand(t, labels, value)]),
                    ),
                  },
                ],
              },
              // The keystore's certificates have months (the fixtures years) left: silent.
              { eval_time: '20m', alertname: 'CertRotatorX509CertificateExpiringSoon', exp_alerts: [] },
              { eval_time: '20m', alertname: 'CertRotatorX509CertificateExpiringCritical', exp_alerts: [] },
            ],
          },
        ],
      }),
    );
    const r = await run(bins.promtool, ['test', 'rules', 'x509.test.yaml'], dir);
    expect(r.code, `${r.out}\n(files in ${dir})`).toBe(0);
    expect(r.out).toContain('SUCCESS');
  });
});

/** The parts of Go templates the chart's annotations use: labels, `if` on a label, humanizeDuration. */
function expand(template: string, labels: Record<string, string>, value: number): string {
  return template
    .replace(/\{\{ if \$labels\.(\w+) \}\}(.*?)\{\{ end \}\}/g, (_, k: string, inner: string) =>
      labels[k] ? inner : '',
    )
    .replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, k: string) => labels[k] ?? '')
    .replace(/\{\{ \$value \| humanizeDuration \}\}/g, () => humanizeDuration(value));
}

/** Prometheus' humanizeDuration for whole seconds of at least one. */
function humanizeDuration(v: number): string {
  const d = Math.trunc(v);
  const [days, hours, minutes, seconds] = [
    Math.trunc(d / 86400),
    Math.trunc(d / 3600) % 24,
    Math.trunc(d / 60) % 60,
    d % 60,
  ];
  if (days) return `${days}d ${hours}h ${minutes}m ${seconds}s`;
  if (hours) return `${hours}h ${minutes}m ${seconds}s`;
  if (minutes) return `${minutes}m ${seconds}s`;
  return `${seconds}s`;
}

async function run(bin: string, args: string[], cwd?: string): Promise<{ code: number; out: string }> {
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
