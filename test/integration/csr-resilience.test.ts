/**
 * A kubernetesCSR renewal waiting on its CSR while kube-apiserver restarts (its own control
 * plane): the wait survives the outage, and the Secret is written from that same CSR once a
 * person approves it and kube-controller-manager signs it.
 */
import * as k8s from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { CsrLink } from '../../src/names.ts';
import { certificatesFromPem, readCertificateSummary } from '../../src/pki/index.ts';
import type { ControlPlane } from '../testenv/control-plane.ts';
import { killAllControllers, startControllerProcess, writeConfig } from '../testenv/controller-process.ts';
import { startOwnControlPlane } from '../testenv/env.ts';
import { waitFor } from '../testenv/net.ts';
import { decoded } from '../testenv/tls-fixtures.ts';

const A = 'cert-rotator.io/';
let plane: ControlPlane | undefined;

afterAll(async () => {
  await killAllControllers();
  await plane?.stop();
});

describe('kubernetesCSR while the API server restarts', () => {
  it('keeps waiting on the same CSR across the outage and writes the Secret from it', async () => {
    const own = await startOwnControlPlane('cert-rotator-csr-restart-');
    plane = own.plane;
    const kc = own.kubeConfig;
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const certs = kc.makeApiClient(k8s.CertificatesV1Api);
    await core.createNamespace({ body: { metadata: { name: 'apps' } } });
    const configPath = await writeConfig(own.dir, {
      namespaces: ['apps'],
      leaderElection: { enabled: false },
      issuers: [
        {
          name: 'kcm-manual',
          kubernetesCSR: { signerName: 'kubernetes.io/kube-apiserver-client', approvalTimeout: '5m' },
          allowedCommonNames: ['restart-user'],
        },
      ],
    });
    const controller = startControllerProcess({ configPath, kubeconfigPath: plane.kubeconfigPath });
    await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
    await core.createNamespacedSecret({
      namespace: 'apps',
      body: {
        metadata: {
          name: 'client',
          annotations: { [`${A}enabled`]: 'true', [`${A}common-name`]: 'restart-user' },
        },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': '', 'tls.key': '' },
      },
    });
    const list = () =>
      certs
        .listCertificateSigningRequest({ labelSelector: `${CsrLink.secretName}=client` })
        .then((l) => l.items);
    const [csr] = await waitFor('the CSR', async () => {
      const items = await list();
      return items.length > 0 ? items : undefined;
    });
    const name = csr?.metadata?.name ?? '';

    await plane.restartApiServer();

    const fresh = await certs.readCertificateSigningRequest({ name });
    fresh.status = {
      ...(fresh.status ?? {}),
      conditions: [
        { type: 'Approved', status: 'True', reason: 'TestApproved', message: 'after the restart' },
      ],
    };
    await certs.replaceCertificateSigningRequestApproval({ name, body: fresh });
    const secret = await waitFor(
      'the Secret to be written',
      async () => {
        const s = await core.readNamespacedSecret({ namespace: 'apps', name: 'client' });
        return s.metadata?.annotations?.[`${A}revision`] === '1' ? s : undefined;
      },
      { timeoutMs: 90_000 },
    );
    const leaf = certificatesFromPem(decoded(secret, 'tls.crt'))[0] as Uint8Array;
    expect(readCertificateSummary(leaf).subjectCommonName).toBe('restart-user');
    // No RenewalFailed: the outage did not end the attempt, and it was that CSR, the only one.
    const events = await core.listNamespacedEvent({
      namespace: 'apps',
      fieldSelector: 'involvedObject.name=client',
    });
    expect(events.items.filter((e) => e.reason === 'RenewalFailed')).toEqual([]);
    expect(
      controller.logs.filter((l) => l.msg === 'CertificateSigningRequest created').map((l) => l.csr),
    ).toEqual([name]);
  });
});
