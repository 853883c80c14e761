/**
 * A kubernetesCSR renewal waiting for a person does not hold a worker: with `concurrency: 1`
 * and a CSR nobody approves, another Secret due at the same time is still renewed; the waiting
 * Secret stays `Issuing` without a failure; a hand approval is picked up from that same CSR;
 * `approvalTimeout` still counts from the CSR's creation. Real kube-apiserver + kcm.
 */
import { mkdtemp } from 'node:fs/promises';
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
let controller: ControllerProcess;
let metricsUrl: string;
/** Every CSR ever created per Secret, and the certificate each got, seen by the test's own watch. */
const created = new Map<string, string[]>();
const certificateOf = new Map<string, string>();
let stopWatch: AbortController | undefined;
let closing = false;

function emptyTlsSecret(name: string, annotations: Record<string, string>): k8s.V1Secret {
  return {
    metadata: { name, annotations: { [`${A}enabled`]: 'true', ...annotations } },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': '', 'tls.key': '' },
  };
}

async function secret(name: string): Promise<k8s.V1Secret> {
  return await core.readNamespacedSecret({ namespace: ns(), name });
}

async function revisionOne(name: string, timeoutMs = 60_000): Promise<k8s.V1Secret> {
  return await waitFor(
    `${name} to be written`,
    async () => {
      const s = await secret(name);
      return s.metadata?.annotations?.[`${A}revision`] === '1' ? s : undefined;
    },
    { timeoutMs },
  );
}

/** Log lines of the controller saying it will look again at `name`'s pending CSR. */
function pendingLooks(name: string): number {
  return controller.logs.filter(
    (l) => l.secret === `${ns()}/${name}` && typeof l.msg === 'string' && l.msg.includes('looking again in'),
  ).length;
}

beforeAll(async () => {
  kc = adminKubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  certs = kc.makeApiClient(k8s.CertificatesV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-csr-pending-'));
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    leaderElection: { enabled: false },
    concurrency: 1,
    renewalBackoff: { base: '1h', cap: '2h' },
    issuers: [
      {
        // A person approves these; kcm signs approved ones.
        name: 'manual',
        kubernetesCSR: {
          signerName: 'kubernetes.io/kube-apiserver-client',
          approvalHold: '3s',
          approvalTimeout: '10m',
        },
        allowedCommonNames: ['pending-*'],
      },
      {
        // No signer exists for this name, and nobody approves.
        name: 'nobody',
        kubernetesCSR: { signerName: 'example.com/nobody-signs', approvalHold: '2s', approvalTimeout: '20s' },
      },
      { name: 'self', selfSigned: {} },
    ],
  });
  let rv = (await certs.listCertificateSigningRequest({ limit: 1 })).metadata?.resourceVersion ?? '';
  const watch = new k8s.Watch(kc);
  const open = async (): Promise<void> => {
    stopWatch = await watch.watch(
      '/apis/certificates.k8s.io/v1/certificatesigningrequests',
      { labelSelector: `${CsrLink.secretNamespace}=${ns()}`, allowWatchBookmarks: true, resourceVersion: rv },
      (phase: string, obj: k8s.V1CertificateSigningRequest) => {
        if (obj.metadata?.resourceVersion) rv = obj.metadata.resourceVersion;
        const name = obj.metadata?.name ?? '';
        if (phase === 'ADDED') {
          const s = obj.metadata?.labels?.[CsrLink.secretName] ?? '';
          const names = created.get(s) ?? [];
          if (!names.includes(name)) names.push(name);
          created.set(s, names);
        }
        if (obj.status?.certificate) {
          certificateOf.set(name, Buffer.from(obj.status.certificate, 'base64').toString('utf8'));
        }
      },
      () => {
        if (!closing) void open();
      },
    );
  };
  await open();
  controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  metricsUrl = await controller.metricsUrl();
  await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
});

afterAll(async () => {
  closing = true;
  stopWatch?.abort();
  await killAllControllers();
});

