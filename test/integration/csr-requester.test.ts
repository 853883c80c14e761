/**
 * The `kubernetesCSR` issuer against the real kube-apiserver and kube-controller-manager:
 * kcm's kube-apiserver-client signer end to end (the certificate logs in as its CN), a CSR
 * denied by a person, one never approved (timeout), and a controller SIGKILLed while waiting.
 */

import { X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CsrLink } from '../../src/names.ts';
import { certificatesFromPem, keyMatchesCertificate, readCertificateSummary } from '../../src/pki/index.ts';
import {
  type ControllerProcess,
  killAllControllers,
  metricValue,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { decoded, eventsFor } from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const A = 'cert-rotator.io/';

let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let certs: k8s.CertificatesV1Api;
let configPath: string;
let controller: ControllerProcess;
let metricsUrl: string;
/** Names of every CSR ever created for each Secret, seen by a watch the test runs itself. */
const created = new Map<string, string[]>();
let stopWatch: AbortController | undefined;
let closing = false;
/** spec.expirationSeconds of each CSR seen (a CSR may be gone before a list could see it). */
const expirationOf = new Map<string, number | undefined>();

function emptyTlsSecret(name: string, annotations: Record<string, string>): k8s.V1Secret {
  return {
    metadata: { name, annotations: { [`${A}enabled`]: 'true', ...annotations } },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': '', 'tls.key': '' },
  };
}

async function csrsFor(secret: string): Promise<k8s.V1CertificateSigningRequest[]> {
  const list = await certs.listCertificateSigningRequest({
    labelSelector: `${CsrLink.secretNamespace}=${ns()},${CsrLink.secretName}=${secret}`,
  });
  return list.items;
}

async function waitForEvent(name: string, reason: string, contains = ''): Promise<k8s.CoreV1Event> {
  return await waitFor(
    `a ${reason} event on ${name}${contains ? ` containing "${contains}"` : ''}`,
    async () =>
      (await eventsFor(core, ns(), name)).find(
        (e) => e.reason === reason && (e.message ?? '').includes(contains),
      ),
    { timeoutMs: 60_000 },
  );
}

async function approveOrDeny(name: string, type: 'Approved' | 'Denied', reason: string, message: string) {
  const csr = await certs.readCertificateSigningRequest({ name });
  csr.status = {
    ...(csr.status ?? {}),
    conditions: [...(csr.status?.conditions ?? []), { type, status: 'True', reason, message }],
  };
  await certs.replaceCertificateSigningRequestApproval({ name, body: csr });
}

/** POST a SelfSubjectReview authenticated by a client certificate: who the API server says we are. */
async function whoAmI(certPem: string, keyPem: string): Promise<{ status: number; body: string }> {
  const env = testEnv();
  const url = new URL('/apis/authentication.k8s.io/v1/selfsubjectreviews', env.apiServerUrl);
  const payload = JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
  return await new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: env.clusterCaPem,
        cert: certPem,
        key: keyPem,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

function startController(): ControllerProcess {
  return startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
}

beforeAll(async () => {
  kc = adminKubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  certs = kc.makeApiClient(k8s.CertificatesV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-csr-'));
  configPath = await writeConfig(dir, {
    namespaces: [ns()],
    leaderElection: { enabled: false },
    renewalBackoff: { base: '1h', cap: '2h' },
    issuers: [
      {
        name: 'kcm-client',
        kubernetesCSR: {
          signerName: 'kubernetes.io/kube-apiserver-client',
          autoApprove: true,
          caBundleFrom: { configMap: { namespace: ns(), name: 'kube-root-ca.crt', key: 'ca.crt' } },
        },
        allowedCommonNames: ['csr-user-*'],
      },
      {
        // A person approves (or denies) these; kcm signs approved ones.
        name: 'kcm-manual',
        kubernetesCSR: { signerName: 'kubernetes.io/kube-apiserver-client' },
        allowedCommonNames: ['csr-user-*'],
      },
      {
        // No signer exists for this name: nothing ever happens to the CSR.
        name: 'nobody',
        kubernetesCSR: { signerName: 'example.com/nobody-signs', approvalTimeout: '5s' },
      },
    ],
  });
  // The test's own record of every CSR created, so "exactly one" is counted, not guessed. The
  // client's watch ends after 30 s without events: it is re-opened from the last version seen.
  let rv = '';
  const watch = new k8s.Watch(kc);
  const open = async (): Promise<void> => {
    stopWatch = await watch.watch(
      '/apis/certificates.k8s.io/v1/certificatesigningrequests',
      { labelSelector: `${CsrLink.secretNamespace}=${ns()}`, allowWatchBookmarks: true, resourceVersion: rv },
      (phase: string, obj: k8s.V1CertificateSigningRequest) => {
        if (obj.metadata?.resourceVersion) rv = obj.metadata.resourceVersion;
        if (phase !== 'ADDED') return;
        const secret = obj.metadata?.labels?.[CsrLink.secretName] ?? '';
        const names = created.get(secret) ?? [];
        if (!names.includes(obj.metadata?.name ?? '')) names.push(obj.metadata?.name ?? '');
        created.set(secret, names);
        expirationOf.set(obj.metadata?.name ?? '', obj.spec.expirationSeconds);
      },
      () => {
        if (!closing) void open();
      },
    );
  };
  rv = (await certs.listCertificateSigningRequest({ limit: 1 })).metadata?.resourceVersion ?? '';
  await open();
  await waitFor('kube-root-ca.crt in the test namespace', async () => {
    try {
      return await core.readNamespacedConfigMap({ namespace: ns(), name: 'kube-root-ca.crt' });
    } catch {
      return undefined;
    }
  });
  controller = startController();
  metricsUrl = await controller.metricsUrl();
  await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
});

afterAll(async () => {
  closing = true;
  stopWatch?.abort();
  await killAllControllers();
});

describe('kubernetesCSR issuer against kube-controller-manager', () => {
  it("kcm's kube-apiserver-client signer: renewed, signed by the cluster CA, and it logs in as its CN", async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: emptyTlsSecret('alice', { [`${A}issuer`]: 'kcm-client', [`${A}common-name`]: 'csr-user-alice' }),
    });
    const secret = await waitFor(
      'alice to be written',
      async () => {
        const s = await core.readNamespacedSecret({ namespace: ns(), name: 'alice' });
        return s.metadata?.annotations?.[`${A}revision`] === '1' ? s : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const certPem = decoded(secret, 'tls.crt');
    const keyPem = decoded(secret, 'tls.key');
    const leaf = certificatesFromPem(certPem)[0] as Uint8Array;
    expect(readCertificateSummary(leaf).subjectCommonName).toBe('csr-user-alice');
    expect(keyMatchesCertificate(keyPem, leaf)).toBe(true);
    const clusterCa = new X509Certificate(testEnv().clusterCaPem);
    expect(new X509Certificate(certPem).verify(clusterCa.publicKey)).toBe(true);
    // ca.crt comes from the kube-root-ca.crt ConfigMap.
    expect(new X509Certificate(decoded(secret, 'ca.crt')).fingerprint256).toBe(clusterCa.fingerprint256);

    const review = await whoAmI(certPem, keyPem);
    expect(review.status).toBe(201);
    expect(JSON.parse(review.body).status.userInfo.username).toBe('csr-user-alice');

    // Exactly one CSR, approved by cert-rotator, deleted once the Secret was written.
    await waitFor('the CSR of alice to be seen', () => created.get('alice'));
    expect(created.get('alice')).toHaveLength(1);
    await waitFor('the CSR of alice to be deleted', async () => (await csrsFor('alice')).length === 0);
    const event = await waitForEvent('alice', 'Renewed');
    expect(event.message).toContain('kcm-client');
    expect(
      await metricValue(metricsUrl, 'cert_rotator_csr_requests_total', {
        issuer: 'kcm-client',
        result: 'issued',
      }),
    ).toBe(1);
    expect(
      await metricValue(metricsUrl, 'cert_rotator_csr_approval_wait_seconds_count', { issuer: 'kcm-client' }),
    ).toBe(1);
  });

  it('asks for the duration annotation as expirationSeconds and plans the next renewal from the issued validity', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: emptyTlsSecret('short', {
        [`${A}issuer`]: 'kcm-client',
        [`${A}common-name`]: 'csr-user-erin',
        [`${A}duration`]: '2h',
      }),
    });
    const secret = await waitFor(
      'short to be written',
      async () => {
        const s = await core.readNamespacedSecret({ namespace: ns(), name: 'short' });
        return s.metadata?.annotations?.[`${A}revision`] === '1' ? s : undefined;
      },
      { timeoutMs: 60_000 },
    );
    // The CSR (deleted once the Secret was written) asked for the annotation's duration.
    const csrName = await waitFor('the CSR of short to be seen', () => created.get('short')?.[0]);
    expect(expirationOf.get(csrName)).toBe(7200);
    const leaf = readCertificateSummary(certificatesFromPem(decoded(secret, 'tls.crt'))[0] as Uint8Array);
    expect(leaf.notAfter - Date.now()).toBeLessThanOrEqual(2 * 3_600_000);
    expect(leaf.notAfter - Date.now()).toBeGreaterThan(110 * 60_000);
    // kcm backdates notBefore: the renewal time is a third of the *issued* lifetime before notAfter.
    const planned = Date.parse(secret.metadata?.annotations?.[`${A}renewal-time`] ?? '');
    const expected = leaf.notAfter - (leaf.notAfter - leaf.notBefore) / 3;
    expect(Math.abs(planned - expected)).toBeLessThanOrEqual(1000);
  });

  it('a CSR denied by a person: RenewalFailed naming the CSR and the reason; one CSR; nothing written', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: emptyTlsSecret('denied', { [`${A}issuer`]: 'kcm-manual', [`${A}common-name`]: 'csr-user-bob' }),
    });
    const [csr] = await waitFor('the CSR of denied', async () => {
      const l = await csrsFor('denied');
      return l.length > 0 ? l : undefined;
    });
    const name = csr?.metadata?.name ?? '';
    expect(csr?.spec.usages).toEqual(['digital signature', 'key encipherment', 'client auth']);
    expect(csr?.metadata?.annotations?.[CsrLink.secretUid]).toBe(
      (await core.readNamespacedSecret({ namespace: ns(), name: 'denied' })).metadata?.uid,
    );
    await approveOrDeny(name, 'Denied', 'NotToday', 'bob may not have a client certificate');
    const event = await waitForEvent('denied', 'RenewalFailed');
    expect(event.message).toContain(`CSR ${name} for signer kubernetes.io/kube-apiserver-client was denied`);
    expect(event.message).toContain('NotToday: bob may not have a client certificate');
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'denied' });
    expect(s.data?.['tls.crt'] ?? '').toBe('');
    expect(s.metadata?.annotations?.[`${A}state`]).toBe('Failed');
    expect(created.get('denied')).toEqual([name]);
    expect(
      await metricValue(metricsUrl, 'cert_rotator_csr_requests_total', {
        issuer: 'kcm-manual',
        result: 'denied',
      }),
    ).toBe(1);
  });

  it('a CSR never approved: timeout event, the CSR deleted, backoff', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: emptyTlsSecret('ignored', { [`${A}issuer`]: 'nobody', [`${A}dns-names`]: 'ignored.example.com' }),
    });
    const event = await waitForEvent('ignored', 'RenewalFailed');
    const name = created.get('ignored')?.[0] ?? '';
    expect(name).not.toBe('');
    expect(event.message).toContain(
      `CSR ${name} for signer example.com/nobody-signs still not approved after 5s`,
    );
    expect(event.message).toMatch(/next attempt in \d+s/);
    expect(await csrsFor('ignored')).toHaveLength(0);
    expect(created.get('ignored')).toHaveLength(1);
    expect(
      await metricValue(metricsUrl, 'cert_rotator_csr_requests_total', {
        issuer: 'nobody',
        result: 'timeout',
      }),
    ).toBe(1);
    // The pending key's companion Secret is gone too.
    await expect(
      core.readNamespacedSecret({ namespace: ns(), name: 'ignored-cert-rotator-csr' }),
    ).rejects.toThrow();
  });

  it('a CSR deleted while pending: RenewalFailed naming it, nothing written', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: emptyTlsSecret('vanished', {
        [`${A}issuer`]: 'kcm-manual',
        [`${A}common-name`]: 'csr-user-dave',
      }),
    });
    const [csr] = await waitFor('the CSR of vanished', async () => {
      const l = await csrsFor('vanished');
      return l.length > 0 ? l : undefined;
    });
    const name = csr?.metadata?.name ?? '';
    await certs.deleteCertificateSigningRequest({ name });
    const event = await waitForEvent('vanished', 'RenewalFailed');
    expect(event.message).toContain(`CSR ${name} for signer kubernetes.io/kube-apiserver-client was deleted`);
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'vanished' });
    expect(s.data?.['tls.crt'] ?? '').toBe('');
  });

  it('SIGKILLed while its CSR is pending, restarted, then approved: written from that CSR, no second CSR', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: emptyTlsSecret('crash', { [`${A}issuer`]: 'kcm-manual', [`${A}common-name`]: 'csr-user-carol' }),
    });
    const [csr] = await waitFor('the CSR of crash', async () => {
      const l = await csrsFor('crash');
      return l.length > 0 ? l : undefined;
    });
    const name = csr?.metadata?.name ?? '';
    // The key it certifies is already persisted next to the Secret.
    const companion = await core.readNamespacedSecret({ namespace: ns(), name: 'crash-cert-rotator-csr' });
    expect(companion.metadata?.ownerReferences?.[0]?.name).toBe('crash');
    await controller.kill();
    controller = startController();
    metricsUrl = await controller.metricsUrl();
    await controller.waitForLog(
      'the restarted controller to resume the CSR',
      (l) => l.msg === 'resuming the CertificateSigningRequest created before a restart' && l.csr === name,
      60_000,
    );
    await approveOrDeny(name, 'Approved', 'TestApproved', 'approved by the test after the restart');
    const secret = await waitFor(
      'crash to be written',
      async () => {
        const s = await core.readNamespacedSecret({ namespace: ns(), name: 'crash' });
        return s.metadata?.annotations?.[`${A}revision`] === '1' ? s : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const leaf = certificatesFromPem(decoded(secret, 'tls.crt'))[0] as Uint8Array;
    expect(readCertificateSummary(leaf).subjectCommonName).toBe('csr-user-carol');
    expect(keyMatchesCertificate(decoded(secret, 'tls.key'), leaf)).toBe(true);
    expect(created.get('crash')).toEqual([name]);
    await waitFor('the companion Secret to be deleted', async () => {
      try {
        await core.readNamespacedSecret({ namespace: ns(), name: 'crash-cert-rotator-csr' });
        return false;
      } catch {
        return true;
      }
    });
  });
});
