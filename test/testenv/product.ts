/**
 * The product on the e2e node as users run it: the image built from the repository's Dockerfile
 * (test/testenv/image.ts) imported into the node's containerd, the chart installed with the
 * provisioned helm, and small TLS applications in the same image (its `node` binary) that serve
 * the certificate they mount. Used by the files in test/e2e/ and by nothing on the host.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import type * as k8s from '@kubernetes/client-node';
import { binaries } from './env.ts';
import { waitFor } from './net.ts';
import type { E2eNodeInfo } from './node.ts';
import { importImage, nodeInfo } from './node.ts';

export const CHART = new URL('../../charts/cert-rotator', import.meta.url).pathname;

/** The `node` binary of the image (distroless layout). */
export const IMAGE_NODE = '/nodejs/bin/node';

let imported: Promise<{ repository: string; tag: string; ref: string }> | undefined;

/**
 * The image built from the Dockerfile (the e2e global setup builds it, cached, before the node
 * starts), imported into the node once per file; its name.
 */
export async function productImage(): Promise<{ repository: string; tag: string; ref: string }> {
  imported ??= (async () => {
    const t0 = Date.now();
    const { product } = await nodeInfo();
    const names = await importImage(product.archive);
    if (!names.includes(product.ref))
      throw new Error(`importing ${product.archive} gave ${names.join(', ')}`);
    process.stdout.write(`[e2e] image ${product.ref} imported into the node in ${Date.now() - t0} ms\n`);
    const colon = product.ref.lastIndexOf(':');
    return { repository: product.ref.slice(0, colon), tag: product.ref.slice(colon + 1), ref: product.ref };
  })();
  return await imported;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A helm with a home of its own, talking to the node's API server. */
export async function helmOnNode(info: E2eNodeInfo): Promise<{
  run(args: string[]): Promise<HelmResult>;
  close(): Promise<void>;
}> {
  const home = await mkdtemp(join(tmpdir(), 'cert-rotator-e2e-helm-'));
  const bin = binaries().helm;
  return {
    run: (args) =>
      new Promise((resolve) => {
        execFile(
          bin,
          [...args, '--kubeconfig', info.kubeconfigPath],
          {
            env: {
              PATH: process.env.PATH ?? '',
              HOME: home,
              HELM_CACHE_HOME: join(home, 'cache'),
              HELM_CONFIG_HOME: join(home, 'config'),
              HELM_DATA_HOME: join(home, 'data'),
            },
            maxBuffer: 16 << 20,
            timeout: 300_000,
          },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
            resolve({ code, stdout, stderr });
          },
        );
      }),
    close: () => rm(home, { recursive: true, force: true }),
  };
}

/** What a TLS client connecting to IP:PORT is shown: the leaf's serial (upper-case hex). */
export async function servedSerial(ip: string, port: number, timeoutMs = 5_000): Promise<string> {
  return await new Promise((resolve, reject) => {
    // The serial is what is checked, not the chain: the test compares it with the Secret's.
    const sock = connect({ host: ip, port, rejectUnauthorized: false, timeout: timeoutMs }, () => {
      const serial = sock.getPeerX509Certificate()?.serialNumber;
      sock.destroy();
      if (serial) resolve(serial.toUpperCase());
      else reject(new Error(`${ip}:${port} presented no certificate`));
    });
    sock.on('timeout', () => {
      sock.destroy();
      reject(new Error(`${ip}:${port}: no TLS handshake within ${timeoutMs} ms`));
    });
    sock.on('error', reject);
  });
}

/** The serial of a Secret's (or a PEM's) leaf, upper-case hex as servedSerial reports it. */
export function serialOf(certPem: string): string {
  return new X509Certificate(certPem).serialNumber.toUpperCase();
}

