/**
 * The sidecar for real: `cert-rotator sidecar` as a native sidecar next to an application in the
 * same image, sharing an emptyDir and the pod's process namespace. `--secret` mirrors the Secret
 * the chart's controller renews, with a Role limited to that Secret; the application is not
 * signalled when the pod starts and, after a renewal, serves the new serial in the same container.
 * `--csr-signer` asks cert-rotator's signer (running in the cluster) with the pod's own token.
 */
import { X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../testenv/net.ts';
import { describeOnNode, podLogs, useNode, useNodeNamespace } from '../testenv/node.ts';
import {
  CHART,
  helmOnNode,
  httpText,
  IMAGE_NODE,
  isReady,
  podsBySelector,
  productImage,
  RESTRICTED,
  secretReaderAccount,
  serialOf,
  servedSerial,
  sidecarContainer,
  tlsAppScript,
  waitForReadyPods,
} from '../testenv/product.ts';
import { decoded, makeLeaf, makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const A = 'cert-rotator.io/';
const RELEASE = 'crsc';
const CONTROLLER = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/name=cert-rotator`;
const SIGNER = 'cert-rotator.io/e2e-sidecar';
const DAY = 86_400_000;

/** A Deployment of one pod: the TLS app reading /certs + the sidecar with `sidecarArgs`. */
function appWithSidecar(
  name: string,
  image: string,
  serviceAccount: string,
  sidecarArgs: string[],
  hupAfterMs: number,
): k8s.V1Deployment {
  return {
    // The sidecar reloads the application: the controller must not roll it (docs/sidecar.md).
    metadata: { name, annotations: { [`${A}restart`]: 'false' } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          serviceAccountName: serviceAccount,
          shareProcessNamespace: true,
          terminationGracePeriodSeconds: 1,
          enableServiceLinks: false,
          volumes: [{ name: 'certs', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }],
          initContainers: [sidecarContainer(image, sidecarArgs)],
          containers: [
            {
              name: 'app',
              image,
              imagePullPolicy: 'Never',
              command: [
                IMAGE_NODE,
                '-e',
                tlsAppScript({ dir: '/certs', port: 8443, reload: { title: 'webapp', hupAfterMs } }),
              ],
              readinessProbe: { tcpSocket: { port: 8443 }, periodSeconds: 1 },
              securityContext: RESTRICTED,
              volumeMounts: [{ name: 'certs', mountPath: '/certs', readOnly: true }],
            },
          ],
        },
      },
    },
  };
}

interface Started {
  pod: k8s.V1Pod;
  ip: string;
  appContainerId: string;
}

function appStatus(pod: k8s.V1Pod): k8s.V1ContainerStatus | undefined {
  return pod.status?.containerStatuses?.find((c) => c.name === 'app');
}

describeOnNode('the sidecar on a node', () => {
  const node = useNode();
  const ns = useNodeNamespace(import.meta.url, node);
  let helm: Awaited<ReturnType<typeof helmOnNode>> | undefined;
  let ca: Pair;
  let image = '';
  const bindings: string[] = [];

  beforeAll(async () => {
    const { core, kc, info } = node();
    const img = await productImage();
    image = img.ref;
    helm = await helmOnNode(info);
    ca = await makeTestCA('e2e sidecar CA');
    await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
    const issuer = {
      name: 'internal',
      ca: { secret: { namespace: ns(), name: 'internal-ca' } },
      signer: { signerName: SIGNER, maxDuration: '24h' },
      approve: {
        serviceAccounts: {
          namespaces: [ns()],
          uris: ['spiffe://cluster.local/ns/{namespace}/sa/{serviceaccount}'],
          dnsNames: ['{podname}.{namespace}.pod'],
        },
      },
    };
    const r = await helm.run([
      'install',
      RELEASE,
      CHART,
      '--namespace',
      ns(),
      '--set',
      `image.repository=${img.repository}`,
      '--set',
      `image.tag=${img.tag}`,
      '--set',
      'image.pullPolicy=Never',
      '--set',
      'rbac.scope=namespaced',
      '--set',
      `watchNamespaces={${ns()}}`,
      '--set',
      'csr.requesterClusterRole.create=true',
      '--set-json',
      `config.issuers=${JSON.stringify([issuer])}`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    // A Role limited to the one Secret, for the --secret sidecars' ServiceAccount.
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await secretReaderAccount({ core, rbac }, ns(), 'web', ['web-tls']);
    await waitForReadyPods(core, ns(), CONTROLLER, 2, 'both controller pods Ready', 120_000);
  });

  afterAll(async () => {
    const rbac = node().kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    for (const name of bindings) await rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
    if (helm && ns()) await helm.run(['uninstall', RELEASE, '--namespace', ns(), '--wait=false']);
    await helm?.close();
  });

  /** Waits for the app's pod, Ready, with the app's handler installed; nothing signalled it. */
  async function startedUnsignalled(name: string): Promise<Started> {
    const { core } = node();
    const [pod] = await waitForReadyPods(core, ns(), `app=${name}`, 1, `${name} Ready`);
    if (!pod?.metadata?.name) throw new Error('no pod');
    const podName = pod.metadata.name;
    await waitFor(`${name}: the app's SIGHUP handler installed`, async () =>
      (await podLogs(core, ns(), podName, 'app')).includes('app: SIGHUP handler installed'),
    );
    const now = await core.readNamespacedPod({ namespace: ns(), name: podName });
    expect(appStatus(now)?.restartCount).toBe(0);
    expect(await podLogs(core, ns(), podName, 'app')).not.toContain('SIGHUP, serving');
    const ip = now.status?.podIP ?? '';
    const metrics = (await httpText(`http://${ip}:9403/metrics`)).body;
    // No reload attempt at all: not even a failed one for an application that was not there yet.
    expect(metrics).not.toMatch(/^cert_rotator_sidecar_reloads_total\{/m);
    expect(await podLogs(core, ns(), podName, 'cert-rotator')).not.toContain('shareProcessNamespace');
    return { pod: now, ip, appContainerId: appStatus(now)?.containerID ?? '' };
  }

  it('--secret: not signalled at start; after a renewal the same app container serves the new serial', async () => {
    const { core, kc } = node();
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const leaf = await makeLeaf({ dnsNames: ['web.e2e.test'], fromMs: -60_000, toMs: 30 * DAY, ca });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('web-tls', leaf, { [`${A}enabled`]: 'true' }),
    });
    // One application reloads at once, the other installs its handler 5 s after start: a
    // signal (or a retried one) at pod start would kill it (SIGHUP's default action).
    await apps.createNamespacedDeployment({
      namespace: ns(),
      body: appWithSidecar('prompt', image, 'web', ['--secret', 'web-tls'], 0),
    });
    await apps.createNamespacedDeployment({
      namespace: ns(),
      body: appWithSidecar('late', image, 'web', ['--secret', 'web-tls'], 5_000),
    });
    const started = [await startedUnsignalled('prompt'), await startedUnsignalled('late')];
    const oldSerial = serialOf(leaf.certPem);
    for (const s of started) expect(await servedSerial(s.ip, 8443)).toBe(oldSerial);

    const t0 = Date.now();
    await core.patchNamespacedSecret(
      {
        namespace: ns(),
        name: 'web-tls',
        body: { metadata: { annotations: { [`${A}renew-requested-at`]: new Date().toISOString() } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const renewed = await waitFor('web-tls renewed', async () => {
      const s = await core.readNamespacedSecret({ namespace: ns(), name: 'web-tls' });
      return serialOf(decoded(s, 'tls.crt')) !== oldSerial ? s : undefined;
    });
    const newSerial = serialOf(decoded(renewed, 'tls.crt'));
    for (const s of started) {
      await waitFor(
        `${s.pod.metadata?.name} serving the new serial`,
        async () => (await servedSerial(s.ip, 8443)) === newSerial,
        { timeoutMs: 60_000, intervalMs: 100 },
      );
    }
    process.stdout.write(
      `[e2e] sidecar: renewal requested → both apps serving the new serial in ${Date.now() - t0} ms\n`,
    );
    for (const s of started) {
      const name = s.pod.metadata?.name ?? '';
      const now = await core.readNamespacedPod({ namespace: ns(), name });
      expect(appStatus(now)?.restartCount).toBe(0);
      expect(appStatus(now)?.containerID).toBe(s.appContainerId);
      expect(await podLogs(core, ns(), name, 'app')).toContain(`app: SIGHUP, serving serial ${newSerial}`);
      const metrics = (await httpText(`http://${s.ip}:9403/metrics`)).body;
      expect(metrics).toMatch(/^cert_rotator_sidecar_reloads_total\{method="signal",result="success"\} 1$/m);
    }
    // The Deployments were not rolled: the same pods, one each.
    for (const name of ['prompt', 'late']) {
      const pods = await podsBySelector(core, ns(), `app=${name}`);
      expect(pods.map((p) => p.metadata?.name)).toEqual(
        started.filter((s) => s.pod.metadata?.labels?.app === name).map((s) => s.pod.metadata?.name),
      );
    }
  });

  it('--csr-signer: the pod identity from cert-rotator signer in the cluster, with the pod token', async () => {
    const { core, kc } = node();
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await core.createNamespacedServiceAccount({ namespace: ns(), body: { metadata: { name: 'ident' } } });
    const binding = `${ns()}-ident-csr`;
    bindings.push(binding);
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: binding },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: `${RELEASE}-cert-rotator-csr-requester`,
        },
        subjects: [{ kind: 'ServiceAccount', name: 'ident', namespace: ns() }],
      },
    });
    await apps.createNamespacedDeployment({
      namespace: ns(),
      body: appWithSidecar(
        'ident',
        image,
        'ident',
        ['--csr-signer', SIGNER, '--dns-names', '{podname}.{namespace}.pod', '--duration', '10m'],
        0,
      ),
    });
    const [pod] = await waitForReadyPods(core, ns(), 'app=ident', 1, 'ident Ready');
    const podName = pod?.metadata?.name ?? '';
    const ip = pod?.status?.podIP ?? '';
    expect(isReady(pod as k8s.V1Pod)).toBe(true);
    const served = await waitFor('a served certificate', async () => servedSerial(ip, 8443));
    // What the pod serves is the certificate the CSR got, signed by the chart's CA issuer.
    const csrs = await kc.makeApiClient(k8s.CertificatesV1Api).listCertificateSigningRequest();
    const ours = csrs.items.filter(
      (c) => c.spec.signerName === SIGNER && c.spec.username === `system:serviceaccount:${ns()}:ident`,
    );
    expect(ours).toHaveLength(1);
    const csr = ours[0];
    expect(csr?.spec.extra?.['authentication.kubernetes.io/pod-name']).toEqual([podName]);
    expect(csr?.status?.conditions?.find((c) => c.type === 'Approved')?.reason).toBe(
      'CertRotatorPolicyApproved',
    );
    const cert = new X509Certificate(Buffer.from(csr?.status?.certificate ?? '', 'base64').toString('utf8'));
    expect(cert.serialNumber.toUpperCase()).toBe(served);
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(cert.subjectAltName).toContain(`URI:spiffe://cluster.local/ns/${ns()}/sa/ident`);
    expect(cert.subjectAltName).toContain(`DNS:${podName}.${ns()}.pod`);
    expect(appStatus(await core.readNamespacedPod({ namespace: ns(), name: podName }))?.restartCount).toBe(0);
  });
});
