/**
 * `trustBundles` against real kube-apiservers. On a control plane of its own with the
 * ClusterTrustBundle gate and certificates.k8s.io/v1beta1 clustertrustbundles on: the chart's
 * RBAC for the bundles, applied as rendered, is all the controller (running with the chart
 * ServiceAccount's token) needs to keep ConfigMaps in listed and label-selected namespaces and a
 * signer-linked ClusterTrustBundle through a CA rollover; without `attest` the API server refuses
 * the bundle. On the shared control plane, which serves no ClusterTrustBundles: a Warning says
 * so and the rollover is not held by it.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import type { ControlPlane } from '../../src/devcluster/control-plane.ts';
import { loadKubeConfig } from '../../src/kube/client.ts';
import { ClusterTrustBundleApi } from '../../src/kube/ctb-api.ts';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { startOwnControlPlane } from '../testenv/env.ts';
import { adminKubeConfig, serviceAccountKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { eventsFor, makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const CHART = new URL('../../charts/cert-rotator', import.meta.url).pathname;
const A = 'cert-rotator.io/';
const PHASE = 'status.cert-rotator.io/ca-rollover-phase';
const SIGNER = 'example.com/mesh';
const CTB = 'example.com:mesh:internal-ca';
const TRUST = 'internal-ca-trust';
const pemOf = (p: string) => new X509Certificate(p).toString();

/** Short rollover timings: a rollover with no issued Secrets takes ~15 s (10 s of it the switch's settle time). */
const ROLLOVER = {
  trustPropagation: '1s',
  maxWait: '2s',
  retireAfter: '1s',
  checkInterval: '1s',
};

interface Rendered {
  kind: string;
  metadata: { name: string; namespace?: string };
  [key: string]: unknown;
}

async function renderChart(dir: string, values: unknown): Promise<Rendered[]> {
  const file = join(dir, 'values.yaml');
  await writeFile(file, stringify(values));
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(
      testEnv().bins.helm,
      ['template', 'cr', CHART, '--namespace', 'cert-rotator', '-f', file],
      { env: { PATH: process.env.PATH ?? '', HOME: dir }, maxBuffer: 16 << 20 },
      (err, out, stderr) => (err ? reject(new Error(`helm template: ${stderr}`)) : resolve(out)),
    ),
  );
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as Rendered | null)
    .filter((d): d is Rendered => d !== null);
}

