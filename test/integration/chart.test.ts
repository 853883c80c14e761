/**
 * The Helm chart: lint, render, schema, and `helm install` into the real test API server; then
 * the controller runs with the token of the chart's ServiceAccount (not admin) and the config
 * the chart rendered, completes a rotation, and is refused what the chart does not grant.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { killAllControllers, startControllerProcess, writeConfig } from '../testenv/controller-process.ts';
import {
  adminKubeConfig,
  serviceAccountKubeConfig,
  statusOf,
  testEnv,
  useNamespace,
} from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { decoded, eventsFor, makeLeaf, makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const CHART = new URL('../../charts/cert-rotator', import.meta.url).pathname;
const A = 'cert-rotator.io/';
const MIN = 60_000;
const DAY = 24 * 60 * MIN;
/** An image no kubelet will ever run: there is no kubelet here, and the name does not resolve. */
const NEVER_IMAGE = ['--set', 'image.repository=registry.invalid/cert-rotator', '--set', 'image.tag=never'];

/** The verbs the controller's code uses in a watched namespace (grep src/ for the calls). */
const WATCH_RULES = [
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'update'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  {
    apiGroups: ['apps'],
    resources: ['deployments', 'statefulsets', 'daemonsets'],
    verbs: ['get', 'list', 'watch', 'patch'],
  },
];

/**
 * What acme issuers add with acme.enabled (src/kube/acme-resources.ts): create and delete, and get
 * on the routing objects, which are read and checked to be ours before they are deleted.
 */
const ACME_RULES = [
  { apiGroups: [''], resources: ['secrets'], verbs: ['create', 'delete'] },
  { apiGroups: [''], resources: ['services'], verbs: ['get', 'create', 'delete'] },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'create', 'delete'] },
  { apiGroups: ['networking.k8s.io'], resources: ['ingresses'], verbs: ['get', 'create', 'delete'] },
];

interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

let helmHome = '';

