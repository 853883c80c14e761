/**
 * The chart's CSR grants: `helm install` (namespaced mode) with a kubernetesCSR issuer for kcm's
 * signer, cert-rotator's own signer with an approver, and a kubernetesCSR issuer for that signer;
 * then the controller runs with the chart ServiceAccount's token and the rendered config, renews
 * through both signers, approves a workload's CSR, and is refused everything broader.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createCsrPem, generateKey } from '../../src/pki/index.ts';
import { killAllControllers, startControllerProcess, writeConfig } from '../testenv/controller-process.ts';
import { adminKubeConfig, serviceAccountKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { decoded, makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const CHART = new URL('../../charts/cert-rotator', import.meta.url).pathname;
const A = 'cert-rotator.io/';
const releaseNs = useNamespace(import.meta.url);
let admin: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let helmHome = '';
let release = '';
let watched = '';
let ca: Pair;
let signerName = '';

async function helm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
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
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

async function can(
  sa: k8s.KubeConfig,
  attrs: {
    verb: string;
    resource: string;
    group?: string;
    subresource?: string;
    namespace?: string;
    name?: string;
  },
): Promise<boolean> {
  const review = await sa.makeApiClient(k8s.AuthorizationV1Api).createSelfSubjectAccessReview({
    body: {
      spec: {
        resourceAttributes: {
          verb: attrs.verb,
          resource: attrs.resource,
          group: attrs.group ?? '',
          ...(attrs.subresource ? { subresource: attrs.subresource } : {}),
          ...(attrs.namespace ? { namespace: attrs.namespace } : {}),
          ...(attrs.name ? { name: attrs.name } : {}),
        },
      },
    },
  });
  return review.status?.allowed === true;
}

async function renewed(name: string): Promise<k8s.V1Secret> {
  return await waitFor(
    `${watched}/${name} to be written`,
    async () => {
      const s = await core.readNamespacedSecret({ namespace: watched, name });
      return s.metadata?.annotations?.[`${A}revision`] === '1' ? s : undefined;
    },
    { timeoutMs: 60_000 },
  );
}

beforeAll(async () => {
  admin = adminKubeConfig();
  core = admin.makeApiClient(k8s.CoreV1Api);
  helmHome = await mkdtemp(join(tmpdir(), 'cert-rotator-csr-helm-'));
  const suffix = releaseNs().slice(-6);
  release = `csr-${suffix}`;
  signerName = `cert-rotator.io/chart-${suffix}`;
  watched = `${releaseNs()}-w`;
  await core.createNamespace({ body: { metadata: { name: watched } } });
  ca = await makeTestCA('csr chart test CA');
  await core.createNamespacedSecret({ namespace: releaseNs(), body: tlsSecret('workload-ca', ca) });
});

afterAll(async () => {
  await killAllControllers();
  if (release) {
    await helm(['uninstall', release, '--namespace', releaseNs(), '--kubeconfig', testEnv().kubeconfigPath]);
  }
  await core.deleteNamespace({ name: watched }).catch(() => undefined);
  const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
  await rbac.deleteClusterRoleBinding({ name: `${release}-workloads` }).catch(() => undefined);
});

describe('chart RBAC for the CSR issuer, signer and approver', () => {
  it('grants exactly what the CSR pieces call, in namespaced mode, and they work as the chart ServiceAccount', async () => {
    await waitFor('kube-root-ca.crt in the watched namespace', async () => {
      try {
        return await core.readNamespacedConfigMap({ namespace: watched, name: 'kube-root-ca.crt' });
      } catch {
        return undefined;
      }
    });
    const values = {
      rbac: { scope: 'namespaced' },
      watchNamespaces: [watched],
      csr: { requesterClusterRole: { create: true } },
      image: { repository: 'registry.invalid/cert-rotator', tag: 'never' },
      config: {
        issuers: [
          {
            name: 'kcm-client',
            kubernetesCSR: {
              signerName: 'kubernetes.io/kube-apiserver-client',
              autoApprove: true,
              caBundleFrom: { configMap: { namespace: watched, name: 'kube-root-ca.crt', key: 'ca.crt' } },
            },
            allowedCommonNames: ['chart-user-*'],
          },
          {
            name: 'workload-ca',
            ca: { secret: { namespace: releaseNs(), name: 'workload-ca' } },
            signer: { signerName, maxDuration: '1h' },
            allowedDomains: ['*.example.com'],
            allowedURIs: ['spiffe://cluster.local/ns/*/sa/*'],
            approve: {
              serviceAccounts: {
                namespaces: [watched],
                uris: ['spiffe://cluster.local/ns/{namespace}/sa/{serviceaccount}'],
              },
            },
          },
          {
            name: 'own-signer',
            kubernetesCSR: { signerName, autoApprove: true, caBundle: ca.certPem },
            allowedDomains: ['*.example.com'],
          },
        ],
      },
    };
    const file = join(helmHome, 'values.yaml');
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
    ]);
    expect(r.code, r.stderr).toBe(0);

    // The controller as the chart ServiceAccount, with the config the chart rendered.
    const fullname = `${release}-cert-rotator`;
    const cm = await core.readNamespacedConfigMap({ namespace: releaseNs(), name: fullname });
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-csr-chart-'));
    const configPath = await writeConfig(dir, cm.data?.['config.yaml'] ?? '');
    const sa = await serviceAccountKubeConfig(admin, releaseNs(), fullname);
    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, sa.exportConfig());
    const proc = startControllerProcess({ configPath, kubeconfigPath });
    await proc.waitForLog('the initial list', (l) => l.msg === 'initial list processed', 60_000);

    // Through kcm's signer, and through cert-rotator's own signer.
    const empty = (name: string, annotations: Record<string, string>): k8s.V1Secret => ({
      metadata: { name, annotations: { [`${A}enabled`]: 'true', ...annotations } },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': '', 'tls.key': '' },
    });
    await core.createNamespacedSecret({
      namespace: watched,
      body: empty('client', { [`${A}issuer`]: 'kcm-client', [`${A}common-name`]: 'chart-user-a' }),
    });
    await core.createNamespacedSecret({
      namespace: watched,
      body: empty('serving', { [`${A}issuer`]: 'own-signer', [`${A}dns-names`]: 'serving.example.com' }),
    });
    const client = await renewed('client');
    expect(
      new X509Certificate(decoded(client, 'tls.crt')).verify(
        new X509Certificate(testEnv().clusterCaPem).publicKey,
      ),
    ).toBe(true);
    const serving = await renewed('serving');
    expect(
      new X509Certificate(decoded(serving, 'tls.crt')).verify(new X509Certificate(ca.certPem).publicKey),
    ).toBe(true);

    // A workload ServiceAccount bound to the optional requester ClusterRole gets its SPIFFE ID.
    await core.createNamespacedServiceAccount({ namespace: watched, body: { metadata: { name: 'wl' } } });
    const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: `${release}-workloads` },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: `${fullname}-csr-requester`,
        },
        subjects: [{ kind: 'ServiceAccount', name: 'wl', namespace: watched }],
      },
    });
    const wl = (await serviceAccountKubeConfig(admin, watched, 'wl')).makeApiClient(k8s.CertificatesV1Api);
    const key = await generateKey('ecdsa-p256');
    const uri = `spiffe://cluster.local/ns/${watched}/sa/wl`;
    const requested = await waitFor('the requester binding to take effect', async () => {
      try {
        return await wl.createCertificateSigningRequest({
          body: {
            metadata: { generateName: 'wl-' },
            spec: {
              signerName,
              usages: ['digital signature', 'client auth'],
              request: Buffer.from(
                await createCsrPem(key.privateKeyPem, { dnsNames: [], ipAddresses: [], uris: [uri] }),
              ).toString('base64'),
            },
          },
        });
      } catch {
        return undefined;
      }
    });
    const issued = await waitFor('the workload CSR to be issued', async () => {
      const c = await wl.readCertificateSigningRequest({ name: requested.metadata?.name ?? '' });
      return c.status?.certificate ? c : undefined;
    });
    expect(issued.status?.conditions?.find((c) => c.type === 'Approved')?.reason).toBe(
      'CertRotatorPolicyApproved',
    );
    // The signer recorded, before publishing, how long leaves of this CA are out there (a CA
    // rollover's Retire waits for it), in the ConfigMap the chart lets it write.
    const record = await core.readNamespacedConfigMap({
      namespace: releaseNs(),
      name: 'cert-rotator-csr-issued',
    });
    const entry = JSON.parse(
      record.data?.[new X509Certificate(ca.certPem).fingerprint256.replace(/:/g, '').toLowerCase()] ?? '{}',
    ) as {
      issuer?: string;
      lastLeafNotAfter?: string;
    };
    expect(entry.issuer).toBe('workload-ca');
    expect(Date.parse(entry.lastLeafNotAfter ?? '')).toBeGreaterThanOrEqual(
      Date.parse(new X509Certificate(Buffer.from(issued.status?.certificate ?? '', 'base64')).validTo),
    );

    // Exactly these CSR grants, and nothing broader.
    const csrs = { group: 'certificates.k8s.io', resource: 'certificatesigningrequests' };
    const signers = { group: 'certificates.k8s.io', resource: 'signers' };
    const allowed = [
      ...['create', 'get', 'list', 'watch', 'delete'].map((verb) => ({ ...csrs, verb })),
      { ...csrs, verb: 'update', subresource: 'approval' },
      { ...csrs, verb: 'update', subresource: 'status' },
      { ...signers, verb: 'approve', name: 'kubernetes.io/kube-apiserver-client' },
      { ...signers, verb: 'approve', name: signerName },
      { ...signers, verb: 'sign', name: signerName },
      { verb: 'get', resource: 'configmaps', namespace: watched, name: 'kube-root-ca.crt' },
      ...['get', 'update'].map((verb) => ({
        verb,
        resource: 'configmaps',
        namespace: releaseNs(),
        name: 'cert-rotator-csr-issued',
      })),
      ...['create', 'delete'].map((verb) => ({ verb, resource: 'secrets', namespace: watched })),
    ];
    const denied = [
      { ...csrs, verb: 'update' },
      { ...csrs, verb: 'patch' },
      { ...csrs, verb: 'deletecollection' },
      { ...signers, verb: 'sign', name: 'kubernetes.io/kube-apiserver-client' },
      { ...signers, verb: 'approve', name: 'kubernetes.io/kubelet-serving' },
      { ...signers, verb: 'approve', name: 'example.com/other' },
      { ...signers, verb: 'sign', name: 'cert-rotator.io/other' },
      { verb: 'get', resource: 'configmaps', namespace: watched, name: 'other' },
      { verb: 'list', resource: 'configmaps', namespace: watched },
      { verb: 'update', resource: 'configmaps', namespace: releaseNs(), name: 'other' },
      { verb: 'create', resource: 'secrets', namespace: releaseNs() },
    ];
    for (const a of allowed) expect(await can(sa, a), `allowed: ${JSON.stringify(a)}`).toBe(true);
    for (const a of denied) expect(await can(sa, a), `denied: ${JSON.stringify(a)}`).toBe(false);
    expect(proc.output()).not.toMatch(/forbidden|HTTP 403/i);
    expect(await proc.stop()).toBe(0);
  });
});
