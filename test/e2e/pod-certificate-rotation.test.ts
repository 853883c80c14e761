/**
 * Rotation of a pod certificate on the real node: from status.beginRefreshAt the kubelet asks
 * again, cert-rotator issues a new certificate for the same identity, and the file in the running
 * pod changes without a restart. The API's rules (beginRefreshAt at least 10 minutes after
 * notBefore, notBefore at most 5 minutes in the past) make this take 5 to 12 minutes, so it runs
 * only in the long suite: `npm run test:long` (CERT_ROTATOR_LONG=1), never in `npm test`.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { certificatesFromPem, readCertificateSummary } from '../../src/pki/index.ts';
import { killAllControllers, startControllerProcess, writeConfig } from '../testenv/controller-process.ts';
import { waitFor } from '../testenv/net.ts';
import { describeOnNode, testboxPod, useNode, useNodeNamespace, waitForPodReady } from '../testenv/node.ts';
import { makeTestCA, tlsSecret } from '../testenv/tls-fixtures.ts';

const LONG = process.env.CERT_ROTATOR_LONG === '1';
const describeLong = LONG ? describeOnNode : describe.skip;

describeLong('a pod certificate rotates in the running pod (long suite)', () => {
  const node = useNode();
  const ns = useNodeNamespace(import.meta.url, node);
  let signer = '';

  beforeAll(async () => {
    const { core, info } = node();
    signer = `cert-rotator.io/rotation-${ns()}`;
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('pods-ca', await makeTestCA('rotation CA')),
    });
    const configPath = await writeConfig(
      info.runDir,
      {
        namespaces: [ns()],
        leaderElection: { namespace: ns() },
        issuers: [
          {
            name: 'pods',
            ca: { secret: { namespace: ns(), name: 'pods-ca' } },
            // The shortest the API allows, refreshed as early as it allows.
            podCertificates: {
              signerName: signer,
              maxDuration: '1h',
              refreshAt: '10%',
              allow: { namespaces: [ns()] },
              uris: ['spiffe://cluster.local/ns/{namespace}/sa/{serviceaccount}'],
              dnsNames: ['{podname}.{namespace}.pod.cluster.local'],
            },
          },
        ],
      },
      `rotation-${ns()}.yaml`,
    );
    startControllerProcess({ configPath, kubeconfigPath: info.kubeconfigPath, env: { POD_NAMESPACE: ns() } });
    return async () => await killAllControllers();
  }, 120_000);

  it(
    'the kubelet asks again from beginRefreshAt and the file changes to a new certificate for the same identity, without a restart',
    async () => {
      const { core, info, kc } = node();
      const pod = testboxPod(info, 'rotating', ['sleep']);
      const spec = pod.spec as k8s.V1PodSpec;
      spec.volumes = [
        {
          name: 'identity',
          projected: {
            sources: [
              {
                podCertificate: {
                  signerName: signer,
                  keyType: 'ECDSAP256',
                  maxExpirationSeconds: 3600,
                  credentialBundlePath: 'bundle.pem',
                },
              } as k8s.V1VolumeProjection,
            ],
          },
        },
      ];
      (spec.containers[0] as k8s.V1Container).volumeMounts = [
        { name: 'identity', mountPath: '/var/run/identity' },
      ];
      await core.createNamespacedPod({ namespace: ns(), body: pod });
      const ready = await waitForPodReady(core, ns(), 'rotating', 90_000);
      const file = join(
        info.runDir,
        'node',
        'kubelet',
        'pods',
        ready.metadata?.uid ?? '',
        'volumes',
        'kubernetes.io~projected',
        'identity',
        'bundle.pem',
      );
      const leafOf = (pem: string) =>
        new X509Certificate(Buffer.from(certificatesFromPem(pem)[0] as Uint8Array));
      const first = leafOf(await readFile(file, 'utf8'));
      const objects = kc.makeApiClient(k8s.CustomObjectsApi);
      const pcrs = async () =>
        (
          (await objects.listNamespacedCustomObject({
            group: 'certificates.k8s.io',
            version: 'v1beta1',
            namespace: ns(),
            plural: 'podcertificaterequests',
          })) as { items: Array<{ status?: { beginRefreshAt?: string; notBefore?: string } }> }
        ).items;
      const [issued] = await pcrs();
      const refreshAt = Date.parse(issued?.status?.beginRefreshAt ?? '');
      const notBefore = Date.parse(issued?.status?.notBefore ?? '');
      expect(refreshAt - notBefore).toBe(10 * 60_000); // 10% of 1h is under the API's 10 minutes
      const t0 = Date.now();
      const second = await waitFor(
        'the certificate in the pod to change',
        async () => {
          const leaf = leafOf(await readFile(file, 'utf8'));
          return leaf.serialNumber !== first.serialNumber ? leaf : undefined;
        },
        { timeoutMs: 15 * 60_000, intervalMs: 2_000 },
      );
      const changedAt = Date.now();
      process.stdout.write(
        `[figures] rotation: first certificate's beginRefreshAt was ${Math.round((refreshAt - t0) / 1000)} s after it was read; the file changed ${Math.round((changedAt - refreshAt) / 1000)} s after beginRefreshAt (${Math.round((changedAt - t0) / 1000)} s of waiting)\n`,
      );
      expect(changedAt).toBeGreaterThanOrEqual(refreshAt);
      const a = readCertificateSummary(new Uint8Array(first.raw));
      const b = readCertificateSummary(new Uint8Array(second.raw));
      expect(b.uris).toEqual(a.uris);
      expect(b.dnsNames).toEqual(a.dnsNames);
      expect(second.issuer).toBe(first.issuer);
      const now = await core.readNamespacedPod({ namespace: ns(), name: 'rotating' });
      expect(now.status?.containerStatuses?.[0]?.restartCount).toBe(0);
      expect(now.status?.containerStatuses?.[0]?.containerID).toBe(
        ready.status?.containerStatuses?.[0]?.containerID,
      );
      expect((await pcrs()).length).toBeGreaterThanOrEqual(2);
    },
    20 * 60_000,
  );
});
