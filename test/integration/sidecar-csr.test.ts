/**
 * `cert-rotator sidecar --csr-signer` against the real kube-apiserver and kube-controller-manager,
 * with the pod's ServiceAccount token on the in-cluster path. The signer here is
 * kube-controller-manager's `kubernetes.io/kube-apiserver-client`, and the TEST APPROVES (or
 * denies) as admin: the end-to-end run with cert-rotator's own signer and approver (branch csr)
 * is not in this file yet.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCertificateSummary } from '../../src/pki/der.ts';
import { generateKey, keyMatchesCertificate } from '../../src/pki/keys.ts';
import { certificatesFromPem, splitPem } from '../../src/pki/pem.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { metricsUrlOf, readDir, scrape, startSidecar, stopAllChildren } from './fixtures/sidecar-process.ts';

const ns = useNamespace(import.meta.url);
const SIGNER = 'kubernetes.io/kube-apiserver-client';

let admin: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let certs: k8s.CertificatesV1Api;
let rbac: k8s.RbacAuthorizationV1Api;
let work: string;
let clusterRole: string;

async function inClusterEnvFor(sa: string): Promise<Record<string, string>> {
  const env = testEnv();
  await core.createNamespacedServiceAccount({ namespace: ns(), body: { metadata: { name: sa } } });
  const tr = await core.createNamespacedServiceAccountToken({
    namespace: ns(),
    name: sa,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const dir = join(work, `sa-${sa}`);
  await mkdir(dir);
  await writeFile(join(dir, 'token'), tr.status?.token ?? '');
  await writeFile(join(dir, 'ca.crt'), env.clusterCaPem);
  const api = new URL(env.apiServerUrl);
  return {
    CERT_ROTATOR_SERVICEACCOUNT_DIR: dir,
    KUBERNETES_SERVICE_HOST: api.hostname,
    KUBERNETES_SERVICE_PORT: api.port,
    POD_NAMESPACE: ns(),
    POD_NAME: `${sa}-7d9f-abcde`,
    POD_SERVICE_ACCOUNT: sa,
  };
}

async function bindRequester(sa: string): Promise<void> {
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: `${clusterRole}-${sa}` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole },
      subjects: [{ kind: 'ServiceAccount', name: sa, namespace: ns() }],
    },
  });
}

/** The CSR the ServiceAccount `sa` made, once the API server has it. */
async function csrOf(sa: string): Promise<k8s.V1CertificateSigningRequest> {
  return await waitFor(`a CSR from ${sa}`, async () =>
    (await certs.listCertificateSigningRequest()).items.find(
      (c) => c.spec.username === `system:serviceaccount:${ns()}:${sa}` && !c.status?.conditions?.length,
    ),
  );
}

async function decide(csr: k8s.V1CertificateSigningRequest, type: 'Approved' | 'Denied', message: string) {
  const name = csr.metadata?.name ?? '';
  const fresh = await certs.readCertificateSigningRequest({ name });
  fresh.status = {
    ...fresh.status,
    conditions: [{ type, status: 'True', reason: 'SidecarTestByAdmin', message, lastUpdateTime: new Date() }],
  };
  await certs.replaceCertificateSigningRequestApproval({ name, body: fresh });
}

beforeAll(async () => {
  admin = adminKubeConfig();
  core = admin.makeApiClient(k8s.CoreV1Api);
  certs = admin.makeApiClient(k8s.CertificatesV1Api);
  rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
  work = await mkdtemp(join(tmpdir(), 'cert-rotator-sidecar-csr-'));
  clusterRole = `${ns()}-csr-requester`;
  await rbac.createClusterRole({
    body: {
      metadata: { name: clusterRole },
      rules: [
        {
          apiGroups: ['certificates.k8s.io'],
          resources: ['certificatesigningrequests'],
          verbs: ['create', 'get', 'list', 'watch'],
        },
      ],
    },
  });
});

afterAll(async () => {
  await stopAllChildren();
  for (const sa of ['workload', 'denied'])
    await rbac.deleteClusterRoleBinding({ name: `${clusterRole}-${sa}` }).catch(() => undefined);
  await rbac.deleteClusterRole({ name: clusterRole }).catch(() => undefined);
});