/** GET http://IP:PORT/PATH from the host (the bridge), body as text. */
export async function httpText(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

/**
 * A TLS server in the product image's node: serves the certificate of DIR/tls.crt + DIR/tls.key
 * on PORT. `reload`: re-reads the files on SIGHUP (installed `hupAfterMs` after start), and the
 * process is called `title` (what the sidecar's `--process` matches). Logs each load with the
 * serial, never the key.
 */
export function tlsAppScript(opts: {
  dir: string;
  port: number;
  reload?: { title: string; hupAfterMs: number };
}): string {
  const { dir, port, reload } = opts;
  return [
    "const fs = require('node:fs'), tls = require('node:tls'), crypto = require('node:crypto');",
    `const load = () => ({ cert: fs.readFileSync('${dir}/tls.crt'), key: fs.readFileSync('${dir}/tls.key') });`,
    'const serial = (c) => new crypto.X509Certificate(c.cert).serialNumber;',
    'let ctx = load();',
    "console.log('app: serving serial ' + serial(ctx));",
    "const server = tls.createServer(ctx, (s) => s.end('ok\\n'));",
    `server.listen(${port});`,
    ...(reload
      ? [
          `process.title = '${reload.title}';`,
          'setTimeout(() => {',
          "  process.on('SIGHUP', () => { ctx = load(); server.setSecureContext(ctx); console.log('app: SIGHUP, serving serial ' + serial(ctx)); });",
          "  console.log('app: SIGHUP handler installed');",
          `}, ${reload.hupAfterMs});`,
        ]
      : []),
  ].join('\n');
}

/** Pods of a Deployment-like selector, newest last. */
export async function podsBySelector(
  core: k8s.CoreV1Api,
  namespace: string,
  labelSelector: string,
): Promise<k8s.V1Pod[]> {
  const list = await core.listNamespacedPod({ namespace, labelSelector });
  return list.items.sort(
    (a, b) =>
      (a.metadata?.creationTimestamp?.getTime() ?? 0) - (b.metadata?.creationTimestamp?.getTime() ?? 0),
  );
}

export function isReady(pod: k8s.V1Pod): boolean {
  return (
    pod.metadata?.deletionTimestamp === undefined &&
    pod.status?.phase === 'Running' &&
    pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true
  );
}

/** Waits until exactly `n` pods match, all Ready and none terminating; returns them. */
export async function waitForReadyPods(
  core: k8s.CoreV1Api,
  namespace: string,
  labelSelector: string,
  n: number,
  what: string,
  timeoutMs = 90_000,
): Promise<k8s.V1Pod[]> {
  return await waitFor(
    what,
    async () => {
      const pods = await podsBySelector(core, namespace, labelSelector);
      const states = pods.map(
        (p) =>
          `${p.metadata?.name}: ${p.status?.phase}${isReady(p) ? ' Ready' : ''}${p.metadata?.deletionTimestamp ? ' terminating' : ''} ${p.status?.containerStatuses?.map((c) => JSON.stringify(c.state?.waiting ?? c.lastState?.terminated ?? {})).join(' ') ?? ''}`,
      );
      if (pods.length === n && pods.every(isReady)) return pods;
      throw new Error(states.join('; ') || 'no pods');
    },
    { timeoutMs, intervalMs: 100 },
  );
}

const MEMORY_CGROUP = '/sys/fs/cgroup/memory/kubepods';

/**
 * The memory cgroup directory of a running container on the node (cgroup v1, cgroupfs driver:
 * kubepods[/burstable|/besteffort]/pod<UID>/<CONTAINER-ID>).
 */
export function containerCgroup(pod: k8s.V1Pod, container: string): string {
  const uid = pod.metadata?.uid ?? '';
  const id = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])]
    .find((c) => c.name === container)
    ?.containerID?.replace(/^containerd:\/\//, '');
  if (!id) throw new Error(`pod ${pod.metadata?.name}: container ${container} has no ID yet`);
  for (const qos of ['', 'burstable/', 'besteffort/']) {
    const dir = `${MEMORY_CGROUP}/${qos}pod${uid}/${id}`;
    if (existsSync(dir)) return dir;
  }
  throw new Error(`no memory cgroup for ${pod.metadata?.name}/${container} (${id}) under ${MEMORY_CGROUP}`);
}

/** The host PIDs of a container's processes. */
export function containerPids(pod: k8s.V1Pod, container: string): number[] {
  return readFileSync(`${containerCgroup(pod, container)}/cgroup.procs`, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map(Number);
}

export interface ContainerMemory {
  /** What the kubelet reports and evicts/OOM-ranks by: usage − inactive file pages. */
  workingSetBytes: number;
  usageBytes: number;
  /** Page cache charged to the container's cgroup (rss and cache as memory.stat counts them). */
  cacheBytes: number;
  rssBytes: number;
  /** VmRSS of the container's processes summed (/proc/PID/status), file pages included. */
  processRssBytes: number;
}

/** The kubelet's working set computed from the container's cgroup, next to the processes' RSS. */
export function containerMemory(pod: k8s.V1Pod, container: string): ContainerMemory {
  const dir = containerCgroup(pod, container);
  const usage = Number(readFileSync(`${dir}/memory.usage_in_bytes`, 'utf8'));
  const stat = new Map(
    readFileSync(`${dir}/memory.stat`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.split(' ')[0] ?? '', Number(l.split(' ')[1])] as const),
  );
  const inactive = stat.get('total_inactive_file') ?? 0;
  let processRss = 0;
  for (const pid of containerPids(pod, container)) {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    processRss += Number(m?.[1] ?? 0) * 1024;
  }
  return {
    workingSetBytes: Math.max(0, usage - inactive),
    usageBytes: usage,
    cacheBytes: stat.get('total_cache') ?? 0,
    rssBytes: stat.get('total_rss') ?? 0,
    processRssBytes: processRss,
  };
}

