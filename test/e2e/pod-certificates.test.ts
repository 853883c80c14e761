/**
 * Pod Certificates on the real node: the kubelet generates the key, creates the
 * PodCertificateRequest, cert-rotator (two replicas, leader-elected, as the chart runs it) signs
 * or denies it, and the kubelet writes the credentials into the pod — or leaves the pod waiting.
 * The files are read where the kubelet put them, in its pod directory on this host (the testbox
 * image has no `cat`): that directory is what the container mounts.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { beforeAll, expect, it } from 'vitest';
import { PodCertificateReason } from '../../src/names.ts';
import { certificatesFromPem, readCertificateSummary, splitPem } from '../../src/pki/index.ts';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { waitFor } from '../testenv/net.ts';
import {
  describeOnNode,
  type NodeContext,
  testboxPod,
  useNode,
  useNodeNamespace,
  waitForPodReady,
} from '../testenv/node.ts';
import { makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const ROLE = 'cert-rotator.io/role';

interface PodCertificateVolume {
  signerName: string;
  keyType: string;
  credentialBundlePath?: string;
  keyPath?: string;
  certificateChainPath?: string;
  userAnnotations?: Record<string, string>;
}

function certPod(
  info: NodeContext['info'],
  name: string,
  source: PodCertificateVolume,
  extra: k8s.V1VolumeProjection[] = [],
): k8s.V1Pod {
  const pod = testboxPod(info, name, ['sleep']);
  const spec = pod.spec as k8s.V1PodSpec;
  // client-node's model of a projected source predates podCertificate: the API takes the JSON.
  spec.volumes = [
    {
      name: 'identity',
      projected: { sources: [{ podCertificate: source } as k8s.V1VolumeProjection, ...extra] },
    },
  ];
  const main = spec.containers[0] as k8s.V1Container;
  main.volumeMounts = [{ name: 'identity', mountPath: '/var/run/identity', readOnly: true }];
  return pod;
}

describeOnNode('Pod Certificates on the node', () => {
  const node = useNode();
  const ns = useNodeNamespace(import.meta.url, node);
  const replicas: ControllerProcess[] = [];
  let ca: Pair;
  let signer = '';
  let otherNs = '';

  /** A file of a pod's projected volume, as the kubelet wrote it. */
  const volumeFile = async (pod: k8s.V1Pod, file: string) =>
    await readFile(
      join(
        node().info.runDir,
        'node',
        'kubelet',
        'pods',
        pod.metadata?.uid ?? '',
        'volumes',
        'kubernetes.io~projected',
        'identity',
        file,
      ),
      'utf8',
    );

  const pcrsOf = async (namespace: string, podName: string) => {
    const { kc } = node();
    const list = (await kc.makeApiClient(k8s.CustomObjectsApi).listNamespacedCustomObject({
      group: 'certificates.k8s.io',
      version: 'v1beta1',
      namespace,
      plural: 'podcertificaterequests',
    })) as {
      items: Array<{
        metadata: { name: string };
        spec: { podName: string };
        status?: { conditions?: Array<{ type: string; reason: string; message: string }> };
      }>;
    };
    return list.items.filter((i) => i.spec.podName === podName);
  };

  const deniedWith = async (namespace: string, podName: string, reason: string) => {
    const pcr = await waitFor(`the PCR of ${namespace}/${podName} to be denied`, async () => {
      const [p] = await pcrsOf(namespace, podName);
      return p?.status?.conditions?.some((c) => c.type === 'Denied') ? p : undefined;
    });
    expect(pcr.status?.conditions?.[0]?.reason).toBe(reason);
    const pod = await node().core.readNamespacedPod({ namespace, name: podName });
    expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).not.toBe('True');
    return pcr.status?.conditions?.[0]?.message ?? '';
  };

  beforeAll(async () => {
    const { core, info } = node();
    signer = `cert-rotator.io/e2e-${ns()}`;
    ca = await makeTestCA('e2e pod certificates CA');
    await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('pods-ca', ca) });
    otherNs = `${ns()}-other`;
    await core.createNamespace({ body: { metadata: { name: otherNs } } });
    await waitFor(`ServiceAccount ${otherNs}/default`, async () => {
      await core.readNamespacedServiceAccount({ namespace: otherNs, name: 'default' });
      return true;
    });
    const configPath = await writeConfig(
      info.runDir,
      {
        namespaces: [ns()],
        leaderElection: { namespace: ns(), leaseDuration: '4s', renewDeadline: '3s', retryPeriod: '500ms' },
        issuers: [
          {
            name: 'pods',
            // checkInterval: the trust bundle is written at the first look after the lease is won.
            ca: { secret: { namespace: ns(), name: 'pods-ca' }, rollover: { checkInterval: '1s' } },
            podCertificates: {
              signerName: signer,
              maxDuration: '2h',
              refreshAt: '70%',
              allow: { namespaces: [ns()] },
              uris: ['spiffe://cluster.local/ns/{namespace}/sa/{serviceaccount}'],
              dnsNames: ['{podname}.{namespace}.pod.cluster.local', `{annotation:${ROLE}}.{namespace}.svc`],
              keyTypes: ['ECDSAP256', 'ED25519'],
            },
          },
        ],
        // The trust set for the pods' peers, as a ClusterTrustBundle linked to the pods' signer.
        trustBundles: [{ issuer: 'pods', clusterTrustBundle: { signerName: signer } }],
      },
      `pod-certificates-${ns()}.yaml`,
    );
    for (let i = 0; i < 2; i++)
      replicas.push(
        startControllerProcess({
          configPath,
          kubeconfigPath: info.kubeconfigPath,
          env: { POD_NAMESPACE: ns() },
        }),
      );
    await Promise.all(
      replicas.map((r) => r.waitForLog('the pod signer', (l) => l.msg === 'pod certificate signer started')),
    );
    return async () => {
      await killAllControllers();
      await core.deleteNamespace({ name: otherNs }).catch(() => undefined);
      // Cluster-scoped: not removed with the namespace.
      await k8s.KubernetesObjectApi.makeApiClient(node().kc)
        .delete({
          apiVersion: 'certificates.k8s.io/v1beta1',
          kind: 'ClusterTrustBundle',
          metadata: { name: `${signer.replace('/', ':')}:pods` },
        })
        .catch(() => undefined);
    };
  }, 120_000);

  it('a pod with a podCertificate volume starts; its bundle holds the kubelet key and a chain to the CA for exactly the templates', async () => {
    const { core, info } = node();
    const t0 = Date.now();
    await core.createNamespacedPod({ namespace: ns(), body: testboxPod(info, 'plain', ['sleep']) });
    await waitForPodReady(core, ns(), 'plain');
    const plainMs = Date.now() - t0;
    const t1 = Date.now();
    await core.createNamespacedPod({
      namespace: ns(),
      body: certPod(info, 'web-0', {
        signerName: signer,
        keyType: 'ECDSAP256',
        credentialBundlePath: 'bundle.pem',
      }),
    });
    const pod = await waitForPodReady(core, ns(), 'web-0', 90_000);
    process.stdout.write(
      `[figures] pod created → Ready: ${plainMs} ms without a podCertificate volume, ${Date.now() - t1} ms with one\n`,
    );
    const bundle = await volumeFile(pod, 'bundle.pem');
    const blocks = splitPem(bundle);
    expect(blocks.map((b) => b.label)).toEqual(['PRIVATE KEY', 'CERTIFICATE', 'CERTIFICATE']);
    const leaf = new X509Certificate(Buffer.from(certificatesFromPem(bundle)[0] as Uint8Array));
    const caCert = new X509Certificate(ca.certPem);
    expect(leaf.verify(caCert.publicKey)).toBe(true);
    expect(leaf.checkPrivateKey(createPrivateKey(bundle))).toBe(true);
    const s = readCertificateSummary(certificatesFromPem(bundle)[0] as Uint8Array);
    expect(s.uris).toEqual([`spiffe://cluster.local/ns/${ns()}/sa/default`]);
    expect(s.dnsNames).toEqual([`web-0.${ns()}.pod.cluster.local`]);
    const [pcr] = await pcrsOf(ns(), 'web-0');
    expect(pcr?.status?.conditions?.[0]).toMatchObject({
      type: 'Issued',
      reason: PodCertificateReason.issued,
    });
  });

  it('separate key and chain files (Ed25519), and a known annotation in its template', async () => {
    const { core, info } = node();
    await core.createNamespacedPod({
      namespace: ns(),
      body: certPod(info, 'web-1', {
        signerName: signer,
        keyType: 'ED25519',
        keyPath: 'tls.key',
        certificateChainPath: 'tls.crt',
        userAnnotations: { [ROLE]: 'frontend' },
      }),
    });
    const pod = await waitForPodReady(core, ns(), 'web-1', 90_000);
    const key = createPrivateKey(await volumeFile(pod, 'tls.key'));
    expect(key.asymmetricKeyType).toBe('ed25519');
    const chain = await volumeFile(pod, 'tls.crt');
    const leaf = new X509Certificate(Buffer.from(certificatesFromPem(chain)[0] as Uint8Array));
    expect(leaf.checkPrivateKey(key)).toBe(true);
    expect(readCertificateSummary(certificatesFromPem(chain)[0] as Uint8Array).dnsNames).toEqual([
      `web-1.${ns()}.pod.cluster.local`,
      `frontend.${ns()}.svc`,
    ]);
  });

  it('the trust set next to the chain: a clusterTrustBundle source (by signer and label) holds the CA cert-rotator published', async () => {
    const { core, info } = node();
    const trust = {
      clusterTrustBundle: {
        signerName: signer,
        labelSelector: { matchLabels: { 'cert-rotator.io/trust-bundle-issuer': 'pods' } },
        path: 'ca.crt',
      },
    } as k8s.V1VolumeProjection;
    // Published by the leader's first look; a pod created before would wait out the kubelet's backoff.
    const objects = k8s.KubernetesObjectApi.makeApiClient(node().kc);
    await waitFor('the ClusterTrustBundle', () =>
      objects
        .read({
          apiVersion: 'certificates.k8s.io/v1beta1',
          kind: 'ClusterTrustBundle',
          metadata: { name: `${signer.replace('/', ':')}:pods` },
        })
        .catch(() => undefined),
    );
    await core.createNamespacedPod({
      namespace: ns(),
      body: certPod(
        info,
        'trusting',
        { signerName: signer, keyType: 'ECDSAP256', credentialBundlePath: 'b.pem' },
        [trust],
      ),
    });
    const pod = await waitForPodReady(core, ns(), 'trusting', 90_000);
    expect(await volumeFile(pod, 'ca.crt')).toBe(new X509Certificate(ca.certPem).toString());
    // The chain in the same volume verifies against it.
    const leaf = new X509Certificate(
      Buffer.from(certificatesFromPem(await volumeFile(pod, 'b.pem'))[0] as Uint8Array),
    );
    expect(leaf.verify(new X509Certificate(await volumeFile(pod, 'ca.crt')).publicKey)).toBe(true);
  });

  it('denials leave the pod waiting, with the rule on its PCR', async () => {
    const { core, info } = node();
    await core.createNamespacedPod({
      namespace: otherNs,
      body: certPod(info, 'elsewhere', {
        signerName: signer,
        keyType: 'ECDSAP256',
        credentialBundlePath: 'b.pem',
      }),
    });
    await core.createNamespacedPod({
      namespace: ns(),
      body: certPod(info, 'p384', {
        signerName: signer,
        keyType: 'ECDSAP384',
        credentialBundlePath: 'b.pem',
      }),
    });
    await core.createNamespacedPod({
      namespace: ns(),
      body: certPod(info, 'tenant', {
        signerName: signer,
        keyType: 'ECDSAP256',
        credentialBundlePath: 'b.pem',
        userAnnotations: { 'example.com/tenant': 'blue' },
      }),
    });
    expect(await deniedWith(otherNs, 'elsewhere', PodCertificateReason.namespaceNotAllowed)).toContain(
      `namespace "${otherNs}" is not allowed`,
    );
    expect(await deniedWith(ns(), 'p384', PodCertificateReason.unsupportedKeyType)).toContain(
      'supported key types: ECDSAP256, ED25519',
    );
    expect(await deniedWith(ns(), 'tenant', PodCertificateReason.invalidUserAnnotations)).toContain(
      '"example.com/tenant" is not understood',
    );
  });

  it('20 pods at once with two replicas: every pod starts and the signatures across both equal the PCRs', async () => {
    const { core, info } = node();
    const t0 = Date.now();
    const names = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
    await Promise.all(
      names.map((name) =>
        core.createNamespacedPod({
          namespace: ns(),
          body: certPod(info, name, {
            signerName: signer,
            keyType: 'ECDSAP256',
            credentialBundlePath: 'b.pem',
          }),
        }),
      ),
    );
    await Promise.all(names.map((name) => waitForPodReady(core, ns(), name, 150_000)));
    process.stdout.write(
      `[figures] 20 pods with a podCertificate volume: all Ready in ${Date.now() - t0} ms\n`,
    );
    const pcrs = (await Promise.all(names.map((n) => pcrsOf(ns(), n)))).flat();
    const issued = (pod: string) =>
      replicas.flatMap((r) =>
        r.logs.filter(
          (l) =>
            l.outcome === 'issued' && l.pod === pod && String(l.podCertificateRequest).startsWith(`${ns()}/`),
        ),
      );
    const signed = names.flatMap(issued);
    expect(signed).toHaveLength(pcrs.length);
    expect(pcrs.length).toBeGreaterThanOrEqual(20);
  });
});
