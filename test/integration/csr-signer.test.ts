/**
 * cert-rotator as a CSR signer and approver, against the real kube-apiserver: its own signer
 * through a kubernetesCSR issuer (serving certificate), rule failures, exactly-once signing with
 * two replicas, and the ServiceAccount approver with real (TokenRequest) tokens.
 */
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeCsrApi } from '../../src/kube/csr-api.ts';
import {
  certificatesFromPem,
  createCsrPem,
  generateKey,
  keyMatchesCertificate,
  readCertificateSummary,
} from '../../src/pki/index.ts';
import {
  allControllerOutput,
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { decoded, makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const A = 'cert-rotator.io/';
const SERVING = 'cert-rotator.io/t-serving';
const SPIFFE = 'cert-rotator.io/t-spiffe';

let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let certs: k8s.CertificatesV1Api;
let ca: Pair;
let other: Pair;
const replicas: ControllerProcess[] = [];
/** Unique per test file run: signerNames are cluster-wide and CSRs are cluster-scoped. */
let tag = '';

function spiffe(namespace: string, sa: string): string {
  return `spiffe://cluster.local/ns/${namespace}/sa/${sa}`;
}

async function createCsr(
  api: k8s.CertificatesV1Api,
  signerName: string,
  requestPem: string,
  usages: string[],
  expirationSeconds?: number,
): Promise<string> {
  const created = await api.createCertificateSigningRequest({
    body: {
      metadata: { generateName: `t-${tag}-` },
      spec: {
        signerName,
        request: Buffer.from(requestPem).toString('base64'),
        usages,
        ...(expirationSeconds ? { expirationSeconds } : {}),
      },
    },
  });
  return created.metadata?.name ?? '';
}

async function approve(name: string): Promise<void> {
  const csr = await certs.readCertificateSigningRequest({ name });
  csr.status = {
    ...(csr.status ?? {}),
    conditions: [
      ...(csr.status?.conditions ?? []),
      { type: 'Approved', status: 'True', reason: 'TestApproved', message: 'approved by the test' },
    ],
  };
  await certs.replaceCertificateSigningRequestApproval({ name, body: csr });
}

/** Waits for a CSR to be issued, or to get a condition of `type`; returns it. */
async function settled(name: string): Promise<k8s.V1CertificateSigningRequest> {
  return await waitFor(
    `CSR ${name} to be settled`,
    async () => {
      const csr = await certs.readCertificateSigningRequest({ name });
      const done =
        csr.status?.certificate ||
        csr.status?.conditions?.some(
          (c) => (c.type === 'Denied' || c.type === 'Failed') && c.status === 'True',
        );
      return done ? csr : undefined;
    },
    { timeoutMs: 30_000 },
  );
}

function conditionOf(csr: k8s.V1CertificateSigningRequest, type: string) {
  return csr.status?.conditions?.find((c) => c.type === type);
}

async function requestPem(identity: {
  commonName?: string;
  dnsNames?: string[];
  uris?: string[];
}): Promise<{ pem: string; keyPem: string }> {
  const key = await generateKey('ecdsa-p256');
  const pem = await createCsrPem(key.privateKeyPem, {
    ...(identity.commonName ? { commonName: identity.commonName } : {}),
    dnsNames: identity.dnsNames ?? [],
    ipAddresses: [],
    uris: identity.uris ?? [],
  });
  return { pem, keyPem: key.privateKeyPem };
}

type CreateParams = Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0];

/** A CSR that asks for basicConstraints cA=TRUE (our own generator never would). */
async function caRequestPem(): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    {
      name: 'CN=evil-intermediate',
      keys: keys as unknown as CreateParams['keys'],
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as CreateParams['signingAlgorithm'],
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'ca.example.com' }]),
      ],
    },
    webcrypto as unknown as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[1],
  );
  return csr.toString('pem');
}

/** A token for ServiceAccount `sa`, bound to Pod `pod` when given (then spec.extra names the pod). */
async function saClient(sa: string, pod?: { name: string; uid: string }): Promise<k8s.CertificatesV1Api> {
  return (await saKubeConfig(sa, pod)).makeApiClient(k8s.CertificatesV1Api);
}