describe('trust bundles with ClusterTrustBundle served (own control plane, v1beta1)', () => {
  let plane: ControlPlane;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let objects: k8s.KubernetesObjectApi;
  let dir = '';
  let controller: ControllerProcess;
  let ca1: Pair;
  const SA_USER = 'system:serviceaccount:cert-rotator:cr-cert-rotator';

  const ctb = async () =>
    (await objects
      .read({
        apiVersion: 'certificates.k8s.io/v1beta1',
        kind: 'ClusterTrustBundle',
        metadata: { name: CTB },
      })
      .catch(() => undefined)) as
      | (k8s.KubernetesObject & { spec?: { signerName?: string; trustBundle?: string } })
      | undefined;
  const configMap = async (namespace: string) =>
    (await core.readNamespacedConfigMap({ namespace, name: TRUST }).catch(() => undefined))?.data?.['ca.crt'];
  const label = (name: string, value: string | null) =>
    core.patchNamespace(
      { name, body: { metadata: { labels: { trust: value } } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );

  /** What the API server's authorizer answers for the chart's ServiceAccount. */
  async function can(attrs: k8s.V1ResourceAttributes): Promise<boolean> {
    const review = await kc.makeApiClient(k8s.AuthorizationV1Api).createSubjectAccessReview({
      body: {
        spec: {
          user: SA_USER,
          groups: ['system:serviceaccounts', 'system:serviceaccounts:cert-rotator', 'system:authenticated'],
          resourceAttributes: attrs,
        },
      },
    });
    return review.status?.allowed === true;
  }

  beforeAll(async () => {
    const own = await startOwnControlPlane('cert-rotator-ctb-', {
      controllerManager: false,
      featureGates: { ClusterTrustBundle: true },
      runtimeConfig: ['certificates.k8s.io/v1beta1/clustertrustbundles=true'],
    });
    plane = own.plane;
    kc = own.kubeConfig;
    dir = own.dir;
    core = kc.makeApiClient(k8s.CoreV1Api);
    objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    for (const name of ['cert-rotator', 'team-a', 'sel-1', 'sel-2', 'other'])
      await core.createNamespace({
        body: { metadata: { name, ...(name === 'sel-1' ? { labels: { trust: 'internal' } } : {}) } },
      });
    ca1 = await makeTestCA('bundle CA 1');
    await core.createNamespacedSecret({ namespace: 'cert-rotator', body: tlsSecret('internal-ca', ca1) });
    const issuers = [
      {
        name: 'internal-ca',
        ca: { secret: { namespace: 'cert-rotator', name: 'internal-ca' }, rollover: ROLLOVER },
      },
    ];
    const trustBundles = [
      {
        issuer: 'internal-ca',
        configMap: { name: TRUST },
        namespaces: ['team-a'],
        namespaceSelector: { matchLabels: { trust: 'internal' } },
        clusterTrustBundle: { signerName: SIGNER },
      },
    ];
    const rendered = await renderChart(dir, {
      watchNamespaces: ['cert-rotator'],
      rbac: { scope: 'namespaced' },
      config: { issuers, trustBundles },
    });
    const kinds = ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];
    for (const o of rendered.filter((x) => kinds.includes(x.kind)))
      await objects.create(o as k8s.KubernetesObject);
    const configPath = await writeConfig(dir, {
      namespaces: ['cert-rotator'],
      leaderElection: { enabled: false },
      issuers,
      trustBundles,
    });
    const saKubeconfig = join(dir, 'chart-sa.kubeconfig');
    await writeFile(
      saKubeconfig,
      (await serviceAccountKubeConfig(kc, 'cert-rotator', 'cr-cert-rotator')).exportConfig(),
    );
    controller = startControllerProcess({ configPath, kubeconfigPath: saKubeconfig });
  }, 120_000);

  afterAll(async () => {
    await killAllControllers();
    await plane?.stop();
  });

  it('the chart grants the bundles exactly their names, the namespaces list and attest on the one signer', async () => {
    const g = 'certificates.k8s.io';
    const allowed: k8s.V1ResourceAttributes[] = [
      { group: g, resource: 'clustertrustbundles', verb: 'create' },
      { group: g, resource: 'clustertrustbundles', verb: 'update', name: CTB },
      { group: g, resource: 'clustertrustbundles', verb: 'get', name: CTB },
      { group: g, resource: 'signers', verb: 'attest', name: SIGNER },
      { resource: 'namespaces', verb: 'list' },
      { resource: 'configmaps', verb: 'create', namespace: 'sel-2' },
      { resource: 'configmaps', verb: 'update', namespace: 'sel-2', name: TRUST },
      { resource: 'configmaps', verb: 'update', namespace: 'team-a', name: TRUST },
    ];
    const denied: k8s.V1ResourceAttributes[] = [
      { group: g, resource: 'clustertrustbundles', verb: 'update', name: 'example.com:mesh:other' },
      { group: g, resource: 'clustertrustbundles', verb: 'delete', name: CTB },
      // (get/list/watch of every ClusterTrustBundle is every authenticated user's by default:
      // pods project them.)
      { group: g, resource: 'signers', verb: 'attest', name: 'example.com/other' },
      { group: g, resource: 'signers', verb: 'attest', name: 'example.com/*' },
      { resource: 'namespaces', verb: 'watch' },
      { resource: 'configmaps', verb: 'update', namespace: 'team-a', name: 'kube-root-ca.crt' },
      { resource: 'configmaps', verb: 'get', namespace: 'other', name: 'app-config' },
      { resource: 'configmaps', verb: 'delete', namespace: 'team-a', name: TRUST },
      { resource: 'configmaps', verb: 'list', namespace: 'team-a' },
    ];
    for (const a of allowed) expect(await can(a), JSON.stringify(a)).toBe(true);
    for (const a of denied) expect(await can(a), JSON.stringify(a)).toBe(false);
  });

  it('the API server refuses a signer-linked ClusterTrustBundle to a ServiceAccount without attest', async () => {
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await core.createNamespacedServiceAccount({
      namespace: 'other',
      body: { metadata: { name: 'no-attest' } },
    });
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'ctb-writer-no-attest' },
        rules: [
          { apiGroups: ['certificates.k8s.io'], resources: ['clustertrustbundles'], verbs: ['create'] },
        ],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'ctb-writer-no-attest' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'ctb-writer-no-attest' },
        subjects: [{ kind: 'ServiceAccount', name: 'no-attest', namespace: 'other' }],
      },
    });
    const sa = k8s.KubernetesObjectApi.makeApiClient(
      await serviceAccountKubeConfig(kc, 'other', 'no-attest'),
    );
    const body = {
      apiVersion: 'certificates.k8s.io/v1beta1',
      kind: 'ClusterTrustBundle',
      metadata: { name: 'example.com:mesh:forged' },
      spec: { signerName: SIGNER, trustBundle: pemOf(ca1.certPem) },
    };
    const err = await sa.create(body).then(
      () => undefined,
      (e: unknown) => e as { code?: number; body?: string },
    );
    expect(err?.code).toBe(403);
    expect(String(err?.body)).toContain('attest');
    // The same without a signer is only a matter of `create`.
    await sa.create({
      ...body,
      metadata: { name: 'unlinked-by-sa' },
      spec: { trustBundle: pemOf(ca1.certPem) },
    });
  });

  it('ConfigMaps in listed and selected namespaces and the ClusterTrustBundle follow a rollover; a namespace that stops matching keeps its last bundle', async () => {
    const one = pemOf(ca1.certPem);
    await waitFor(
      'the ClusterTrustBundle with CA 1',
      async () => ((await ctb())?.spec?.trustBundle === one ? true : undefined),
      {
        timeoutMs: 60_000,
      },
    );
    const written = await ctb();
    expect(written?.spec?.signerName).toBe(SIGNER);
    expect(written?.metadata?.labels).toMatchObject({
      'cert-rotator.io/trust-bundle-issuer': 'internal-ca',
      'app.kubernetes.io/managed-by': 'cert-rotator',
    });
    for (const ns of ['team-a', 'sel-1'])
      await waitFor(`the ConfigMap in ${ns}`, async () => ((await configMap(ns)) === one ? true : undefined));
    expect(await configMap('other')).toBeUndefined();
    // A namespace labelled later receives it at the next look.
    await label('sel-2', 'internal');
    await waitFor('the ConfigMap in sel-2', async () =>
      (await configMap('sel-2')) === one ? true : undefined,
    );

    // A rollover: Trust waits for every bundle, including the ClusterTrustBundle.
    const ca2 = await makeTestCA('bundle CA 2');
    await core.createNamespacedSecret({ namespace: 'cert-rotator', body: tlsSecret('internal-ca-2', ca2) });
    const caSecret = await core.readNamespacedSecret({ namespace: 'cert-rotator', name: 'internal-ca' });
    caSecret.metadata = { ...caSecret.metadata, annotations: { [`${A}next-ca`]: 'internal-ca-2' } };
    await core.replaceNamespacedSecret({ namespace: 'cert-rotator', name: 'internal-ca', body: caSecret });
    const both = one + pemOf(ca2.certPem);
    await waitFor('Propagate or later', async () => {
      const s = await core.readNamespacedSecret({ namespace: 'cert-rotator', name: 'internal-ca' });
      return ['Propagate', 'Reissue'].includes(s.metadata?.annotations?.[PHASE] ?? '') ? true : undefined;
    });
    for (const ns of ['team-a', 'sel-1', 'sel-2']) expect(await configMap(ns), ns).toBe(both);
    expect((await ctb())?.spec?.trustBundle).toBe(both);
    // sel-1 stops matching before Retire: its ConfigMap is left with old + new.
    await label('sel-1', null);
    await waitFor(
      'the rollover to finish',
      async () => {
        const s = await core.readNamespacedSecret({ namespace: 'cert-rotator', name: 'internal-ca' });
        return s.metadata?.annotations?.[PHASE] === undefined && s.data?.['previous.crt'] === undefined
          ? true
          : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const two = pemOf(ca2.certPem);
    for (const ns of ['team-a', 'sel-2']) expect(await configMap(ns), ns).toBe(two);
    expect((await ctb())?.spec?.trustBundle).toBe(two);
    expect(await configMap('sel-1')).toBe(both);
    expect(
      controller.logs.some((l) => l.namespace === 'sel-1' && String(l.msg).includes('no longer selected')),
    ).toBe(true);
    expect(controller.logs.filter((l) => l.reason === 'TrustBundleUnavailable')).toEqual([]);
    // Discovery found v1beta1 (this control plane serves no v1 ClusterTrustBundle).
    expect(controller.logs.some((l) => l.msg === 'trust bundle written' && l.version === 'v1beta1')).toBe(
      true,
    );
  });
});

