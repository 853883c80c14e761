/**
 * Node mode on the real node: the chart's `nodeMonitor` DaemonSet, installed with helm and the
 * image built from the Dockerfile, reads the kubelet's own client certificate (the one the
 * running kubelet authenticates with, found from its command line) through a read-only hostPath,
 * and exports its notAfter labelled with the node — as uid 0 with no capability and a read-only
 * root filesystem.
 */
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { waitFor } from '../testenv/net.ts';
import { describeOnNode, execInPod, podLogs, useNode, useNodeNamespace } from '../testenv/node.ts';
import {
  helmOnNode,
  httpText,
  IMAGE_NODE,
  installChart,
  isReady,
  productImage,
  waitForReadyPods,
} from '../testenv/product.ts';

const RELEASE = 'crn';
const MONITOR = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/name=cert-rotator-node-monitor`;
const PORT = 9403;

/** The running kubelet of this node, by its command line: the kubeconfig it authenticates with. */
function kubeletKubeconfig(nodeName: string): string {
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let args: string[];
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    if (!args[0]?.endsWith('kubelet') || !args.includes(`--hostname-override=${nodeName}`)) continue;
    const flag = args.find((a) => a.startsWith('--kubeconfig='));
    if (flag) return flag.slice('--kubeconfig='.length);
  }
  throw new Error(`no kubelet process for node ${nodeName}`);
}

/** The client certificate a kubeconfig file holds (embedded or by path), and its user's name. */
function clientCertificate(path: string): { user: string; cert: X509Certificate } {
  const kc = parse(readFileSync(path, 'utf8')) as {
    'current-context': string;
    contexts: { name: string; context: { user: string } }[];
    users: { name: string; user: { 'client-certificate-data'?: string; 'client-certificate'?: string } }[];
  };
  const userName = kc.contexts.find((c) => c.name === kc['current-context'])?.context.user;
  const user = kc.users.find((u) => u.name === userName);
  if (!userName || !user) throw new Error(`${path}: no user for the current context`);
  const data = user.user['client-certificate-data'];
  const pem = data
    ? Buffer.from(data, 'base64')
    : readFileSync(user.user['client-certificate'] ?? `${path}: no client certificate`);
  return { user: userName, cert: new X509Certificate(pem) };
}

describeOnNode('node mode on the node', () => {
  const node = useNode();
  const ns = useNodeNamespace(import.meta.url, node);
  let helm: Awaited<ReturnType<typeof helmOnNode>> | undefined;
  let kubeconfig = '';
  let pod: k8s.V1Pod;

  beforeAll(async () => {
    const { core, info } = node();
    const image = await productImage();
    helm = await helmOnNode(info);
    kubeconfig = kubeletKubeconfig(info.nodeName);
    const t0 = Date.now();
    await installChart(helm, RELEASE, ns(), image, [
      '--set',
      'replicaCount=1',
      '--set',
      'nodeMonitor.enabled=true',
      // The directory holding the kubelet's kubeconfig is this node's own (not /var/lib/kubelet).
      '--set-json',
      `nodeMonitor.paths=${JSON.stringify([dirname(kubeconfig)])}`,
      '--set',
      'nodeMonitor.interval=1h',
    ]);
    const [ready] = await waitForReadyPods(core, ns(), MONITOR, 1, 'the node-monitor pod Ready', 45_000);
    if (!ready) throw new Error('no node-monitor pod');
    pod = ready;
    process.stdout.write(`[e2e] helm install → node-monitor pod Ready in ${Date.now() - t0} ms\n`);
  });

  afterAll(async () => {
    if (helm && ns()) await helm.run(['uninstall', RELEASE, '--namespace', ns(), '--wait=false']);
    await helm?.close();
  });

  it("exports the kubelet's client certificate notAfter, read through the hostPath, labelled with the node", async () => {
    const { core, info } = node();
    const { user, cert } = clientCertificate(kubeconfig);
    expect(cert.subject).toContain(`CN=system:node:${info.nodeName}`);
    expect(pod.spec?.nodeName).toBe(info.nodeName);
    // Ready means the first scan is done: the series is there at once, or never.
    const series = await waitFor(
      `the kubelet's certificate in /metrics of ${pod.metadata?.name}`,
      async () => {
        const { status, body } = await httpText(`http://${pod.status?.podIP}:${PORT}/metrics`);
        if (status !== 200) throw new Error(`status ${status}`);
        return body
          .split('\n')
          .find(
            (l) =>
              l.startsWith('cert_rotator_x509_not_after_timestamp_seconds{') &&
              l.includes(`name="${kubeconfig}"`) &&
              l.includes(`key=":user/${user}"`),
          );
      },
      { timeoutMs: 10_000 },
    );
    const started = (await podLogs(core, ns(), pod.metadata?.name ?? '', 'monitor'))
      .split('\n')
      .find((l) => l.includes('cert-rotator monitor started'));
    process.stdout.write(`[e2e] node monitor: ${started}\n[e2e] ${series}\n`);
    const labels = series.slice(series.indexOf('{'), series.lastIndexOf('}') + 1);
    expect(labels).toContain('source="file"');
    expect(labels).toContain(`subject_cn="system:node:${info.nodeName}"`);
    expect(labels).toContain(`node="${info.nodeName}"`);
    expect(Number(series.split(' ').pop())).toBe(cert.validToDate.getTime() / 1000);
  });

  it('runs as uid 0 with every capability dropped, a read-only root and read-only mounts', async () => {
    const { kc } = node();
    expect(isReady(pod)).toBe(true);
    const c = pod.spec?.containers.find((x) => x.name === 'monitor');
    expect(c?.securityContext).toMatchObject({
      runAsUser: 0,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(c?.securityContext?.capabilities?.add ?? []).toEqual([]);
    expect(c?.volumeMounts?.filter((m) => m.name.startsWith('host-'))).toEqual([
      expect.objectContaining({ mountPath: `/host${dirname(kubeconfig)}`, readOnly: true }),
    ]);
    expect(pod.spec?.automountServiceAccountToken).toBe(false);
    const status = pod.status?.containerStatuses?.find((s) => s.name === 'monitor');
    expect(status?.restartCount).toBe(0);
    // The node's containerd does not report the process's identity in the status (KEP-3619's
    // `user`): what the process really is, asked inside the container: uid 0, no effective or bounding capability, nothing writable.
    const r = await execInPod(kc, ns(), pod.metadata?.name ?? '', 'monitor', [
      IMAGE_NODE,
      '-e',
      `const fs = require('node:fs');
       const caps = Object.fromEntries(fs.readFileSync('/proc/self/status', 'utf8').split('\\n').filter((l) => l.startsWith('Cap')).map((l) => l.split(/:\\s+/)));
       const w = (p) => { try { fs.writeFileSync(p, 'x'); return 'writable'; } catch (e) { return e.code; } };
       console.log(JSON.stringify({ uid: process.getuid(), caps, root: w('/x'), host: w(${JSON.stringify(`/host${kubeconfig}.x`)}) }));`,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const seen = JSON.parse(r.stdout) as {
      uid: number;
      caps: Record<string, string>;
      root: string;
      host: string;
    };
    expect(seen).toEqual({
      uid: 0,
      caps: expect.objectContaining({
        CapEff: '0000000000000000',
        CapPrm: '0000000000000000',
        CapBnd: '0000000000000000',
      }),
      root: 'EROFS',
      host: 'EROFS',
    });
  });
});