async function saKubeConfig(sa: string, pod?: { name: string; uid: string }): Promise<k8s.KubeConfig> {
  const tr = await core.createNamespacedServiceAccountToken({
    namespace: ns(),
    name: sa,
    body: {
      spec: {
        audiences: [],
        expirationSeconds: 3600,
        ...(pod ? { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.name, uid: pod.uid } } : {}),
      },
    },
  });
  const cluster = kc.getCurrentCluster();
  if (!cluster || !tr.status?.token) throw new Error('no token');
  const sakc = new k8s.KubeConfig();
  sakc.loadFromClusterAndUser(
    { name: cluster.name, server: cluster.server, caData: cluster.caData, skipTLSVerify: false },
    { name: sa, token: tr.status.token },
  );
  return sakc;
}

beforeAll(async () => {
  kc = adminKubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  certs = kc.makeApiClient(k8s.CertificatesV1Api);
  tag = ns().slice(-6);
  ca = await makeTestCA('csr signer test CA');
  other = await makeTestCA('some other CA');
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('signing-ca', ca) });
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-csr-signer-'));
  const caRef = { secret: { namespace: ns(), name: 'signing-ca' } };
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    leaderElection: { namespace: ns(), leaseDuration: '4s', renewDeadline: '3s', retryPeriod: '500ms' },
    issuers: [
      {
        name: 'serving-ca',
        ca: caRef,
        signer: {
          signerName: `${SERVING}-${tag}`,
          maxDuration: '2h',
          allowedUsages: ['digital signature', 'key encipherment', 'server auth'],
        },
        allowedDomains: ['*.example.com'],
      },
      {
        name: 'via-own-signer',
        kubernetesCSR: { signerName: `${SERVING}-${tag}`, autoApprove: true, caBundle: ca.certPem },
        allowedDomains: ['*.example.com'],
      },
      {
        // Trusts another CA than the one the signer uses: its certificates must be refused.
        name: 'wrong-bundle',
        kubernetesCSR: { signerName: `${SERVING}-${tag}`, autoApprove: true, caBundle: other.certPem },
        allowedDomains: ['*.example.com'],
      },
      {
        name: 'spiffe-ca',
        ca: caRef,
        signer: { signerName: `${SPIFFE}-${tag}`, maxDuration: '1m' },
        allowedURIs: ['spiffe://cluster.local/ns/*/sa/*'],
        allowedDomains: ['*.*.pod.cluster.local'],
        approve: {
          serviceAccounts: {
            namespaces: [ns()],
            uris: ['spiffe://cluster.local/ns/{namespace}/sa/{serviceaccount}'],
            dnsNames: ['{podname}.{namespace}.pod.cluster.local'],
          },
        },
      },
    ],
  });
  for (let i = 0; i < 2; i++) {
    replicas.push(startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath }));
  }
  await waitFor('one replica to lead', () =>
    allControllerOutput().includes('"msg":"CSR signer started"') &&
    /became leader|acquired/i.test(allControllerOutput())
      ? true
      : undefined,
  );
  // The ServiceAccount requesters may create and read CSRs (the chart ships this ClusterRole).
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  await rbac.createClusterRole({
    body: {
      metadata: { name: `csr-requester-${ns()}` },
      rules: [
        {
          apiGroups: ['certificates.k8s.io'],
          resources: ['certificatesigningrequests'],
          verbs: ['create', 'get', 'list', 'watch'],
        },
      ],
    },
  });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: `csr-requester-${ns()}` },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `csr-requester-${ns()}` },
      subjects: [{ kind: 'Group', name: `system:serviceaccounts:${ns()}` }],
    },
  });
  for (const sa of ['app', 'other']) {
    await core.createNamespacedServiceAccount({ namespace: ns(), body: { metadata: { name: sa } } });
  }
});

afterAll(async () => {
  await killAllControllers();
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  await rbac.deleteClusterRoleBinding({ name: `csr-requester-${ns()}` }).catch(() => undefined);
  await rbac.deleteClusterRole({ name: `csr-requester-${ns()}` }).catch(() => undefined);
});

