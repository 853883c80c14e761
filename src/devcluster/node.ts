import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type ControlPlane, type ControlPlaneBinaries, startControlPlane } from './control-plane.ts';
import { type HttpsProbe, httpsGet, waitFor } from './net.ts';
import { type Containerd, type ContainerdPaths, startContainerd } from './node-containerd.ts';
import { type NodeComponentPaths, startNodeComponents } from './node-kubelet.ts';
import { acquireLock } from './node-lock.ts';
import { NODE_NETWORK, type NodeNetwork, setUpNetwork, writeCniConfig } from './node-network.ts';
import {
  loadRecord,
  type NodeRecord,
  newRecord,
  restoreHost,
  saveRecord,
  startTimeOf,
} from './node-record.ts';
import { startWatchdog } from './node-watchdog.ts';
import type { Peer } from './processes.ts';

export interface ImageArchive {
  /** An image archive `ctr images import` takes. */
  archive: string;
  /** The name it is imported under. */
  ref: string;
}

export interface NodeBinaries extends ControlPlaneBinaries, NodeComponentPaths, ContainerdPaths {
  /** The pod sandbox image (static C, built by provision.sh). */
  pause: ImageArchive;
  /** The tests' one-binary application image: `testbox serve|get|sleep` (test/testenv/images). */
  testbox: ImageArchive;
}

/**
 * Feature gates and APIs of the e2e cluster: Pod Certificates (PodCertificateRequest, projected
 * podCertificate volumes) and ClusterTrustBundles are beta and off by default in 1.36.
 */
export const E2E_FEATURE_GATES: Record<string, boolean> = {
  PodCertificateRequest: true,
  ClusterTrustBundle: true,
  ClusterTrustBundleProjection: true,
};
export const E2E_RUNTIME_CONFIG = ['certificates.k8s.io/v1beta1=true'];

export interface NodeOptions {
  onStep?: (step: string) => void;
  featureGates?: Record<string, boolean>;
  runtimeConfig?: string[];
  /** How long to wait for another node on this machine (the demo, a parallel run) to stop. */
  lockWaitMs?: number;
  /**
   * Called once this node holds the machine's lock and an earlier run's leftovers are gone, before
   * anything changes: the moment to snapshot the host as found (another node may have been
   * running until then).
   */
  onLocked?: () => Promise<void>;
  nodeName?: string;
}

export interface Node {
  controlPlane: ControlPlane;
  kubeconfigPath: string;
  apiServerUrl: string;
  caPem: string;
  nodeName: string;
  network: NodeNetwork;
  /** Names of the images imported at start (pause and testbox). */
  images: { pause: string; testbox: string };
  /** Imports an image archive into the node's containerd; resolves with its names (see Containerd). */
  importImage(archive: string, baseName?: string): Promise<string[]>;
  peers: Peer[];
  /** Milliseconds: start (without the wait for the lock), lock wait, control plane, kubelet start → Node Ready (taint gone), stale-run cleanup. */
  timings: {
    startMs: number;
    lockWaitMs: number;
    controlPlaneMs: number;
    kubeletToReadyMs: number;
    staleCleanupMs: number;
  };
  /**
   * Stops everything and restores the host. `whileLocked` runs after that and before the machine's
   * lock is released (the moment to compare the host with its snapshot: the next node may start
   * as soon as the lock is free); its error is stop()'s.
   */
  stop(options?: { whileLocked?: () => Promise<void> }): Promise<void>;
}

/**
 * Why a node cannot run here, in one line, or undefined when it can: it needs Linux, root, and the
 * programs `provision.sh node` installs.
 */
