/**
 * The chart's grants for the monitoring sources, for real: `helm install` in namespaced mode with
 * ConfigMaps and ValidatingWebhookConfigurations turned on, the controller run with the chart's
 * ServiceAccount token and rendered config, its series checked, and the API server asked what
 * else that account may do (nothing the enabled sources do not read).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { Metric } from '../../src/names.ts';
import { killAllControllers, startControllerProcess, writeConfig } from '../testenv/controller-process.ts';
import { adminKubeConfig, serviceAccountKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { makeTestCA } from '../testenv/tls-fixtures.ts';

const CHART = new URL('../../charts/cert-rotator', import.meta.url).pathname;
const ns = useNamespace(import.meta.url);
let dir = '';
let release = '';
let admin: k8s.KubeConfig;
let sa: k8s.KubeConfig;
let url = '';

async function helm(args: string[]): Promise<{ code: number; out: string }> {
  return await new Promise((resolve) => {
    execFile(
      testEnv().bins.helm,
      args,
      { env: { PATH: process.env.PATH ?? '', HOME: dir }, maxBuffer: 16 << 20 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr }),
    );
  });
}

function valuesFor(namespace: string): Record<string, unknown> {
  return {
    rbac: { scope: 'namespaced' },
    watchNamespaces: [namespace],
    image: { repository: 'registry.invalid/cert-rotator', tag: 'never' },
    config: {
      monitoring: {
        configMaps: { enabled: true, keys: ['ca.crt'] },
        webhooks: {
          enabled: true,
          kinds: ['ValidatingWebhookConfiguration'],
          labelSelector: `cert-rotator-test=${namespace}`,
        },
      },
    },
  };
}

async function can(attrs: { verb: string; resource: string; group?: string; namespace?: string }) {
  const review = await sa.makeApiClient(k8s.AuthorizationV1Api).createSelfSubjectAccessReview({
    body: {
      spec: {
        resourceAttributes: {
          verb: attrs.verb,
          resource: attrs.resource,
          group: attrs.group ?? '',
          ...(attrs.namespace ? { namespace: attrs.namespace } : {}),
        },
      },
    },
  });
  return review.status?.allowed === true;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cr-monitor-chart-'));
  admin = adminKubeConfig();
  const core = admin.makeApiClient(k8s.CoreV1Api);
  release = `m${Math.random().toString(36).slice(2, 8)}`;
  const ca = await makeTestCA('monitored CA', 30 * 86_400_000);
  await core.createNamespacedConfigMap({
    namespace: ns(),
    body: { metadata: { name: 'trust' }, data: { 'ca.crt': ca.certPem } },
  });
  await admin.makeApiClient(k8s.AdmissionregistrationV1Api).createValidatingWebhookConfiguration({
    body: {
      metadata: { name: `${ns()}-vw`, labels: { 'cert-rotator-test': ns() } },
      webhooks: [
        {
          name: `check.${ns()}.example.com`,
          clientConfig: {
            url: 'https://127.0.0.1:1/never',
            caBundle: Buffer.from(ca.certPem).toString('base64'),
          },
          rules: [
            {
              apiGroups: [`${ns()}.example.com`],
              apiVersions: ['v1'],
              operations: ['CREATE'],
              resources: ['x'],
            },
          ],
          failurePolicy: 'Ignore',
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
        },
      ],
    },
  });
  const valuesFile = join(dir, 'values.yaml');
  await writeFile(valuesFile, stringify(valuesFor(ns())));
  const r = await helm([
    'install',
    release,
    CHART,
    '--namespace',
    ns(),
    '--kubeconfig',
    testEnv().kubeconfigPath,
    '-f',
    valuesFile,
  ]);
  expect(r.code, r.out).toBe(0);
  const fullname = `${release}-cert-rotator`;
  const cm = await core.readNamespacedConfigMap({ namespace: ns(), name: fullname });
  const configPath = await writeConfig(dir, cm.data?.['config.yaml'] ?? '');
  sa = await serviceAccountKubeConfig(admin, ns(), fullname);
  const kubeconfigPath = join(dir, 'kubeconfig');
  await writeFile(kubeconfigPath, sa.exportConfig());
  const proc = startControllerProcess({ configPath, kubeconfigPath });
  url = await proc.metricsUrl();
});

afterAll(async () => {
  await killAllControllers();
  await helm(['uninstall', release, '--namespace', ns(), '--kubeconfig', testEnv().kubeconfigPath, '--wait']);
  await admin
    .makeApiClient(k8s.AdmissionregistrationV1Api)
    .deleteValidatingWebhookConfiguration({ name: `${ns()}-vw` })
    .catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('chart grants for the monitoring sources', () => {
  it('suffice: the chart ServiceAccount exports the ConfigMap and the webhook caBundle, with no list error', async () => {
    const text = await waitFor('both series', async () => {
      const t = await (await fetch(url)).text();
      return t.includes(`${Metric.x509NotAfter}{source="configmap",namespace="${ns()}",name="trust",`) &&
        t.includes(`${Metric.x509NotAfter}{source="validatingwebhook",name="${ns()}-vw",`)
        ? t
        : undefined;
    });
    expect(text).not.toContain(`${Metric.x509ReadErrors}{`);
  });

  it('are no more than the enabled sources read', async () => {
    expect(await can({ verb: 'list', resource: 'configmaps', namespace: ns() })).toBe(true);
    expect(await can({ verb: 'watch', resource: 'configmaps', namespace: ns() })).toBe(true);
    expect(await can({ verb: 'get', resource: 'configmaps', namespace: ns() })).toBe(false);
    expect(await can({ verb: 'update', resource: 'configmaps', namespace: ns() })).toBe(false);
    expect(await can({ verb: 'list', resource: 'configmaps', namespace: 'kube-system' })).toBe(false);
    const group = 'admissionregistration.k8s.io';
    expect(await can({ verb: 'list', resource: 'validatingwebhookconfigurations', group })).toBe(true);
    expect(await can({ verb: 'get', resource: 'validatingwebhookconfigurations', group })).toBe(false);
    expect(await can({ verb: 'update', resource: 'validatingwebhookconfigurations', group })).toBe(false);
    expect(await can({ verb: 'list', resource: 'mutatingwebhookconfigurations', group })).toBe(false);
    expect(await can({ verb: 'list', resource: 'apiservices', group: 'apiregistration.k8s.io' })).toBe(false);
    expect(
      await can({ verb: 'list', resource: 'customresourcedefinitions', group: 'apiextensions.k8s.io' }),
    ).toBe(false);
  });

  it('are not granted when no source is on (the default)', async () => {
    const r = await helm([
      'template',
      'x',
      CHART,
      '--set',
      'rbac.scope=namespaced',
      '--set',
      'watchNamespaces={a}',
    ]);
    expect(r.code, r.out).toBe(0);
    const objects = parseAllDocuments(r.out).map(
      (d) =>
        d.toJS() as {
          kind?: string;
          rules?: Array<{ resources: string[]; verbs: string[]; resourceNames?: string[] }>;
        },
    );
    const rules = objects.flatMap((o) => o?.rules ?? []);
    // ConfigMaps are not read: the only grants on them are cert-rotator's own records (expiry
    // notices, pod certificates issued), by name (create cannot be limited to names), never
    // list or watch.
    for (const rule of rules.filter((x) => x.resources.includes('configmaps'))) {
      if (rule.verbs.some((v) => v !== 'create'))
        expect(rule.resourceNames?.length ?? 0, JSON.stringify(rule)).toBeGreaterThan(0);
      expect(rule.verbs).not.toContain('list');
      expect(rule.verbs).not.toContain('watch');
    }
    expect(rules.flatMap((rule) => rule.resources)).not.toContain('validatingwebhookconfigurations');
    expect(objects.filter((o) => o?.kind === 'ClusterRole')).toEqual([]);
  });

  it('renders the node monitor as asked: root without capabilities, read-only everything, no token, control-plane tolerations', async () => {
    const r = await helm([
      'template',
      'x',
      CHART,
      '--set',
      'nodeMonitor.enabled=true',
      '--show-only',
      'templates/node-monitor.yaml',
    ]);
    expect(r.code, r.out).toBe(0);
    const ds = parseAllDocuments(r.out)
      .map((d) => d.toJS() as k8s.V1DaemonSet | null)
      .find((o) => o?.kind === 'DaemonSet');
    const pod = ds?.spec?.template.spec;
    const c = pod?.containers[0];
    expect(pod?.automountServiceAccountToken).toBe(false);
    expect(c?.securityContext).toMatchObject({
      runAsUser: 0,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(c?.securityContext?.capabilities?.add).toBeUndefined();
    expect(c?.volumeMounts?.map((m) => [m.mountPath, m.readOnly])).toEqual([
      ['/host/etc/kubernetes', true],
      ['/host/var/lib/kubelet/pki', true],
    ]);
    expect(c?.args).toEqual(expect.arrayContaining(['monitor', '--strip-prefix', '/host']));
    expect(c?.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    expect(pod?.tolerations?.map((t) => t.key)).toContain('node-role.kubernetes.io/control-plane');
    // Its pods are not the controller's: the controller Service and PDB select by other labels.
    expect(ds?.spec?.selector.matchLabels?.['app.kubernetes.io/name']).toBe('cert-rotator-node-monitor');
    const off = await helm(['template', 'x', CHART, '--show-only', 'templates/node-monitor.yaml']);
    expect(off.code).not.toBe(0); // nothing rendered: off by default
  });
});