describe('sidecar --csr-signer (kube-controller-manager kube-apiserver-client signer; the test approves as admin)', () => {
  it('requests its own SPIFFE certificate with the pod token; key generated in the pod and in no Secret', async () => {
    const env = await inClusterEnvFor('workload');
    await bindRequester('workload');
    const dir = join(work, 'certs');
    const sidecar = startSidecar(
      [
        '--csr-signer',
        SIGNER,
        '--dir',
        dir,
        '--common-name',
        'sidecar-csr-test',
        '--dns-names',
        '{podname}.{namespace}.pod.cluster.local',
        '--duration',
        '10m',
        '--metrics-address',
        '127.0.0.1:0',
      ],
      { env },
    );
    const base = await metricsUrlOf(sidecar);
    const csr = await csrOf('workload');
    expect(csr.spec.signerName).toBe(SIGNER);
    expect(csr.spec.expirationSeconds).toBe(600);
    expect(csr.spec.usages).toEqual(['digital signature', 'key encipherment', 'client auth']);
    expect((await scrape(base, '/readyz')).status).toBe(503);
    await decide(csr, 'Approved', 'approved by the sidecar-csr test (admin)');
    await sidecar.waitForLog('the swap', (l) => l.msg === 'files swapped', 60_000);

    const crt = await readFile(join(dir, 'tls.crt'), 'utf8');
    const key = await readFile(join(dir, 'tls.key'), 'utf8');
    const leaf = readCertificateSummary(certificatesFromPem(crt)[0]!);
    expect(leaf.uris).toEqual([`spiffe://cluster.local/ns/${ns()}/sa/workload`]);
    expect(leaf.dnsNames).toEqual([`workload-7d9f-abcde.${ns()}.pod.cluster.local`]);
    expect(leaf.subjectCommonName).toBe('sidecar-csr-test');
    expect(keyMatchesCertificate(key, certificatesFromPem(crt)[0]!)).toBe(true);
    // kube-controller-manager honours expirationSeconds (and backdates notBefore by 5 minutes):
    // the renewal is planned from the issued validity, not from the requested duration.
    expect(leaf.notAfter - Date.now()).toBeLessThanOrEqual(10 * 60_000 + 5_000);
    const plan = await sidecar.waitForLog('the renewal plan', (l) => l.msg === 'next renewal scheduled');
    const into = Date.parse(String(plan.renewAt)) - leaf.notBefore;
    expect(into).toBeGreaterThanOrEqual(0.7 * (leaf.notAfter - leaf.notBefore) - 1_000);
    expect(into).toBeLessThanOrEqual(0.9 * (leaf.notAfter - leaf.notBefore) + 1_000);
    expect((await scrape(base, '/readyz')).status).toBe(200);

    // The private key is in no Secret of any namespace, and not in the CSR either.
    const keyBody = splitPem(key)[0]!;
    const keyB64 = Buffer.from(keyBody.der).toString('base64');
    // Slices from the middle: the first bytes of every P-256 PKCS#8 key are the same header.
    const needles = [keyB64.slice(48, 88), Buffer.from(key).toString('base64').slice(64, 104)];
    // Control: a key that IS in a Secret is found by the same search.
    const planted = (await generateKey('ecdsa-p256')).privateKeyPem;
    await core.createNamespacedSecret({
      namespace: ns(),
      body: {
        metadata: { name: 'planted-key' },
        type: 'Opaque',
        data: { 'k.pem': Buffer.from(planted).toString('base64') },
      },
    });
    const hay = JSON.stringify((await core.listSecretForAllNamespaces()).items);
    expect(hay.includes(Buffer.from(planted).toString('base64').slice(64, 104))).toBe(true);
    for (const n of needles) expect(hay.includes(n)).toBe(false);
    const allCsrs = JSON.stringify((await certs.listCertificateSigningRequest()).items);
    for (const n of needles) expect(allCsrs.includes(n)).toBe(false);
    expect(sidecar.output()).not.toContain(keyB64.slice(48, 88));
    await sidecar.stop();
  }, 120_000);

  it('a denied CSR: the sidecar says who denied it and why, and is not ready', async () => {
    const env = await inClusterEnvFor('denied');
    await bindRequester('denied');
    const sidecar = startSidecar(
      [
        '--csr-signer',
        SIGNER,
        '--dir',
        join(work, 'denied'),
        '--common-name',
        'x',
        '--metrics-address',
        '127.0.0.1:0',
      ],
      { env },
    );
    const base = await metricsUrlOf(sidecar);
    await decide(await csrOf('denied'), 'Denied', 'not this one');
    const warn = await sidecar.waitForLog(
      'the denial',
      (l) => l.msg === 'could not issue a certificate; keeping the files on disk',
    );
    expect(JSON.stringify(warn.err)).toMatch(
      /CSR denied-7d9f-abcde-\w+ was denied: SidecarTestByAdmin: not this one/,
    );
    const ready = await scrape(base, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.text).toContain('was denied');
    await sidecar.stop();
    expect(await readDir(join(work, 'denied'))).toBeUndefined();
  }, 60_000);

  it('without RBAC for CSRs the sidecar names the ClusterRole to bind', async () => {
    const env = await inClusterEnvFor('no-rbac');
    const s = startSidecar(
      [
        '--csr-signer',
        SIGNER,
        '--dir',
        join(work, 'no-rbac'),
        '--common-name',
        'x',
        '--once',
        '--timeout',
        '3s',
      ],
      { env },
    );
    expect(await s.exited).toBe(1);
    expect(s.output()).toMatch(
      /the API server denied creating a CSR for signer kubernetes\.io\/kube-apiserver-client/,
    );
    expect(s.output()).toContain('verbs: [create, get, list, watch]');
  });
});