describe('trust bundles where ClusterTrustBundles are not served (shared control plane)', () => {
  const ns = useNamespace(import.meta.url);

  it('warns once, writes the ConfigMap, and the rollover is not held by the missing API', async () => {
    const kc = adminKubeConfig();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    expect(
      await new ClusterTrustBundleApi(loadKubeConfig(testEnv().kubeconfigPath)).servedVersion(),
      'this test needs a control plane without ClusterTrustBundles',
    ).toBeUndefined();
    const ca1 = await makeTestCA('unserved CA 1');
    await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('ca', ca1) });
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-ctb-unserved-'));
    const configPath = await writeConfig(dir, {
      namespaces: [ns()],
      leaderElection: { enabled: false },
      issuers: [{ name: 'unserved', ca: { secret: { namespace: ns(), name: 'ca' }, rollover: ROLLOVER } }],
      trustBundles: [
        { issuer: 'unserved', configMap: { name: TRUST }, namespaces: [ns()], clusterTrustBundle: {} },
      ],
    });
    startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
    const warning = await waitFor('the TrustBundleUnavailable event', async () =>
      (await eventsFor(core, ns(), 'ca')).find((e) => e.reason === 'TrustBundleUnavailable'),
    );
    expect(warning.type).toBe('Warning');
    expect(warning.message).toContain(
      'ClusterTrustBundle cert-rotator.unserved of issuer "unserved" not written: this API server serves no ClusterTrustBundles',
    );
    expect((await core.readNamespacedConfigMap({ namespace: ns(), name: TRUST })).data?.['ca.crt']).toBe(
      pemOf(ca1.certPem),
    );
    // Trust is not held by an output no pod can read.
    const ca2 = await makeTestCA('unserved CA 2');
    await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('ca-2', ca2) });
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'ca' });
    s.metadata = { ...s.metadata, annotations: { [`${A}next-ca`]: 'ca-2' } };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'ca', body: s });
    await waitFor('Propagate or later', async () => {
      const c = await core.readNamespacedSecret({ namespace: ns(), name: 'ca' });
      return ['Propagate', 'Reissue'].includes(c.metadata?.annotations?.[PHASE] ?? '') ? true : undefined;
    });
    // One Warning for the whole time, not one per look.
    const warnings = (await eventsFor(core, ns(), 'ca')).filter((e) => e.reason === 'TrustBundleUnavailable');
    expect(warnings.map((e) => e.count ?? 1)).toEqual([1]);
  });
});