export function nodeUnavailableReason(bins?: Partial<NodeBinaries>): string | undefined {
  if (process.platform !== 'linux') return `the test node needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'the test node needs root (bridge, iptables, mounts, cgroups)';
  if (!existsSync('/sys/fs/cgroup')) return 'the test node needs cgroups (/sys/fs/cgroup is missing)';
  for (const [what, path] of Object.entries(bins ?? {})) {
    const file = typeof path === 'string' ? path : path?.archive;
    if (file !== undefined && (file === '' || !existsSync(file))) {
      return `the test node needs ${what}, not found${file ? ` at ${file}` : ''}: run npm run provision as root`;
    }
  }
  return undefined;
}

/**
 * Starts a one-node cluster of its own for the e2e tests (the integration tests' control plane
 * keeps having no node): the network, a control plane on the bridge address (Node,RBAC, the
 * `kubernetes` endpoints reconciled, kubelet client certificate, feature gates), containerd with
 * the pause and testbox images imported, the kubelet, kube-scheduler and kube-proxy; resolves
 * once the Node is Ready and schedulable. Needs root; everything it changes on the host is
 * recorded first and restored by stop(), or by the next start if this process is killed.
 */
export async function startNode(bins: NodeBinaries, dir: string, options: NodeOptions = {}): Promise<Node> {
  const why = nodeUnavailableReason(bins);
  if (why) throw new Error(why);
  const step = options.onStep ?? (() => undefined);
  const t0 = Date.now();
  const net = NODE_NETWORK;
  const nodeName = options.nodeName ?? 'cert-rotator-node';
  const featureGates = options.featureGates ?? E2E_FEATURE_GATES;
  const release = await acquireLock(options.lockWaitMs ?? 600_000, step);
  const lockWaitMs = Date.now() - t0;

  const stale = await loadRecord();
  const tStale = Date.now();
  if (stale) {
    step(`cleaning up an earlier node run (${stale.root})`);
    await restoreHost(stale, step).catch((err: unknown) => {
      release();
      throw err;
    });
  }
  const staleCleanupMs = Date.now() - tStale;
  if (options.onLocked) {
    await options.onLocked().catch((err: unknown) => {
      release();
      throw err;
    });
  }

  await mkdir(dir, { recursive: true });
  const logDir = join(dir, 'logs');
  const rec: NodeRecord = await newRecord(dir, net.bridge);
  await saveRecord(rec);
  const stopWatchdog = startWatchdog(dir, join(dir, 'watchdog.log'));
  const peers: Peer[] = [];
  let plane: ControlPlane | undefined;
  const recordPeer = async (p: Peer) => {
    rec.pids.push({ name: p.name, pid: p.pid, start: (await startTimeOf(p.pid)) ?? '' });
    await saveRecord(rec);
  };
  let stopped = false;
  const stop = async (stopOptions: { whileLocked?: () => Promise<void> } = {}) => {
    if (stopped) return;
    stopped = true;
    const problems: string[] = [];
    // The kubelet first: it would restart what the rest of the teardown stops.
    for (const p of [...peers].reverse()) await p.stop().catch((e: unknown) => problems.push(String(e)));
    if (plane) await plane.stop().catch((e: unknown) => problems.push(String(e)));
    await restoreHost(rec, step).catch((e: unknown) =>
      problems.push(e instanceof Error ? e.message : String(e)),
    );
    // containerd's content and snapshots: large, and of no use to a later run.
    await rm(join(dir, 'containerd'), { recursive: true, force: true }).catch(() => undefined);
    try {
      if (problems.length > 0) throw new Error(problems.join('; '));
      await stopOptions.whileLocked?.();
    } finally {
      release();
      stopWatchdog();
    }
  };

  try {
    step(`setting up bridge ${net.bridge} (${net.nodeIp}, pods ${net.podCidr}, Services ${net.serviceCidr})`);
    await setUpNetwork(net);
    const cniConf = join(dir, 'cni', 'net.d');
    await writeCniConfig(net, cniConf, join(dir, 'cni', 'ipam'));

    const tPlane = Date.now();
    const planeBins = {
      etcd: bins.etcd,
      kubeApiserver: bins.kubeApiserver,
      kubeControllerManager: bins.kubeControllerManager,
    };
    plane = await startControlPlane(planeBins, join(dir, 'cluster'), {
      onStep: step,
      bindAddress: net.nodeIp,
      serviceCidr: net.serviceCidr,
      reconcileEndpoints: true,
      authorizationModes: ['Node', 'RBAC'],
      admissionPlugins: ['NodeRestriction'],
      featureGates,
      runtimeConfig: options.runtimeConfig ?? E2E_RUNTIME_CONFIG,
      kubeletClient: true,
      // The node lifecycle controller takes the not-ready taint off once the kubelet reports Ready.
      enableControllers: ['nodelifecycle'],
      controllerManagerArgs: ['--node-monitor-period=1s'],
    });
    for (const p of plane.peers) await recordPeer(p);
    const controlPlaneMs = Date.now() - tPlane;

    step('starting containerd');
    const containerd: Containerd = await startContainerd(
      bins,
      join(dir, 'containerd'),
      cniConf,
      bins.pause.ref,
      logDir,
    );
    peers.push(containerd.peer);
    await recordPeer(containerd.peer);
    step('importing the pause and testbox images');
    const [pause] = await containerd.importImage(bins.pause.archive);
    const [testbox] = await containerd.importImage(bins.testbox.archive);

    step('starting kubelet, kube-scheduler, kube-proxy');
    const tKubelet = Date.now();
    const components = await startNodeComponents({
      paths: bins,
      plane,
      net,
      nodeName,
      dir,
      logDir,
      runtimeSocket: containerd.socket,
      featureGates,
      peers,
    });
    for (const p of [components.kubelet, components.scheduler, components.proxy]) await recordPeer(p);

    step(`waiting for Node ${nodeName} to be Ready`);
    const admin = await adminProbe(plane);
    await waitFor(
      `Node ${nodeName} Ready without the not-ready taint`,
      async () => {
        for (const p of peers) {
          if ((await startTimeOf(p.pid)) === undefined) throw new Error(`${p.name} exited; see ${p.logFile}`);
        }
        const res = await httpsGet(`${plane?.apiServerUrl}/api/v1/nodes/${nodeName}`, admin);
        if (res.status !== 200) return false;
        const node = JSON.parse(res.body) as {
          spec?: { taints?: Array<{ key: string }> };
          status?: { conditions?: Array<{ type: string; status: string; message?: string }> };
        };
        const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
        if (ready?.status !== 'True') throw new Error(`not Ready: ${ready?.message ?? 'no condition yet'}`);
        const taints = (node.spec?.taints ?? []).map((t) => t.key);
        if (taints.length > 0) throw new Error(`Ready, still tainted ${taints.join(', ')}`);
        return true;
      },
      { timeoutMs: 120_000, intervalMs: 100 },
    );
    const kubeletToReadyMs = Date.now() - tKubelet;
    const readyPlane = plane;
    return {
      controlPlane: readyPlane,
      kubeconfigPath: readyPlane.kubeconfigPath,
      apiServerUrl: readyPlane.apiServerUrl,
      caPem: readyPlane.caPem,
      nodeName,
      network: net,
      images: { pause: pause ?? bins.pause.ref, testbox: testbox ?? bins.testbox.ref },
      importImage: (archive, baseName) => containerd.importImage(archive, baseName),
      peers: [...readyPlane.peers, ...peers],
      timings: {
        startMs: Date.now() - t0 - lockWaitMs,
        lockWaitMs,
        controlPlaneMs,
        kubeletToReadyMs,
        staleCleanupMs,
      },
      stop,
    };
  } catch (err) {
    await stop().catch((e: unknown) => step(`cleanup after a failed start: ${String(e)}`));
    throw err;
  }
}

async function adminProbe(plane: ControlPlane): Promise<HttpsProbe> {
  const kc = JSON.parse(await readFile(plane.kubeconfigPath, 'utf8')) as {
    users: Array<{ user: { 'client-certificate-data': string; 'client-key-data': string } }>;
  };
  const user = kc.users[0]?.user;
  if (!user) throw new Error(`${plane.kubeconfigPath} has no user`);
  const b = (s: string) => Buffer.from(s, 'base64').toString('utf8');
  return { ca: plane.caPem, cert: b(user['client-certificate-data']), key: b(user['client-key-data']) };
}
