/**
 * The chart as users install it, on the node: `helm install` with the image built from the
 * Dockerfile and a `ca` issuer; both controller pods come up through the chart's own probes and
 * securityContext, one of them leads, and a renewal rolls an HTTPS Deployment whose new pods
 * serve the new certificate.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../testenv/net.ts';
import { describeOnNode, execInPod, useNode, useNodeNamespace } from '../testenv/node.ts';
import {
  CHART,
  helmOnNode,
  httpText,
  IMAGE_NODE,
  isReady,
  podsBySelector,
  productImage,
  serialOf,
  servedSerial,
  tlsAppScript,
  waitForReadyPods,
} from '../testenv/product.ts';
import { decoded, makeLeaf, makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const A = 'cert-rotator.io/';
const CONTROLLER = 'app.kubernetes.io/instance=cr,app.kubernetes.io/name=cert-rotator';
const DAY = 86_400_000;

describeOnNode('the chart on a node', () => {
  const node = useNode();
  const ns = useNodeNamespace(import.meta.url, node);
  let helm: Awaited<ReturnType<typeof helmOnNode>> | undefined;
  let ca: Pair;
  let controllers: k8s.V1Pod[] = [];

  beforeAll(async () => {
    const { core, info } = node();
    const image = await productImage();
    helm = await helmOnNode(info);
    ca = await makeTestCA('e2e chart CA');
    await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
    const t0 = Date.now();
    const r = await helm.run([
      'install',
      'cr',
      CHART,
      '--namespace',
      ns(),
      '--set',
      `image.repository=${image.repository}`,
      '--set',
      `image.tag=${image.tag}`,
      '--set',
      'image.pullPolicy=Never',
      '--set',
      'rbac.scope=namespaced',
      '--set',
      `watchNamespaces={${ns()}}`,
      '--set-json',
      `config.issuers=[{"name":"internal","ca":{"secret":{"namespace":"${ns()}","name":"internal-ca"}}}]`,
      '--set-json',
      'config.rollout={"debounce":"1s"}',
    ]);
    expect(r.code, r.stderr).toBe(0);
    controllers = await waitForReadyPods(core, ns(), CONTROLLER, 2, 'both controller pods Ready', 120_000);
    process.stdout.write(`[e2e] helm install → both controller pods Ready in ${Date.now() - t0} ms\n`);
  });

  afterAll(async () => {
    if (helm && ns()) await helm.run(['uninstall', 'cr', '--namespace', ns(), '--wait=false']);
    await helm?.close();
  });

  it('runs two controller pods, Ready through the chart probes, as 65532 with a read-only root', async () => {
    const { kc } = node();
    expect(controllers).toHaveLength(2);
    for (const pod of controllers) {
      expect(isReady(pod)).toBe(true);
      const c = pod.spec?.containers.find((x) => x.name === 'controller');
      expect(c?.readinessProbe?.httpGet?.path).toBe('/readyz');
      expect(c?.livenessProbe?.httpGet?.path).toBe('/healthz');
      expect(c?.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        runAsUser: 65532,
        capabilities: { drop: ['ALL'] },
      });
      expect(pod.status?.containerStatuses?.[0]?.restartCount).toBe(0);
      // What the process really is inside the container (the image has node, no shell).
      const whoami = await execInPod(kc, ns(), pod.metadata?.name ?? '', 'controller', [
        IMAGE_NODE,
        '-e',
        "let w; try { require('node:fs').writeFileSync('/app/x', 'x'); w = 'writable'; } catch (e) { w = e.code; } console.log(process.getuid(), process.getgid(), w)",
      ]);
      expect(whoami).toMatchObject({ stdout: '65532 65532 EROFS\n', exitCode: 0 });
    }
  });

  it('has exactly one leader: the Lease names one of the two pods', async () => {
    const { kc } = node();
    const coordination = kc.makeApiClient(k8s.CoordinationV1Api);
    const lease = await waitFor('the Lease to be held', async () => {
      const l = await coordination.readNamespacedLease({ namespace: ns(), name: 'cert-rotator' });
      return l.spec?.holderIdentity ? l : undefined;
    });
    const names = controllers.map((p) => p.metadata?.name ?? '');
    const holders = names.filter((n) => lease.spec?.holderIdentity?.startsWith(`${n}_`));
    expect(holders).toHaveLength(1);
    const leases = await coordination.listNamespacedLease({ namespace: ns() });
    expect(leases.items.map((l) => l.metadata?.name)).toEqual(['cert-rotator']);
  });

  it('serves /metrics on each pod IP, listing the managed Secret', async () => {
    const { core } = node();
    const leaf = await makeLeaf({ dnsNames: ['listed.e2e.test'], fromMs: -60_000, toMs: 30 * DAY, ca });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('listed', leaf, { [`${A}enabled`]: 'true' }),
    });
    for (const pod of controllers) {
      const line = await waitFor(`the Secret in /metrics of ${pod.metadata?.name}`, async () => {
        const { status, body } = await httpText(`http://${pod.status?.podIP}:9402/metrics`);
        if (status !== 200) throw new Error(`status ${status}`);
        return body
          .split('\n')
          .find(
            (l) =>
              l.startsWith('cert_rotator_certificate_not_after_timestamp_seconds{') &&
              l.includes(`namespace="${ns()}"`) &&
              l.includes('secret="listed"') &&
              l.includes('managed="true"'),
          );
      });
      const notAfter = Number(line.split(' ').pop());
      expect(notAfter).toBe(Math.floor(new X509Certificate(leaf.certPem).validToDate.getTime() / 1000));
    }
  });

  it('rolls a 2-replica HTTPS Deployment on renewal; each new pod serves the new serial', async () => {
    const { core, kc } = node();
    const image = await productImage();
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const leaf = await makeLeaf({ dnsNames: ['web.e2e.test'], fromMs: -60_000, toMs: 30 * DAY, ca });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('web-tls', leaf, { [`${A}enabled`]: 'true' }),
    });
    await apps.createNamespacedDeployment({
      namespace: ns(),
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: {
              terminationGracePeriodSeconds: 1,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              containers: [
                {
                  name: 'web',
                  image: image.ref,
                  imagePullPolicy: 'Never',
                  command: [IMAGE_NODE, '-e', tlsAppScript({ dir: '/tls', port: 8443 })],
                  ports: [{ containerPort: 8443 }],
                  readinessProbe: { tcpSocket: { port: 8443 }, periodSeconds: 1 },
                  securityContext: {
                    runAsNonRoot: true,
                    runAsUser: 65532,
                    allowPrivilegeEscalation: false,
                    readOnlyRootFilesystem: true,
                    capabilities: { drop: ['ALL'] },
                  },
                  volumeMounts: [{ name: 'tls', mountPath: '/tls', readOnly: true }],
                },
              ],
              volumes: [{ name: 'tls', secret: { secretName: 'web-tls' } }],
            },
          },
        },
      },
    });
    const before = await waitForReadyPods(core, ns(), 'app=web', 2, 'both web pods Ready');
    const oldSerial = serialOf(leaf.certPem);
    for (const pod of before) expect(await servedSerial(pod.status?.podIP ?? '', 8443)).toBe(oldSerial);

    // Ask for a renewal, as `cert-rotator renew` does.
    const t0 = Date.now();
    await core.patchNamespacedSecret(
      {
        namespace: ns(),
        name: 'web-tls',
        body: { metadata: { annotations: { [`${A}renew-requested-at`]: new Date().toISOString() } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const renewed = await waitFor('web-tls to hold a new certificate', async () => {
      const s = await core.readNamespacedSecret({ namespace: ns(), name: 'web-tls' });
      return serialOf(decoded(s, 'tls.crt')) !== oldSerial ? s : undefined;
    });
    const newSerial = serialOf(decoded(renewed, 'tls.crt'));
    const cert = new X509Certificate(decoded(renewed, 'tls.crt'));
    expect(cert.checkPrivateKey(createPrivateKey(decoded(renewed, 'tls.key')))).toBe(true);
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);

    const oldNames = new Set(before.map((p) => p.metadata?.name));
    const after = await waitFor(
      'two new web pods serving the new serial, the old ones gone',
      async () => {
        const pods = await podsBySelector(core, ns(), 'app=web');
        if (pods.length !== 2 || !pods.every(isReady)) throw new Error(`${pods.length} pods`);
        if (pods.some((p) => oldNames.has(p.metadata?.name))) throw new Error('an old pod is still there');
        for (const p of pods) {
          const served = await servedSerial(p.status?.podIP ?? '', 8443);
          if (served !== newSerial) throw new Error(`${p.metadata?.name} serves ${served}`);
        }
        return pods;
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    process.stdout.write(
      `[e2e] renewal requested → both new web pods serving the new serial in ${Date.now() - t0} ms\n`,
    );
    expect(after.map((p) => p.metadata?.name)).not.toContain([...oldNames][0]);
    const dep = await apps.readNamespacedDeployment({ namespace: ns(), name: 'web' });
    expect(dep.spec?.template.metadata?.annotations?.[`${A}certificate-hash`]).toMatch(/^[0-9a-f]{32}$/);
  });
});