describe('a CSR waiting for approval does not hold a worker', () => {
  it('with concurrency 1, another Secret is renewed while the CSR waits; a hand approval is picked up from that CSR', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: emptyTlsSecret('waiting', { [`${A}issuer`]: 'manual', [`${A}common-name`]: 'pending-user' }),
    });
    const csrName = await waitFor('the CSR of waiting', () => created.get('waiting')?.[0], {
      timeoutMs: 30_000,
    });
    // The only worker is (or was) holding that CSR: another Secret due now still gets renewed.
    await core.createNamespacedSecret({
      namespace: ns(),
      body: emptyTlsSecret('other', { [`${A}issuer`]: 'self', [`${A}dns-names`]: 'other.example.com' }),
    });
    const other = await revisionOne('other', 30_000);
    expect(
      readCertificateSummary(certificatesFromPem(decoded(other, 'tls.crt'))[0] as Uint8Array).dnsNames,
    ).toEqual(['other.example.com']);
    const stillPending = await certs.readCertificateSigningRequest({ name: csrName });
    expect(stillPending.status?.conditions ?? []).toEqual([]);
    expect(stillPending.status?.certificate).toBeUndefined();

    // Looked at again at least once (resumed from the companion Secret), still one CSR.
    await waitFor('a second look at the pending CSR', () => pendingLooks('waiting') >= 2 || undefined, {
      timeoutMs: 30_000,
    });
    const waiting = await secret('waiting');
    const annotations = waiting.metadata?.annotations ?? {};
    expect(annotations[`${A}state`]).toBe('Issuing');
    expect(annotations[`${A}failures`]).toBeUndefined();
    expect(annotations[`${A}last-error`]).toBeUndefined();
    expect(annotations[`${A}revision`]).toBeUndefined();
    expect((await eventsFor(core, ns(), 'waiting')).map((e) => e.reason)).not.toContain('RenewalFailed');
    expect(
      await metricValue(metricsUrl, 'cert_rotator_renewals_total', { issuer: 'manual', result: 'failure' }),
    ).toBeUndefined();
    expect(created.get('waiting')).toEqual([csrName]);

    // A person approves (as admin, through the approval subresource); kcm signs.
    const csr = await certs.readCertificateSigningRequest({ name: csrName });
    csr.status = {
      ...(csr.status ?? {}),
      conditions: [{ type: 'Approved', status: 'True', reason: 'ByHand', message: 'approved by the test' }],
    };
    const approvedAt = Date.now();
    await certs.replaceCertificateSigningRequestApproval({ name: csrName, body: csr });
    const written = await revisionOne('waiting');
    const pickedUpMs = Date.now() - approvedAt;
    console.log(`csr-pending: approval → Secret written in ${pickedUpMs} ms`);
    expect(written.metadata?.annotations?.[`${A}state`]).toBe('Ready');
    // Written from THAT CSR: the certificate kcm put on it, for the key persisted with it.
    const certPem = decoded(written, 'tls.crt');
    expect(certificateOf.get(csrName)).toBe(certPem);
    const leaf = certificatesFromPem(certPem)[0] as Uint8Array;
    expect(readCertificateSummary(leaf).subjectCommonName).toBe('pending-user');
    expect(keyMatchesCertificate(decoded(written, 'tls.key'), leaf)).toBe(true);
    expect(created.get('waiting')).toEqual([csrName]);
    const reasons = (await eventsFor(core, ns(), 'waiting')).map((e) => e.reason);
    expect(reasons).toContain('Renewed');
    expect(reasons).not.toContain('RenewalFailed');
    // The approval wait is measured from the CSR's creation, across the looks.
    const waitSum = await metricValue(metricsUrl, 'cert_rotator_csr_approval_wait_seconds_sum', {
      issuer: 'manual',
    });
    expect(waitSum).toBeGreaterThanOrEqual(
      (approvedAt - Date.parse(String(csr.metadata?.creationTimestamp))) / 1000 - 1,
    );
    await waitFor('the CSR to be deleted', async () => {
      const l = await certs.listCertificateSigningRequest({
        labelSelector: `${CsrLink.secretNamespace}=${ns()},${CsrLink.secretName}=waiting`,
      });
      return l.items.length === 0 || undefined;
    });
  });

  it('denied by a person after the hold: RenewalFailed naming the reason, one CSR, nothing written', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: emptyTlsSecret('refused', { [`${A}issuer`]: 'manual', [`${A}common-name`]: 'pending-refused' }),
    });
    const csrName = await waitFor('the CSR of refused', () => created.get('refused')?.[0], {
      timeoutMs: 30_000,
    });
    await waitFor('a look at the pending CSR', () => pendingLooks('refused') >= 1 || undefined, {
      timeoutMs: 30_000,
    });
    const csr = await certs.readCertificateSigningRequest({ name: csrName });
    csr.status = {
      ...(csr.status ?? {}),
      conditions: [{ type: 'Denied', status: 'True', reason: 'NotThisOne', message: 'denied by the test' }],
    };
    await certs.replaceCertificateSigningRequestApproval({ name: csrName, body: csr });
    const event = await waitFor(
      'the RenewalFailed event',
      async () => (await eventsFor(core, ns(), 'refused')).find((e) => e.reason === 'RenewalFailed'),
      { timeoutMs: 60_000 },
    );
    expect(event.message).toContain(
      `CSR ${csrName} for signer kubernetes.io/kube-apiserver-client was denied`,
    );
    expect(event.message).toContain('NotThisOne: denied by the test');
    const failed = await secret('refused');
    expect(failed.metadata?.annotations?.[`${A}state`]).toBe('Failed');
    expect(failed.metadata?.annotations?.[`${A}failures`]).toBe('1');
    expect(failed.metadata?.annotations?.[`${A}revision`]).toBeUndefined();
    expect(created.get('refused')).toEqual([csrName]);
  });

  it('approvalTimeout counts from the CSR creation, across looks: then RenewalFailed, CSR deleted, backoff', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: emptyTlsSecret('stale', { [`${A}issuer`]: 'nobody', [`${A}dns-names`]: 'stale.example.com' }),
    });
    const csrName = await waitFor('the CSR of stale', () => created.get('stale')?.[0], { timeoutMs: 30_000 });
    await waitFor('a look at the pending CSR', () => pendingLooks('stale') >= 1 || undefined, {
      timeoutMs: 20_000,
    });
    const meanwhile = await secret('stale');
    expect(meanwhile.metadata?.annotations?.[`${A}state`]).toBe('Issuing');
    expect(meanwhile.metadata?.annotations?.[`${A}failures`]).toBeUndefined();

    const event = await waitFor(
      'the timeout event',
      async () => (await eventsFor(core, ns(), 'stale')).find((e) => e.reason === 'RenewalFailed'),
      { timeoutMs: 60_000 },
    );
    expect(event.message).toContain(
      `CSR ${csrName} for signer example.com/nobody-signs still not approved after 20s (approvalTimeout); the CSR was deleted`,
    );
    expect(pendingLooks('stale')).toBeGreaterThanOrEqual(2);
    const failed = await secret('stale');
    expect(failed.metadata?.annotations?.[`${A}state`]).toBe('Failed');
    expect(failed.metadata?.annotations?.[`${A}failures`]).toBe('1');
    await waitFor('the CSR to be deleted', async () => {
      try {
        await certs.readCertificateSigningRequest({ name: csrName });
        return undefined;
      } catch {
        return true;
      }
    });
    expect(created.get('stale')).toEqual([csrName]);
    expect(
      await metricValue(metricsUrl, 'cert_rotator_csr_requests_total', {
        issuer: 'nobody',
        result: 'timeout',
      }),
    ).toBe(1);
  });
});
