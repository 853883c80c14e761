/**
 * The Grafana dashboard checked for real: a real Prometheus (Debian's package) scrapes a real
 * controller every second while renewals (two rounds, by the CA and through the CSR API with
 * kube-controller-manager signing), failures, a rollout and a bad annotation happen against the
 * test API server. Then every panel's query, with the dashboard's variables filled from their own
 * label_values() through Prometheus' API and Grafana's $__rate_interval worked out the way
 * Grafana does, is evaluated with query_range over the run (test/testenv/dashboard.ts): a panel
 * that returns no number fails the test, named. The ca issuer exports its CA's rollover phase and
 * expiry; the ConfigMap source is on, with a ConfigMap holding a certificate and an unreadable
 * value. The chart's ConfigMap carries the file as it is, with the sidecar's label.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import {
  CHECKED_ELSEWHERE,
  DASHBOARD,
  evaluatePanels,
  type Prometheus,
  readDashboard,
  startPrometheus,
} from '../testenv/dashboard.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { makeLeaf, makeTestCA, tlsSecret, waitForRevision } from '../testenv/tls-fixtures.ts';

const CHART = new URL('../../charts/cert-rotator', import.meta.url).pathname;
const A = 'cert-rotator.io/';
const DAY = 86_400_000;

const ns = useNamespace(import.meta.url);
let core: k8s.CoreV1Api;
let prometheus: Prometheus;
let controller: ControllerProcess;

async function requestRenewal(name: string, token: string): Promise<void> {
  await core.patchNamespacedSecret(
    { namespace: ns(), name, body: { metadata: { annotations: { [`${A}renew-requested-at`]: token } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
}

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const apps = adminKubeConfig().makeApiClient(k8s.AppsV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-dashboard-'));
  const ca = await makeTestCA('cert-rotator dashboard test CA');
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    defaults: { issuer: 'internal-ca' },
    renewalBackoff: { base: '1s', cap: '2s' },
    rollout: { debounce: '0' },
    // One monitoring source on, for the panels of certificates outside TLS Secrets.
    monitoring: { configMaps: { enabled: true, keys: ['*.crt'] } },
    issuers: [
      { name: 'internal-ca', ca: { secret: { namespace: ns(), name: 'internal-ca' } } },
      {
        name: 'kcm-client',
        kubernetesCSR: { signerName: 'kubernetes.io/kube-apiserver-client', autoApprove: true },
        allowedCommonNames: ['csr-user-*'],
      },
    ],
  });
  controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  const metricsUrl = new URL(await controller.metricsUrl());
  await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');

  prometheus = await startPrometheus(dir, [metricsUrl.host]);
  const instant = prometheus.instant;

  // Things happen while Prometheus watches.
  await core.createNamespacedConfigMap({
    namespace: ns(),
    body: {
      metadata: { name: 'trust' },
      data: { 'ca.crt': ca.certPem, 'broken.crt': 'not a certificate' },
    },
  });
  const due = await makeLeaf({ dnsNames: ['web.example.com'], fromMs: -10 * 60_000, toMs: 2 * 60_000 });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret('web', due, { [`${A}enabled`]: 'true' }),
  });
  await apps.createNamespacedDeployment({
    namespace: ns(),
    body: {
      metadata: { name: 'web' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
            volumes: [{ name: 'tls', secret: { secretName: 'web' } }],
          },
        },
      },
    },
  });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: {
      metadata: {
        name: 'client',
        annotations: {
          [`${A}enabled`]: 'true',
          [`${A}issuer`]: 'kcm-client',
          [`${A}common-name`]: 'csr-user-dash',
        },
      },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': '', 'tls.key': '' },
    },
  });
  const failing = await makeLeaf({ dnsNames: ['failing.example.com'], fromMs: -27 * DAY, toMs: 3 * DAY });
  failing.keyPem = (await makeLeaf({ dnsNames: ['x.example.com'], fromMs: -DAY, toMs: DAY })).keyPem;
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret('failing', failing, { [`${A}enabled`]: 'true', [`${A}rotate-key`]: 'false' }),
  });
  const expired = await makeLeaf({ dnsNames: ['old.example.com'], fromMs: -30 * DAY, toMs: -DAY });
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('old', expired) });
  const fine = await makeLeaf({ dnsNames: ['bad.example.com'], fromMs: -DAY, toMs: 60 * DAY });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret('bad', fine, { [`${A}enabled`]: 'true', [`${A}renew-before`]: 'soon' }),
  });
  await waitForRevision(core, ns(), 'web', '1', 30_000);
  await waitForRevision(core, ns(), 'client', '1', 60_000);
  // Each round is held until Prometheus has five scrapes of it, so a rate over the next round
  // sees the counters and histograms move (a series' first sample is no increase to a rate).
  // The deadline is generous (a loaded 2-core machine in the middle of the whole suite); on a
  // time-out the error names what each part of the condition stood at.
  const seen = async (expr: string) => {
    try {
      await waitFor(
        `Prometheus to hold 5 scrapes of ${expr}`,
        async () => ((await instant(`min_over_time((${expr})[5s:1s]) > 0`)).length === 1 ? true : undefined),
        { timeoutMs: 90_000 },
      );
    } catch (err) {
      const parts = await Promise.all(
        expr.split(' and ').map(async (part) => {
          const sum = part.replace(/\s*>=\s*\d+$/, '');
          const r = await instant(sum).catch(() => []);
          return `${sum} = ${r[0]?.value[1] ?? 'no data'}`;
        }),
      );
      throw new Error(`${(err as Error).message}; now: ${parts.join(', ')}`);
    }
  };
  await seen(
    'sum(cert_rotator_renewals_total{result="success"}) >= 2 and sum(cert_rotator_rollouts_total) >= 1 and sum(cert_rotator_secret_errors_total) >= 1 and sum(cert_rotator_renewals_total{result="failure"}) >= 1 and count(cert_rotator_x509_not_after_timestamp_seconds) >= 1 and count(cert_rotator_x509_read_errors) >= 1 and count(cert_rotator_ca_not_after_timestamp_seconds) >= 1',
  );
  // A second round, so rates and histogram quantiles have something to measure.
  await requestRenewal('web', '2026-01-01T00:00:00Z');
  await requestRenewal('client', '2026-01-01T00:00:00Z');
  await waitForRevision(core, ns(), 'web', '2', 30_000);
  await waitForRevision(core, ns(), 'client', '2', 60_000);
  await seen(
    'sum(cert_rotator_renewals_total{result="success"}) >= 4 and sum(cert_rotator_rollouts_total{result="success"}) >= 2',
  );
}, 240_000);

afterAll(async () => {
  await killAllControllers();
  await prometheus?.stop();
});

describe('the Grafana dashboard', () => {
  it('every panel query returns data from a real Prometheus scraping a real controller', async () => {
    const dashboard = await readDashboard();
    const failures: string[] = [];
    for (const title of CHECKED_ELSEWHERE.keys()) {
      if (!dashboard.panels.some((p) => p.title === title)) {
        failures.push(`CHECKED_ELSEWHERE lists "${title}", which the dashboard does not have`);
      }
    }
    const r = await evaluatePanels(prometheus, dashboard, {
      noDataAllowed: new Set(CHECKED_ELSEWHERE.keys()),
    });
    expect([...failures, ...r.failures]).toEqual([]);
    const panels = dashboard.panels.filter((p) => p.type !== 'row').length;
    expect(r.checked).toBeGreaterThanOrEqual(panels - CHECKED_ELSEWHERE.size);
    console.log(
      `[dashboard] ${panels} panels, ${r.checked} queries checked against Prometheus: all returned data; ` +
        `${CHECKED_ELSEWHERE.size} panels (${r.accepted} queries) accepted here, checked for data elsewhere: ` +
        [...CHECKED_ELSEWHERE].map(([t, where]) => `${t} in ${where}`).join(', '),
    );
  });

  it('ships in the chart as a ConfigMap for the Grafana sidecar, off by default', async () => {
    const helm = (args: string[]) =>
      new Promise<string>((resolve, reject) =>
        execFile(testEnv().bins.helm, args, { maxBuffer: 16 << 20 }, (err, out, errOut) =>
          err ? reject(new Error(errOut)) : resolve(out),
        ),
      );
    const off = await helm(['template', 'cr', CHART]);
    expect(off).not.toContain('grafana_dashboard');
    const on = await helm(['template', 'cr', CHART, '--set', 'grafanaDashboard.enabled=true']);
    const cm = parseAllDocuments(on)
      .map(
        (d) =>
          d.toJS() as {
            kind?: string;
            metadata?: { name?: string; labels?: Record<string, string> };
            data?: Record<string, string>;
          },
      )
      .find((d) => d?.kind === 'ConfigMap' && d.metadata?.name?.endsWith('-dashboard'));
    expect(cm?.metadata?.labels?.grafana_dashboard).toBe('1');
    expect(JSON.parse(cm?.data?.['cert-rotator.json'] ?? '{}')).toEqual(
      JSON.parse(await readFile(DASHBOARD, 'utf8')),
    );
  });
});