async function helm(args: string[]): Promise<HelmResult> {
  return await new Promise((resolve) => {
    execFile(
      testEnv().bins.helm,
      args,
      {
        env: {
          PATH: process.env.PATH ?? '',
          HOME: helmHome,
          HELM_CACHE_HOME: join(helmHome, 'cache'),
          HELM_CONFIG_HOME: join(helmHome, 'config'),
          HELM_DATA_HOME: join(helmHome, 'data'),
        },
        maxBuffer: 16 << 20,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

interface Rendered {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

async function template(namespace: string, ...args: string[]): Promise<Rendered[]> {
  const r = await helm(['template', 'cr', CHART, '--namespace', namespace, ...args]);
  expect(r.stderr, r.stderr).toBe('');
  expect(r.code).toBe(0);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Rendered | null)
    .filter((d): d is Rendered => d !== null);
}

function find<T>(objects: Rendered[], kind: string, name: string, namespace?: string): T {
  const o = objects.find(
    (x) =>
      x.kind === kind &&
      x.metadata.name === name &&
      (namespace === undefined || x.metadata.namespace === namespace),
  );
  if (!o)
    throw new Error(
      `no ${kind} ${namespace ?? ''}/${name} in ${objects.map((x) => `${x.kind}/${x.metadata.name}`)}`,
    );
  return o as T;
}

function configOf(objects: Rendered[]): string {
  return find<k8s.V1ConfigMap>(objects, 'ConfigMap', 'cr-cert-rotator').data?.['config.yaml'] ?? '';
}

describe('helm lint and helm template', () => {
  beforeAll(async () => {
    helmHome = await mkdtemp(join(tmpdir(), 'cert-rotator-helm-'));
  });

  it('lints clean in both RBAC modes', async () => {
    for (const args of [[], ['--set', 'rbac.scope=namespaced', '--set', 'watchNamespaces={team-a,team-b}']]) {
      const r = await helm(['lint', CHART, '--strict', ...args]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    }
  });

  it('cluster mode: one ClusterRole with exactly the verbs the code uses, the Lease role, the config', async () => {
    const objects = await template('cert-rotator');
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        'ClusterRole//cr-cert-rotator',
        'ClusterRoleBinding//cr-cert-rotator',
        'ConfigMap/cert-rotator/cr-cert-rotator',
        'Deployment/cert-rotator/cr-cert-rotator',
        'PodDisruptionBudget/cert-rotator/cr-cert-rotator',
        'Role/cert-rotator/cr-cert-rotator-leader-election',
        'RoleBinding/cert-rotator/cr-cert-rotator-leader-election',
        'Role/cert-rotator/cr-cert-rotator-notices',
        'RoleBinding/cert-rotator/cr-cert-rotator-notices',
        'Service/cert-rotator/cr-cert-rotator',
        'ServiceAccount/cert-rotator/cr-cert-rotator',
      ].sort(),
    );
    expect(find<k8s.V1ClusterRole>(objects, 'ClusterRole', 'cr-cert-rotator').rules).toEqual(WATCH_RULES);
    const binding = find<k8s.V1ClusterRoleBinding>(objects, 'ClusterRoleBinding', 'cr-cert-rotator');
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'cr-cert-rotator', namespace: 'cert-rotator' },
    ]);
    expect(find<k8s.V1Role>(objects, 'Role', 'cr-cert-rotator-leader-election').rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: ['cert-rotator'],
        verbs: ['get', 'update'],
      },
    ]);
    // Expiry notices: their record in ConfigMaps of the release namespace, by name.
    expect(find<k8s.V1Role>(objects, 'Role', 'cr-cert-rotator-notices').rules).toEqual([
      { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
      {
        apiGroups: [''],
        resources: ['configmaps'],
        resourceNames: Array.from({ length: 8 }, (_, i) => `cert-rotator-notices-${i}`),
        verbs: ['get', 'update'],
      },
    ]);
    // The controller's own loader accepts the rendered file.
    const config = loadConfig(configOf(objects));
    // Notices use the alert rules' thresholds; the status page is on.
    expect(config.notices.thresholdsMs).toEqual([14 * 86_400_000, 7 * 86_400_000, 0]);
    expect(config.ui.enabled).toBe(true);
    expect(config.namespaces).toBe('all');
    expect(config.metrics.address).toBe(':9402');
    expect(config.leaderElection).toMatchObject({
      enabled: true,
      namespace: 'cert-rotator',
      leaseName: 'cert-rotator',
    });
  });

  it('acme.enabled adds exactly the grants of the ACME issuer (off by default)', async () => {
    const objects = await template(
      'cert-rotator',
      '--set',
      'acme.enabled=true',
      '--set-json',
      'config.renewalBackoff={"base":"1m","cap":"1h"}',
    );
    expect(find<k8s.V1ClusterRole>(objects, 'ClusterRole', 'cr-cert-rotator').rules).toEqual([
      ...WATCH_RULES,
      ...ACME_RULES,
    ]);
    expect(loadConfig(configOf(objects)).renewalBackoff).toEqual({ baseMs: 60_000, capMs: 3_600_000 });
    // Namespaced: the same rules per watched namespace; the account Secret elsewhere by name + create.
    const namespaced = await template(
      'cert-rotator',
      '--set',
      'acme.enabled=true',
      '--set',
      'rbac.scope=namespaced',
      '--set',
      'watchNamespaces={team-a}',
      '--set-json',
      'config.issuers=[{"name":"le","acme":{"server":"https://acme.example/dir","accountKeySecret":{"namespace":"acme","name":"le-account"},"solvers":[{"http01":{}}]}}]',
    );
    expect(find<k8s.V1Role>(namespaced, 'Role', 'cr-cert-rotator', 'team-a').rules).toEqual([
      ...WATCH_RULES,
      ...ACME_RULES,
    ]);
    expect(find<k8s.V1Role>(namespaced, 'Role', 'cr-cert-rotator-issuer-secrets', 'acme').rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['le-account'], verbs: ['get'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    ]);
  });

  it('namespaced mode: a Role per watched namespace, the CA Secret by name, nothing cluster-wide', async () => {
    const objects = await template(
      'cert-rotator',
      '--set',
      'rbac.scope=namespaced',
      '--set',
      'watchNamespaces={team-a,team-b}',
      '--set-json',
      'config.issuers=[{"name":"internal-ca","ca":{"secret":{"namespace":"pki","name":"root-ca"}}},{"name":"self","selfSigned":{}}]',
      '--set',
      'config.defaults.issuer=internal-ca',
    );
    expect(objects.filter((o) => o.kind.startsWith('Cluster'))).toEqual([]);
    for (const ns of ['team-a', 'team-b']) {
      expect(find<k8s.V1Role>(objects, 'Role', 'cr-cert-rotator', ns).rules).toEqual(WATCH_RULES);
      const rb = find<k8s.V1RoleBinding>(objects, 'RoleBinding', 'cr-cert-rotator', ns);
      expect(rb.roleRef).toEqual({
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'Role',
        name: 'cr-cert-rotator',
      });
      expect(rb.subjects).toEqual([
        { kind: 'ServiceAccount', name: 'cr-cert-rotator', namespace: 'cert-rotator' },
      ]);
    }
    expect(find<k8s.V1Role>(objects, 'Role', 'cr-cert-rotator-issuer-secrets', 'pki').rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['root-ca'], verbs: ['get'] },
      // A CA rollover: the CA Secret is updated; the next CA is staged as root-ca-next.
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['root-ca'], verbs: ['update'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['root-ca-next'], verbs: ['get', 'delete'] },
    ]);
    expect(
      objects
        .filter((o) => o.kind === 'Role')
        .map((o) => `${o.metadata.namespace}/${o.metadata.name}`)
        .sort(),
    ).toEqual([
      'cert-rotator/cr-cert-rotator-leader-election',
      'cert-rotator/cr-cert-rotator-notices',
      'pki/cr-cert-rotator-issuer-secrets',
      'team-a/cr-cert-rotator',
      'team-b/cr-cert-rotator',
    ]);
    const config = loadConfig(configOf(objects));
    expect(config.namespaces).toEqual(['team-a', 'team-b']);
    expect(config.defaults.issuer).toBe('internal-ca');
    expect(config.issuers.map((i) => i.name)).toEqual(['internal-ca', 'self']);
  });

  it('allowCA: create Secrets in the watched namespaces (the staged NAME-next) and delete exactly the staged names', async () => {
    const issuers = (allowCA: boolean) =>
      `config.issuers=${JSON.stringify([
        { name: 'root', selfSigned: {}, ...(allowCA ? { allowCA: true } : {}) },
        { name: 'internal-ca', ca: { secret: { namespace: 'pki', name: 'root-ca' } } },
        { name: 'elsewhere', ca: { secret: { namespace: 'vault', name: 'other-ca' } } },
      ])}`;
    const args = ['--set', 'rbac.scope=namespaced', '--set', 'watchNamespaces={team-a,pki}', '--set-json'];
    const managed = await template('cert-rotator', ...args, issuers(true));
    for (const ns of ['team-a', 'pki']) {
      expect(find<k8s.V1Role>(managed, 'Role', 'cr-cert-rotator', ns).rules).toEqual([
        ...WATCH_RULES,
        { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
        // Only CA Secrets the controller watches can be managed: vault/other-ca is not staged here.
        { apiGroups: [''], resources: ['secrets'], resourceNames: ['root-ca-next'], verbs: ['delete'] },
      ]);
    }
    const plain = await template('cert-rotator', ...args, issuers(false));
    expect(find<k8s.V1Role>(plain, 'Role', 'cr-cert-rotator', 'pki').rules).toEqual(WATCH_RULES);
  });

  it('renders a hardened pod: 2 replicas, non-root, read-only root, no capabilities, seccomp, probes', async () => {
    const objects = await template('cert-rotator', ...NEVER_IMAGE);
    const d = find<k8s.V1Deployment>(objects, 'Deployment', 'cr-cert-rotator');
    expect(d.spec?.replicas).toBe(2);
    const pod = d.spec?.template.spec;
    expect(pod?.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const c = pod?.containers[0];
    expect(c?.image).toBe('registry.invalid/cert-rotator:never');
    expect(c?.args?.slice(0, 3)).toEqual(['controller', '--config', '/etc/cert-rotator/config.yaml']);
    expect(c?.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c?.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(c?.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(c?.resources?.requests).toBeDefined();
    expect(c?.resources?.limits?.memory).toBeDefined();
    expect(c?.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ['metrics', 9402],
      ['http01', 8089],
    ]);
    expect(c?.volumeMounts?.map((m) => m.mountPath).sort()).toEqual(['/etc/cert-rotator', '/tmp']);
    const svc = find<k8s.V1Service>(objects, 'Service', 'cr-cert-rotator');
    expect(svc.spec?.ports?.map((p) => [p.name, p.port])).toEqual([
      ['metrics', 9402],
      ['http01', 8089],
    ]);
  });

  it('PrometheusRule: on when the CRD is served, off without it, forced on or off by value; ServiceMonitor on request', async () => {
    const kindsWith = async (...args: string[]) =>
      (await template('cert-rotator', ...args)).map((o) => o.kind);
    const crd = ['--api-versions', 'monitoring.coreos.com/v1/PrometheusRule'];
    expect(await kindsWith()).not.toContain('PrometheusRule');
    expect(await kindsWith(...crd)).toContain('PrometheusRule');
    expect(await kindsWith(...crd, '--set', 'prometheusRule.enabled=false')).not.toContain('PrometheusRule');
    expect(await kindsWith('--set', 'prometheusRule.enabled=true')).toContain('PrometheusRule');
    expect(await kindsWith()).not.toContain('ServiceMonitor');
    const withMonitor = await template('cert-rotator', '--set', 'serviceMonitor.enabled=true');
    const sm = find<{ spec: { endpoints: Array<{ port: string; path: string }> } }>(
      withMonitor,
      'ServiceMonitor',
      'cr-cert-rotator',
    );
    expect(sm.spec.endpoints[0]).toMatchObject({ port: 'metrics', path: '/metrics' });

    const rule = find<{ spec: { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> } }>(
      await template('cert-rotator', ...crd, '--set', 'prometheusRule.alerts.expiringSoon.days=21'),
      'PrometheusRule',
      'cr-cert-rotator',
    );
    const rules = rule.spec.groups[0]?.rules ?? [];
    expect(rules.map((r) => r.alert)).toEqual([
      'CertRotatorRenewalOverdue',
      'CertRotatorCertificateExpiringSoon',
      'CertRotatorCertificateExpiringCritical',
      'CertRotatorCertificateExpired',
      'CertRotatorRenewalFailures',
      'CertRotatorCAExpiringSoon',
      'CertRotatorAbsent',
    ]);
    expect(rules.find((r) => r.alert === 'CertRotatorCertificateExpiringSoon')?.expr).toContain(
      '< 21 * 86400',
    );
    expect(rules.find((r) => r.alert === 'CertRotatorAbsent')?.expr).toBe(
      'absent(up{job="cr-cert-rotator"} == 1)',
    );
  });

  it('the schema rejects bad values, naming each one; inconsistent thresholds fail the render', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-values-'));
    const bad = join(dir, 'bad-values.yaml');
    await writeFile(
      bad,
      stringify({
        replicaCount: 0,
        rbac: { scope: 'everywhere' },
        metrics: { port: '9402' },
        watchNamespaces: ['Not_A_Namespace'],
        config: { concurrency: 'four', namespaces: ['a'] },
        prometheusRule: {
          enabled: 'sometimes',
          alerts: { expiringSoon: { days: -1 }, renewalOverdue: { grace: 'soon' } },
        },
        imagePullPolicy: 'Always',
      }),
    );
    const r = await helm(['template', 'cr', CHART, '-f', bad]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("values don't meet the specifications of the schema");
    for (const path of [
      "'/replicaCount': minimum: got 0, want 1",
      "'/rbac/scope': value must be one of 'cluster', 'namespaced'",
      "'/metrics/port': got string, want integer",
      "'/watchNamespaces/0'",
      "'/config/concurrency': got string, want integer",
      "'/config': additional properties 'namespaces' not allowed",
      "'/prometheusRule/enabled': value must be one of 'auto', true, false",
      "'/prometheusRule/alerts/expiringSoon/days': exclusiveMinimum: got -1, want 0",
      "'/prometheusRule/alerts/renewalOverdue/grace': 'soon' does not match pattern",
      "additional properties 'imagePullPolicy' not allowed",
    ]) {
      expect(r.stderr).toContain(path);
    }

    const noNamespaces = await helm(['template', 'cr', CHART, '--set', 'rbac.scope=namespaced']);
    expect(noNamespaces.code).toBe(1);
    expect(noNamespaces.stderr).toContain("'/watchNamespaces': minItems: got 0, want 1");

    const thresholds = await helm([
      'template',
      'cr',
      CHART,
      '--set',
      'prometheusRule.alerts.expiringSoon.days=5',
    ]);
    expect(thresholds.code).toBe(1);
    expect(thresholds.stderr).toContain(
      'prometheusRule.alerts.expiringSoon.days (5) must be greater than prometheusRule.alerts.expiringCritical.days (7)',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// helm install into the test API server, and the controller running as the chart's ServiceAccount

const releaseNs = useNamespace(import.meta.url);
let admin: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let ca: Pair;
const extraNamespaces: string[] = [];
const installed: string[] = [];
let crdCreated = false;

const PROMETHEUS_RULE_CRD: k8s.V1CustomResourceDefinition = {
  metadata: { name: 'prometheusrules.monitoring.coreos.com' },
  spec: {
    group: 'monitoring.coreos.com',
    scope: 'Namespaced',
    names: {
      plural: 'prometheusrules',
      singular: 'prometheusrule',
      kind: 'PrometheusRule',
      listKind: 'PrometheusRuleList',
    },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        // The client's serializer knows the field by its TypeScript name.
        schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } },
      },
    ],
  },
};

async function makeNamespace(suffix: string): Promise<string> {
  const name = `${releaseNs()}-${suffix}`;
  await core.createNamespace({ body: { metadata: { name } } });
  extraNamespaces.push(name);
  return name;
}

async function install(
  release: string,
  values: Record<string, unknown>,
  extra: string[] = [],
): Promise<HelmResult> {
  const file = join(helmHome, `${release}-values.yaml`);
  await writeFile(file, stringify(values));
  const r = await helm([
    'install',
    release,
    CHART,
    '--namespace',
    releaseNs(),
    '--kubeconfig',
    testEnv().kubeconfigPath,
    '-f',
    file,
    ...NEVER_IMAGE,
    ...extra,
  ]);
  expect(r.code, r.stderr).toBe(0);
  installed.push(release);
  return r;
}

/** Runs the controller with the release's ServiceAccount token and its rendered config file. */
async function controllerAs(release: string) {
  const fullname = `${release}-cert-rotator`;
  const cm = await core.readNamespacedConfigMap({ namespace: releaseNs(), name: fullname });
  const dir = await mkdtemp(join(tmpdir(), `cert-rotator-${release}-`));
  const configPath = await writeConfig(dir, cm.data?.['config.yaml'] ?? '');
  const sa = await serviceAccountKubeConfig(admin, releaseNs(), fullname);
  const kubeconfigPath = join(dir, 'kubeconfig');
  await writeFile(kubeconfigPath, sa.exportConfig());
  const proc = startControllerProcess({ configPath, kubeconfigPath });
  await proc.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
  return { proc, sa };
}

async function rotateOne(namespace: string, name: string): Promise<k8s.V1Secret> {
  const old = await makeLeaf({ dnsNames: [`${name}.example.com`], fromMs: -10 * MIN, toMs: 2 * MIN });
  await core.createNamespacedSecret({ namespace, body: tlsSecret(name, old, { [`${A}enabled`]: 'true' }) });
  const renewed = await waitFor(
    `${namespace}/${name} to be renewed`,
    async () => {
      const s = await core.readNamespacedSecret({ namespace, name });
      return s.metadata?.annotations?.[`${A}revision`] === '1' ? s : undefined;
    },
    { timeoutMs: 30_000 },
  );
  const leaf = new X509Certificate(decoded(renewed, 'tls.crt'));
  expect(leaf.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
  expect(leaf.validToDate.getTime() - Date.now()).toBeGreaterThan(80 * DAY);
  expect(decoded(renewed, 'tls.key')).not.toBe(old.keyPem);
  const event = await waitFor(`a Renewed event on ${namespace}/${name}`, async () =>
    (await eventsFor(core, namespace, name)).find((e) => e.reason === 'Renewed'),
  );
  expect(event.reportingComponent).toBe('cert-rotator.io/controller');
  return renewed;
}

/** What the API server says the ServiceAccount may do (SelfSubjectAccessReview, as that account). */
async function can(
  sa: k8s.KubeConfig,
  attrs: { verb: string; resource: string; group?: string; namespace?: string; name?: string },
): Promise<boolean> {
  const review = await sa.makeApiClient(k8s.AuthorizationV1Api).createSelfSubjectAccessReview({
    body: {
      spec: {
        resourceAttributes: {
          verb: attrs.verb,
          resource: attrs.resource,
          group: attrs.group ?? '',
          ...(attrs.namespace ? { namespace: attrs.namespace } : {}),
          ...(attrs.name ? { name: attrs.name } : {}),
        },
      },
    },
  });
  return review.status?.allowed === true;
}

async function forbidden(what: string, call: () => Promise<unknown>): Promise<void> {
  const err = await call().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `${what} should be Forbidden`).toBeDefined();
  expect(statusOf(err), what).toBe(403);
}

describe('helm install into the test API server, then the controller as the chart ServiceAccount', () => {
  beforeAll(async () => {
    admin = adminKubeConfig();
    core = admin.makeApiClient(k8s.CoreV1Api);
    if (!helmHome) helmHome = await mkdtemp(join(tmpdir(), 'cert-rotator-helm-'));
    ca = await makeTestCA('cert-rotator chart test CA');
    await core.createNamespacedSecret({ namespace: releaseNs(), body: tlsSecret('internal-ca', ca) });
  });

  afterAll(async () => {
    await killAllControllers();
    for (const release of installed) {
      await helm([
        'uninstall',
        release,
        '--namespace',
        releaseNs(),
        '--kubeconfig',
        testEnv().kubeconfigPath,
      ]);
    }
    if (crdCreated) {
      await admin
        .makeApiClient(k8s.ApiextensionsV1Api)
        .deleteCustomResourceDefinition({ name: PROMETHEUS_RULE_CRD.metadata?.name ?? '' })
        .catch(() => undefined);
    }
    for (const name of extraNamespaces) await core.deleteNamespace({ name }).catch(() => undefined);
  });

  const issuers = () => [
    { name: 'internal-ca', ca: { secret: { namespace: releaseNs(), name: 'internal-ca' } } },
  ];

  it('namespaced mode: installs, renews an expiring Secret as the chart ServiceAccount, and is refused the rest', async () => {
    const watched = await makeNamespace('w');
    const other = await makeNamespace('u');
    const r = await install('nsd', {
      rbac: { scope: 'namespaced' },
      watchNamespaces: [watched],
      config: { issuers: issuers(), defaults: { issuer: 'internal-ca' } },
    });
    expect(r.stdout).toContain('STATUS: deployed');
    expect(r.stdout).toContain('kubectl annotate secret NAME -n NAMESPACE cert-rotator.io/enabled=true');

    // The objects exist, as rendered.
    const apps = admin.makeApiClient(k8s.AppsV1Api);
    const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
    const d = await apps.readNamespacedDeployment({ namespace: releaseNs(), name: 'nsd-cert-rotator' });
    expect(d.spec?.replicas).toBe(2);
    expect(d.spec?.template.spec?.serviceAccountName).toBe('nsd-cert-rotator');
    await core.readNamespacedServiceAccount({ namespace: releaseNs(), name: 'nsd-cert-rotator' });
    await core.readNamespacedService({ namespace: releaseNs(), name: 'nsd-cert-rotator' });
    expect((await rbac.readNamespacedRole({ namespace: watched, name: 'nsd-cert-rotator' })).rules).toEqual(
      WATCH_RULES,
    );
    await rbac.readNamespacedRoleBinding({ namespace: watched, name: 'nsd-cert-rotator' });
    await rbac.readNamespacedRole({ namespace: releaseNs(), name: 'nsd-cert-rotator-leader-election' });
    await rbac.readNamespacedRole({ namespace: releaseNs(), name: 'nsd-cert-rotator-issuer-secrets' });
    await forbiddenOrMissing(() => rbac.readClusterRole({ name: 'nsd-cert-rotator' }));

    const { proc, sa } = await controllerAs('nsd');
    await rotateOne(watched, 'expiring');
    // It wrote as the leader: the Lease the chart's Role names, created and held with those grants.
    const lease = await admin
      .makeApiClient(k8s.CoordinationV1Api)
      .readNamespacedLease({ namespace: releaseNs(), name: 'cert-rotator' });
    expect(lease.spec?.holderIdentity).toBeTruthy();

    // An opted-in Secret in a namespace the release does not watch is never touched.
    const stray = await makeLeaf({ dnsNames: ['stray.example.com'], fromMs: -DAY, toMs: MIN });
    const strayBefore = await core.createNamespacedSecret({
      namespace: other,
      body: tlsSecret('stray', stray, { [`${A}enabled`]: 'true' }),
    });

    // Outside the grants: real requests, refused by the API server.
    const saCore = sa.makeApiClient(k8s.CoreV1Api);
    await forbidden('listing Secrets in an unwatched namespace', () =>
      saCore.listNamespacedSecret({ namespace: other }),
    );
    await forbidden('listing Secrets cluster-wide', () => saCore.listSecretForAllNamespaces());
    await forbidden('deleting a watched Secret', () =>
      saCore.deleteNamespacedSecret({ namespace: watched, name: 'expiring' }),
    );
    await forbidden('creating a Secret', () =>
      saCore.createNamespacedSecret({ namespace: watched, body: { metadata: { name: 'planted' } } }),
    );
    await forbidden('listing Secrets in the release namespace (the CA is readable by name only)', () =>
      saCore.listNamespacedSecret({ namespace: releaseNs() }),
    );
    await forbidden('reading a release-namespace Secret that is not the CA', () =>
      saCore.readNamespacedSecret({ namespace: releaseNs(), name: 'nsd-cert-rotator-token' }),
    );
    expect(
      (await saCore.readNamespacedSecret({ namespace: releaseNs(), name: 'internal-ca' })).metadata?.name,
    ).toBe('internal-ca');

    // The full grant, as the API server's authorizer sees it.
    const allowed = [
      ...['get', 'list', 'watch', 'update'].map((verb) => ({
        verb,
        resource: 'secrets',
        namespace: watched,
      })),
      { verb: 'create', resource: 'events', namespace: watched },
      { verb: 'patch', resource: 'events', namespace: watched },
      ...['get', 'list', 'watch', 'patch'].flatMap((verb) =>
        ['deployments', 'statefulsets', 'daemonsets'].map((resource) => ({
          verb,
          resource,
          group: 'apps',
          namespace: watched,
        })),
      ),
      { verb: 'get', resource: 'secrets', namespace: releaseNs(), name: 'internal-ca' },
      // A CA rollover: the CA Secret is updated; the next CA is staged as internal-ca-next.
      { verb: 'update', resource: 'secrets', namespace: releaseNs(), name: 'internal-ca' },
      { verb: 'get', resource: 'secrets', namespace: releaseNs(), name: 'internal-ca-next' },
      { verb: 'delete', resource: 'secrets', namespace: releaseNs(), name: 'internal-ca-next' },
      { verb: 'create', resource: 'leases', group: 'coordination.k8s.io', namespace: releaseNs() },
      ...['get', 'update'].map((verb) => ({
        verb,
        resource: 'leases',
        group: 'coordination.k8s.io',
        namespace: releaseNs(),
        name: 'cert-rotator',
      })),
    ];
    const denied = [
      ...['create', 'delete', 'patch', 'deletecollection'].map((verb) => ({
        verb,
        resource: 'secrets',
        namespace: watched,
      })),
      { verb: 'get', resource: 'secrets', namespace: other, name: 'stray' },
      { verb: 'update', resource: 'secrets', namespace: releaseNs(), name: 'other-ca' },
      { verb: 'delete', resource: 'secrets', namespace: releaseNs(), name: 'internal-ca' },
      { verb: 'update', resource: 'deployments', group: 'apps', namespace: watched },
      { verb: 'delete', resource: 'deployments', group: 'apps', namespace: watched },
      { verb: 'list', resource: 'pods', namespace: watched },
      { verb: 'create', resource: 'events', namespace: other },
      {
        verb: 'update',
        resource: 'leases',
        group: 'coordination.k8s.io',
        namespace: releaseNs(),
        name: 'other-lease',
      },
      {
        verb: 'delete',
        resource: 'leases',
        group: 'coordination.k8s.io',
        namespace: releaseNs(),
        name: 'cert-rotator',
      },
      { verb: 'create', resource: 'certificatesigningrequests', group: 'certificates.k8s.io' },
    ];
    for (const a of allowed) expect(await can(sa, a), `allowed: ${JSON.stringify(a)}`).toBe(true);
    for (const a of denied) expect(await can(sa, a), `denied: ${JSON.stringify(a)}`).toBe(false);

    // Nothing the controller needed was refused along the way.
    expect(proc.output()).not.toMatch(/forbidden|HTTP 403/i);
    expect(
      (await core.readNamespacedSecret({ namespace: other, name: 'stray' })).metadata?.resourceVersion,
    ).toBe(strayBefore.metadata?.resourceVersion);
    expect(await proc.stop()).toBe(0);
  });

  it('cluster mode: installs (with its PrometheusRule once the CRD is served), renews as the chart ServiceAccount, refused the rest', async () => {
    const watched = await makeNamespace('cw');
    const ext = admin.makeApiClient(k8s.ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({ body: PROMETHEUS_RULE_CRD });
    crdCreated = true;
    await waitFor('the PrometheusRule CRD to be established', async () => {
      const crd = await ext.readCustomResourceDefinition({ name: PROMETHEUS_RULE_CRD.metadata?.name ?? '' });
      return (
        crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') || undefined
      );
    });
    // Helm reads the served API versions from discovery; give it a moment to show the new group.
    await waitFor('discovery to serve monitoring.coreos.com/v1', async () => {
      const groups = await admin.makeApiClient(k8s.ApisApi).getAPIVersions();
      return groups.groups.some((g) => g.name === 'monitoring.coreos.com') || undefined;
    });
    await install('clu', {
      rbac: { scope: 'cluster' },
      watchNamespaces: [watched],
      config: { issuers: issuers() },
    });

    const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
    expect((await rbac.readClusterRole({ name: 'clu-cert-rotator' })).rules).toEqual(WATCH_RULES);
    await rbac.readClusterRoleBinding({ name: 'clu-cert-rotator' });
    const custom = admin.makeApiClient(k8s.CustomObjectsApi);
    const got: unknown = await custom.getNamespacedCustomObject({
      group: 'monitoring.coreos.com',
      version: 'v1',
      namespace: releaseNs(),
      plural: 'prometheusrules',
      name: 'clu-cert-rotator',
    });
    const rule = got as { spec: { groups: Array<{ rules: Array<{ alert: string }> }> } };
    expect(rule.spec.groups[0]?.rules.map((r) => r.alert)).toContain('CertRotatorCertificateExpiringSoon');

    const { proc, sa } = await controllerAs('clu');
    await rotateOne(watched, 'expiring');
    const saCore = sa.makeApiClient(k8s.CoreV1Api);
    // Cluster-wide reads are granted in this mode; writes other than replace are not.
    await saCore.listSecretForAllNamespaces({ limit: 1 });
    await forbidden('deleting a Secret', () =>
      saCore.deleteNamespacedSecret({ namespace: watched, name: 'expiring' }),
    );
    await forbidden('listing ConfigMaps', () => saCore.listNamespacedConfigMap({ namespace: watched }));
    expect(await can(sa, { verb: 'update', resource: 'secrets', namespace: 'kube-system' })).toBe(true);
    expect(await can(sa, { verb: 'create', resource: 'secrets', namespace: watched })).toBe(false);
    expect(await can(sa, { verb: 'list', resource: 'nodes' })).toBe(false);
    expect(
      await can(sa, { verb: 'create', resource: 'leases', group: 'coordination.k8s.io', namespace: watched }),
    ).toBe(false);
    expect(proc.output()).not.toMatch(/forbidden|HTTP 403/i);
    expect(await proc.stop()).toBe(0);
  });
});

async function forbiddenOrMissing(call: () => Promise<unknown>): Promise<void> {
  const err = await call().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect([403, 404]).toContain(statusOf(err));
}