describe("cert-rotator's own signer", () => {
  it('a Secret through a kubernetesCSR issuer for the own signer gets a serving certificate from the CA', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: {
        metadata: {
          name: 'web',
          annotations: {
            [`${A}enabled`]: 'true',
            [`${A}issuer`]: 'via-own-signer',
            [`${A}dns-names`]: 'web.example.com',
          },
        },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': '', 'tls.key': '' },
      },
    });
    const secret = await waitFor(
      'web to be written',
      async () => {
        const s = await core.readNamespacedSecret({ namespace: ns(), name: 'web' });
        return s.metadata?.annotations?.[`${A}revision`] === '1' ? s : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const chain = certificatesFromPem(decoded(secret, 'tls.crt'));
    const leafDer = chain[0] as Uint8Array;
    const leaf = new X509Certificate(leafDer);
    const caCert = new X509Certificate(ca.certPem);
    // What `openssl verify -CAfile ca.crt -purpose sslserver` checks, one by one.
    expect(leaf.checkIssued(caCert)).toBe(true);
    expect(leaf.verify(caCert.publicKey)).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // serverAuth only: the default usages
    expect(leaf.checkHost('web.example.com')).toBe('web.example.com');
    expect(keyMatchesCertificate(decoded(secret, 'tls.key'), leafDer)).toBe(true);
    const s = readCertificateSummary(leafDer);
    // No duration asked: the signer's maxDuration (2h).
    expect(s.notAfter - Date.now()).toBeGreaterThan(115 * 60_000);
    expect(s.notAfter - Date.now()).toBeLessThanOrEqual(2 * 3_600_000);
    expect(new X509Certificate(decoded(secret, 'ca.crt')).fingerprint256).toBe(caCert.fingerprint256);
  });

  it('a certificate not signed by the configured caBundle is refused: RenewalFailed, nothing written', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: {
        metadata: {
          name: 'wrong',
          annotations: {
            [`${A}enabled`]: 'true',
            [`${A}issuer`]: 'wrong-bundle',
            [`${A}dns-names`]: 'wrong.example.com',
          },
        },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': '', 'tls.key': '' },
      },
    });
    const event = await waitFor('a RenewalFailed event on wrong', async () => {
      const list = await core.listNamespacedEvent({
        namespace: ns(),
        fieldSelector: 'involvedObject.name=wrong',
      });
      return list.items.find((e) => e.reason === 'RenewalFailed');
    });
    expect(event.message).toContain('returned a certificate that fails verification');
    expect(event.message).toContain('not signed by a certificate of the configured CA bundle');
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'wrong' });
    expect(s.data?.['tls.crt'] ?? '').toBe('');
  });

  it('refuses, with the Failed condition naming the rule: isCA, a usage outside allowedUsages, a name outside allowedDomains', async () => {
    const signer = `${SERVING}-${tag}`;
    const isCA = await createCsr(certs, signer, await caRequestPem(), ['digital signature', 'server auth']);
    const usage = await createCsr(certs, signer, (await requestPem({ dnsNames: ['u.example.com'] })).pem, [
      'digital signature',
      'client auth',
    ]);
    const name = await createCsr(certs, signer, (await requestPem({ dnsNames: ['evil.example.org'] })).pem, [
      'digital signature',
      'server auth',
    ]);
    for (const n of [isCA, usage, name]) await approve(n);
    const [a, b, c] = await Promise.all([settled(isCA), settled(usage), settled(name)]);
    expect(conditionOf(a!, 'Failed')).toMatchObject({ reason: 'CertRotatorCANotAllowed' });
    expect(conditionOf(a!, 'Failed')?.message).toContain('rule "isCA"');
    expect(conditionOf(b!, 'Failed')).toMatchObject({ reason: 'CertRotatorUsageNotAllowed' });
    expect(conditionOf(b!, 'Failed')?.message).toContain('rule "allowedUsages"');
    expect(conditionOf(b!, 'Failed')?.message).toContain('"client auth"');
    expect(conditionOf(c!, 'Failed')).toMatchObject({ reason: 'CertRotatorNameNotAllowed' });
    expect(conditionOf(c!, 'Failed')?.message).toContain('rule "allowedDomains"');
    expect(conditionOf(c!, 'Failed')?.message).toContain('"evil.example.org"');
    for (const csr of [a, b, c]) expect(csr?.status?.certificate).toBeFalsy();
  });

  it('signs an approved valid CSR exactly once with two replicas running', async () => {
    const { pem, keyPem } = await requestPem({ dnsNames: ['once.example.com'] });
    const name = await createCsr(certs, `${SERVING}-${tag}`, pem, ['digital signature', 'server auth'], 600);
    await approve(name);
    const csr = await settled(name);
    const certPem = Buffer.from(csr.status?.certificate ?? '', 'base64').toString('utf8');
    expect(keyMatchesCertificate(keyPem, certificatesFromPem(certPem)[0] as Uint8Array)).toBe(true);
    // The log line follows the status write: wait for it, then count across both replicas.
    const signedLines = () =>
      allControllerOutput()
        .split('\n')
        .filter((l) => l.includes('"msg":"CSR signed"') && l.includes(`"csr":"${name}"`));
    await waitFor('the signer to log the signature', () => (signedLines().length > 0 ? true : undefined));
    expect(signedLines()).toHaveLength(1);
    expect((await certs.readCertificateSigningRequest({ name })).status?.certificate).toBe(
      csr.status?.certificate,
    );
    expect(replicas.every((r) => r.proc.exitCode === null)).toBe(true);
  });
});