/** The kubelet's own view (stats/summary through the API server's node proxy) of a container. */
export async function kubeletContainerStats(
  core: k8s.CoreV1Api,
  nodeName: string,
  namespace: string,
  pod: string,
  container: string,
): Promise<{ workingSetBytes: number; rssBytes: number; usageBytes: number }> {
  const raw: unknown = await core.connectGetNodeProxyWithPath({ name: nodeName, path: 'stats/summary' });
  const summary = (typeof raw === 'string' ? JSON.parse(raw) : raw) as {
    pods?: Array<{
      podRef: { name: string; namespace: string };
      containers?: Array<{
        name: string;
        memory?: { workingSetBytes?: number; rssBytes?: number; usageBytes?: number };
      }>;
    }>;
  };
  const c = summary.pods
    ?.find((p) => p.podRef.name === pod && p.podRef.namespace === namespace)
    ?.containers?.find((x) => x.name === container);
  if (!c?.memory?.workingSetBytes)
    throw new Error(`stats/summary has no memory for ${namespace}/${pod}/${container} yet`);
  return {
    workingSetBytes: c.memory.workingSetBytes,
    rssBytes: c.memory.rssBytes ?? 0,
    usageBytes: c.memory.usageBytes ?? 0,
  };
}

/** `helm install RELEASE` of the chart with the product image into `namespace`; throws with helm's output. */
export async function installChart(
  helm: { run(args: string[]): Promise<HelmResult> },
  release: string,
  namespace: string,
  image: { repository: string; tag: string },
  args: string[],
): Promise<void> {
  const r = await helm.run([
    'install',
    release,
    CHART,
    '--namespace',
    namespace,
    '--set',
    `image.repository=${image.repository}`,
    '--set',
    `image.tag=${image.tag}`,
    '--set',
    'image.pullPolicy=Never',
    '--set',
    'rbac.scope=namespaced',
    '--set',
    `watchNamespaces={${namespace}}`,
    ...args,
  ]);
  if (r.code !== 0) throw new Error(`helm install ${release} failed (exit ${r.code}): ${r.stderr}`);
}

/** The restricted Pod Security profile's container settings, as the product's images run. */
export const RESTRICTED: k8s.V1SecurityContext = {
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};

/**
 * `cert-rotator sidecar` as a native sidecar (an init container that keeps running) writing to
 * the `certs` volume at /certs and sending SIGHUP to the process titled `webapp` (the pod must
 * share its process namespace). Ready (started) once its /readyz says the first files are there.
 */
export function sidecarContainer(image: string, sourceArgs: readonly string[]): k8s.V1Container {
  return {
    name: 'cert-rotator',
    image,
    imagePullPolicy: 'Never',
    restartPolicy: 'Always',
    args: ['sidecar', ...sourceArgs, '--dir', '/certs', '--signal', 'HUP', '--process', 'webapp'],
    env: [
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_SERVICE_ACCOUNT', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
    ],
    startupProbe: { httpGet: { path: '/readyz', port: 9403 }, periodSeconds: 1, failureThreshold: 120 },
    securityContext: RESTRICTED,
    volumeMounts: [{ name: 'certs', mountPath: '/certs' }],
  };
}

/**
 * A ServiceAccount that may read these Secrets of its namespace and nothing else: a Role naming
 * them (`get`, `list`, `watch`: what `cert-rotator sidecar --secret` does) and its binding, both
 * called `NAME-reader` after the ServiceAccount.
 */
export async function secretReaderAccount(
  clients: { core: k8s.CoreV1Api; rbac: k8s.RbacAuthorizationV1Api },
  namespace: string,
  serviceAccount: string,
  secrets: readonly string[],
): Promise<void> {
  const name = `${serviceAccount}-reader`;
  await clients.core.createNamespacedServiceAccount({
    namespace,
    body: { metadata: { name: serviceAccount } },
  });
  await clients.rbac.createNamespacedRole({
    namespace,
    body: {
      metadata: { name },
      rules: [
        {
          apiGroups: [''],
          resources: ['secrets'],
          resourceNames: [...secrets],
          verbs: ['get', 'list', 'watch'],
        },
      ],
    },
  });
  await clients.rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name: serviceAccount, namespace }],
    },
  });
}
