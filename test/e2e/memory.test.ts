/**
 * What Kubernetes sees of the product's memory: the working set the kubelet reports (stats/summary,
 * the figure evictions and `kubectl top` use) for the controller and the sidecar, next to the
 * RSS of their processes, and against the chart's default requests and limits.
 *
 * `npm test` measures the controller with no Secrets and an idle sidecar. `npm run bench:node`
 * runs this file with CERT_ROTATOR_E2E_SECRETS=5000: the controller then also watches that many
 * TLS Secrets (docs/performance.md, "On a node").
 */

import { readFileSync } from 'node:fs';
import type * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { waitFor } from '../testenv/net.ts';
import { describeOnNode, useNode, useNodeNamespace, waitForPodReady } from '../testenv/node.ts';
import {
  CHART,
  containerMemory,
  helmOnNode,
  installChart,
  kubeletContainerStats,
  productImage,
  waitForReadyPods,
} from '../testenv/product.ts';
import { makeLeaf, makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const RELEASE = 'crm';
const CONTROLLER = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/name=cert-rotator`;
const SECRETS = Number(process.env.CERT_ROTATOR_E2E_SECRETS ?? '0');
const MiB = 2 ** 20;
const DAY = 86_400_000;

/** The chart's default memory request and limit, in bytes. */
function chartMemory(): { request: number; limit: number } {
  const values = parse(readFileSync(`${CHART}/values.yaml`, 'utf8')) as {
    resources: { requests: { memory: string }; limits: { memory: string } };
  };
  const bytes = (q: string) => {
    const m = /^(\d+)Mi$/.exec(q);
    if (!m) throw new Error(`values.yaml: memory ${q} is not N Mi`);
    return Number(m[1]) * MiB;
  };
  return { request: bytes(values.resources.requests.memory), limit: bytes(values.resources.limits.memory) };
}

const fmt = (b: number) => `${(b / MiB).toFixed(1)} MiB`;

describeOnNode('memory as the kubelet sees it', () => {
  const node = useNode();
  const ns = useNodeNamespace(import.meta.url, node);
  let helm: Awaited<ReturnType<typeof helmOnNode>> | undefined;
  let ca: Pair;

  beforeAll(async () => {
    const { core, info } = node();
    const image = await productImage();
    helm = await helmOnNode(info);
    ca = await makeTestCA('e2e memory CA');
    await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
    // Chart defaults for resources: the figures are checked against them.
    await installChart(helm, RELEASE, ns(), image, [
      '--set',
      'replicaCount=1',
      '--set-json',
      `config.issuers=[{"name":"internal","ca":{"secret":{"namespace":"${ns()}","name":"internal-ca"}}}]`,
    ]);
    await waitForReadyPods(core, ns(), CONTROLLER, 1, 'the controller pod Ready', 120_000);
  });

  afterAll(async () => {
    if (helm && ns()) await helm.run(['uninstall', RELEASE, '--namespace', ns(), '--wait=false']);
    await helm?.close();
  });

  async function measure(pod: k8s.V1Pod, container: string, label: string) {
    const { core, info } = node();
    const name = pod.metadata?.name ?? '';
    // The kubelet's cadvisor samples every few seconds: wait for a figure of this container.
    const kubelet = await waitFor(
      `stats/summary for ${name}/${container}`,
      () => kubeletContainerStats(core, info.nodeName, ns(), name, container),
      { timeoutMs: 60_000, intervalMs: 1_000 },
    );
    const cgroup = containerMemory(pod, container);
    process.stdout.write(
      `[e2e] memory ${label}: working set ${fmt(kubelet.workingSetBytes)} (kubelet), ${fmt(cgroup.workingSetBytes)} (cgroup now); cgroup rss ${fmt(cgroup.rssBytes)}, cache ${fmt(cgroup.cacheBytes)}; process RSS ${fmt(cgroup.processRssBytes)}\n`,
    );
    return { kubelet, cgroup };
  }

  it(`controller with ${SECRETS} TLS Secrets: working set within the chart's request, below its RSS`, async () => {
    const { core } = node();
    if (SECRETS > 0) {
      const leaf = await makeLeaf({ dnsNames: ['bulk.e2e.test'], fromMs: -60_000, toMs: 300 * DAY, ca });
      const names = Array.from({ length: SECRETS }, (_, i) => `bulk-${i}`);
      for (let i = 0; i < names.length; i += 50) {
        await Promise.all(
          names.slice(i, i + 50).map((n) =>
            core.createNamespacedSecret({
              namespace: ns(),
              body: tlsSecret(n, leaf, { 'cert-rotator.io/enabled': 'true' }),
            }),
          ),
        );
      }
    }
    const [pod] = await waitForReadyPods(core, ns(), CONTROLLER, 1, 'the controller pod Ready');
    if (!pod) throw new Error('no controller pod');
    if (SECRETS > 0) {
      // Every Secret processed: the controller's /metrics lists all of them.
      await waitFor(
        `${SECRETS} Secrets in /metrics`,
        async () => {
          const body = await (await fetch(`http://${pod.status?.podIP}:9402/metrics`)).text();
          const n = body
            .split('\n')
            .filter(
              (l) =>
                l.startsWith('cert_rotator_certificate_not_after_timestamp_seconds{') &&
                l.includes('secret="bulk-'),
            ).length;
          return n === SECRETS;
        },
        { timeoutMs: 300_000, intervalMs: 2_000 },
      );
    }
    const { kubelet, cgroup } = await measure(pod, 'controller', `controller, ${SECRETS} Secrets`);
    const chart = chartMemory();
    expect(kubelet.workingSetBytes).toBeLessThan(chart.request);
    // The node binary's file pages are charged to whoever first read them (containerd, when it
    // unpacked the image), not to the container: its working set is below its processes' RSS.
    expect(cgroup.workingSetBytes).toBeLessThan(cgroup.processRssBytes);
  });

  it('an idle sidecar: working set within the request docs/sidecar.md gives it', async () => {
    const { core } = node();
    const image = await productImage();
    await core.createNamespacedPod({
      namespace: ns(),
      body: {
        metadata: { name: 'sidecar' },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 1,
          volumes: [{ name: 'certs', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }],
          initContainers: [
            {
              name: 'cert-rotator',
              image: image.ref,
              imagePullPolicy: 'Never',
              restartPolicy: 'Always',
              args: [
                'sidecar',
                '--self-signed',
                '--dir',
                '/certs',
                '--dns-names',
                'localhost',
                '--duration',
                '24h',
              ],
              env: [{ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
              startupProbe: {
                httpGet: { path: '/readyz', port: 9403 },
                periodSeconds: 1,
                failureThreshold: 60,
              },
              resources: { requests: { cpu: '5m', memory: '64Mi' }, limits: { memory: '96Mi' } },
              securityContext: {
                runAsNonRoot: true,
                runAsUser: 65532,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'certs', mountPath: '/certs' }],
            },
          ],
          containers: [
            {
              name: 'app',
              image: image.ref,
              imagePullPolicy: 'Never',
              command: ['/nodejs/bin/node', '-e', 'setInterval(() => {}, 1 << 30)'],
              securityContext: {
                runAsNonRoot: true,
                runAsUser: 65532,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'certs', mountPath: '/certs', readOnly: true }],
            },
          ],
        },
      },
    });
    const pod = await waitForPodReady(core, ns(), 'sidecar');
    const { kubelet, cgroup } = await measure(pod, 'cert-rotator', 'sidecar, idle');
    expect(kubelet.workingSetBytes).toBeLessThan(64 * MiB);
    expect(cgroup.workingSetBytes).toBeLessThan(cgroup.processRssBytes);
  });
});