describe('two signers without leader election racing for the same CSRs', () => {
  it('every approved CSR is signed once: the loser sees a conflict and leaves the certificate alone', async () => {
    const raceNs = `${ns()}-race`;
    await core.createNamespace({ body: { metadata: { name: raceNs } } });
    try {
      const signerName = `${SERVING}-race-${tag}`;
      const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-csr-race-'));
      const configPath = await writeConfig(dir, {
        namespaces: [raceNs],
        leaderElection: { enabled: false },
        issuers: [
          {
            name: 'race-ca',
            ca: { secret: { namespace: ns(), name: 'signing-ca' } },
            signer: { signerName, maxDuration: '1h' },
            allowedDomains: ['*.example.com'],
          },
        ],
      });
      const racers = [0, 1].map(() =>
        startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath }),
      );
      await Promise.all(racers.map((r) => r.waitForLog('the signer', (l) => l.msg === 'CSR signer started')));
      const names: string[] = [];
      for (let i = 0; i < 5; i++) {
        const { pem } = await requestPem({ dnsNames: [`race-${i}.example.com`] });
        names.push(await createCsr(certs, signerName, pem, ['digital signature', 'server auth']));
      }
      await Promise.all(names.map((n) => approve(n)));
      for (const name of names) expect((await settled(name)).status?.certificate, name).toBeTruthy();
      // Stopped, both have flushed every log line they will ever write: count the signatures.
      await Promise.all(racers.map((r) => r.stop()));
      for (const name of names) {
        const lines = racers.flatMap((r) => r.logs.filter((l) => l.msg === 'CSR signed' && l.csr === name));
        expect(lines, `signatures recorded for ${name}`).toHaveLength(1);
      }
    } finally {
      await core.deleteNamespace({ name: raceNs }).catch(() => undefined);
    }
  });
});

describe('the ServiceAccount approver', () => {
  it('approves and signs a ServiceAccount asking for its own SPIFFE ID and pod DNS name (capped to maxDuration)', async () => {
    const pod = await core.createNamespacedPod({
      namespace: ns(),
      body: {
        metadata: { name: 'app-0' },
        spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: 'example.invalid/app' }] },
      },
    });
    // Through KubeCsrApi.requestCertificate, the call a sidecar makes with its pod's token.
    const api = new KubeCsrApi(await saKubeConfig('app', { name: 'app-0', uid: pod.metadata?.uid ?? '' }));
    const { pem, keyPem } = await requestPem({
      uris: [spiffe(ns(), 'app')],
      dnsNames: [`app-0.${ns()}.pod.cluster.local`],
    });
    const outcome = await api.requestCertificate(
      {
        generateName: 'app-0-',
        labels: {},
        annotations: {},
        signerName: `${SPIFFE}-${tag}`,
        requestPem: pem,
        usages: ['digital signature', 'client auth', 'server auth'],
        expirationSeconds: 600,
      },
      30_000,
    );
    expect(outcome.kind).toBe('issued');
    const csr = await certs.readCertificateSigningRequest({ name: outcome.name });
    expect(csr.spec.username).toBe(`system:serviceaccount:${ns()}:app`);
    expect(conditionOf(csr, 'Approved')).toMatchObject({ reason: 'CertRotatorPolicyApproved' });
    const certPem = Buffer.from(csr.status?.certificate ?? '', 'base64').toString('utf8');
    const leafDer = certificatesFromPem(certPem)[0] as Uint8Array;
    const s = readCertificateSummary(leafDer);
    expect(s.uris).toEqual([spiffe(ns(), 'app')]);
    expect(s.dnsNames).toEqual([`app-0.${ns()}.pod.cluster.local`]);
    expect(keyMatchesCertificate(keyPem, leafDer)).toBe(true);
    expect(s.notAfter - s.notBefore).toBeLessThanOrEqual(66_000); // 1m + backdate, not 600 s
  });

  it('denies a ServiceAccount outside the allowed namespaces, naming the namespace', async () => {
    const outside = `${ns()}-out`;
    await core.createNamespace({ body: { metadata: { name: outside } } });
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    try {
      await core.createNamespacedServiceAccount({ namespace: outside, body: { metadata: { name: 'app' } } });
      await rbac.createClusterRoleBinding({
        body: {
          metadata: { name: `csr-requester-${outside}` },
          roleRef: {
            apiGroup: 'rbac.authorization.k8s.io',
            kind: 'ClusterRole',
            name: `csr-requester-${ns()}`,
          },
          subjects: [{ kind: 'Group', name: `system:serviceaccounts:${outside}` }],
        },
      });
      const tr = await core.createNamespacedServiceAccountToken({
        namespace: outside,
        name: 'app',
        body: { spec: { audiences: [], expirationSeconds: 3600 } },
      });
      const cluster = kc.getCurrentCluster();
      const sakc = new k8s.KubeConfig();
      sakc.loadFromClusterAndUser(
        {
          name: cluster?.name ?? '',
          server: cluster?.server ?? '',
          caData: cluster?.caData,
          skipTLSVerify: false,
        },
        { name: 'outside', token: tr.status?.token ?? '' },
      );
      const api = sakc.makeApiClient(k8s.CertificatesV1Api);
      const name = await waitFor('the binding to take effect', async () => {
        try {
          return await createCsr(
            api,
            `${SPIFFE}-${tag}`,
            (await requestPem({ uris: [spiffe(outside, 'app')] })).pem,
            ['digital signature', 'client auth'],
          );
        } catch {
          return undefined;
        }
      });
      const csr = await settled(name);
      expect(conditionOf(csr, 'Denied')?.message).toContain(
        `is in namespace "${outside}", which is not allowed`,
      );
    } finally {
      await rbac.deleteClusterRoleBinding({ name: `csr-requester-${outside}` }).catch(() => undefined);
      await core.deleteNamespace({ name: outside }).catch(() => undefined);
    }
  });

  it("denies another ServiceAccount's SPIFFE ID, a DNS name outside the templates, and a requester that is not a ServiceAccount", async () => {
    const api = await saClient('app');
    const theirs = await createCsr(
      api,
      `${SPIFFE}-${tag}`,
      (await requestPem({ uris: [spiffe(ns(), 'other')] })).pem,
      ['digital signature', 'client auth'],
    );
    const dns = await createCsr(
      api,
      `${SPIFFE}-${tag}`,
      (await requestPem({ uris: [spiffe(ns(), 'app')], dnsNames: ['db.example.com'] })).pem,
      ['digital signature', 'client auth'],
    );
    const admin = await createCsr(
      certs,
      `${SPIFFE}-${tag}`,
      (await requestPem({ uris: [spiffe(ns(), 'app')] })).pem,
      ['digital signature', 'client auth'],
    );
    const [a, b, c] = await Promise.all([settled(theirs), settled(dns), settled(admin)]);
    expect(conditionOf(a!, 'Denied')?.message).toContain(`may not have URI "${spiffe(ns(), 'other')}"`);
    expect(conditionOf(b!, 'Denied')?.message).toContain('may not have DNS name "db.example.com"');
    expect(conditionOf(c!, 'Denied')?.message).toContain('is not a ServiceAccount');
    for (const csr of [a, b, c]) {
      expect(conditionOf(csr!, 'Denied')?.reason).toBe('CertRotatorPolicyDenied');
      expect(csr?.status?.certificate).toBeFalsy();
    }
  });
});
