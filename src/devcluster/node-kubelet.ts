import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { issueLeaf, type TestCA } from './certs.ts';
import { type ControlPlane, kubeconfigYaml } from './control-plane.ts';
import type { NodeNetwork } from './node-network.ts';
import { type Peer, startPeer } from './processes.ts';

export interface NodeComponentPaths {
  kubelet: string;
  kubeScheduler: string;
  kubeProxy: string;
}

/**
 * The kubelet's configuration for this host (cgroup v1, no swap accounting, shared disk) and for
 * the tests (no DNS from the host, no image garbage collection, logs under its root):
 * - `failCgroupV1: false`, `cgroupDriver: cgroupfs`, `failSwapOn: false`;
 * - eviction thresholds so low that a busy shared disk never evicts a test pod;
 * - image GC effectively off: imported images cannot be pulled back;
 * - `resolvConf: ""`: pods get no nameserver, so nothing in a pod looks a name up through the
 *   machine's resolver (there is no cluster DNS: tests use ClusterIPs and pod IPs);
 * - authentication by client certificate (cluster CA) and webhook, authorization through the API
 *   server, no anonymous access: what `kubectl logs`/`exec` go through;
 * - `oomScoreAdj: 0`: lowering its own would need CAP_SYS_RESOURCE, which this host does not give.
 */
export function kubeletConfig(o: {
  net: NodeNetwork;
  caFile: string;
  tlsCertFile: string;
  tlsKeyFile: string;
  runtimeSocket: string;
  podLogsDir: string;
  featureGates: Record<string, boolean>;
}): object {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: o.net.nodeIp,
    port: 10250,
    readOnlyPort: 0,
    healthzPort: 0,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: o.caFile },
    },
    authorization: { mode: 'Webhook' },
    tlsCertFile: o.tlsCertFile,
    tlsPrivateKeyFile: o.tlsKeyFile,
    rotateCertificates: false,
    serverTLSBootstrap: false,
    containerRuntimeEndpoint: `unix://${o.runtimeSocket}`,
    cgroupDriver: 'cgroupfs',
    failCgroupV1: false,
    failSwapOn: false,
    oomScoreAdj: 0,
    resolvConf: '',
    clusterDomain: 'cluster.local',
    podLogsDir: o.podLogsDir,
    evictionHard: {
      'memory.available': '50Mi',
      'nodefs.available': '1%',
      'nodefs.inodesFree': '1%',
      'imagefs.available': '1%',
      'imagefs.inodesFree': '1%',
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // Secret and ConfigMap volumes follow the API within about this period.
    syncFrequency: '10s',
    nodeStatusUpdateFrequency: '5s',
    serializeImagePulls: false,
    featureGates: o.featureGates,
  };
}

export interface NodeComponents {
  kubelet: Peer;
  scheduler: Peer;
  proxy: Peer;
}

/**
 * The kubelet's identity and serving certificate, its kubeconfig and configuration, then
 * kube-scheduler and kube-proxy (iptables mode, conntrack settings 0 so it changes no conntrack
 * tunable, NodePorts on the bridge address only), each started under the leash.
 */
export async function startNodeComponents(o: {
  paths: NodeComponentPaths;
  plane: ControlPlane;
  net: NodeNetwork;
  nodeName: string;
  dir: string;
  logDir: string;
  runtimeSocket: string;
  featureGates: Record<string, boolean>;
  peers: Peer[];
}): Promise<NodeComponents> {
  const { plane, net, dir } = o;
  const pki = join(dir, 'pki');
  await mkdir(pki, { recursive: true });
  const ca: TestCA = plane.ca;
  // The Node authorizer knows a kubelet by this certificate: CN system:node:NAME, O system:nodes,
  // NAME equal to --hostname-override.
  const client = await issueLeaf(ca, {
    commonName: `system:node:${o.nodeName}`,
    organizations: ['system:nodes'],
    usage: 'client',
  });
  const serving = await issueLeaf(ca, {
    commonName: o.nodeName,
    dnsNames: [o.nodeName],
    ipAddresses: [net.nodeIp],
    usage: 'server',
  });
  const files = {
    ca: join(pki, 'ca.crt'),
    servingCert: join(pki, 'kubelet.crt'),
    servingKey: join(pki, 'kubelet.key'),
    kubeconfig: join(dir, 'kubelet.kubeconfig'),
    config: join(dir, 'kubelet-config.json'),
    proxyConfig: join(dir, 'kube-proxy-config.json'),
  };
  await writeFile(files.ca, plane.caPem);
  await writeFile(files.servingCert, serving.certPem);
  await writeFile(files.servingKey, serving.keyPem, { mode: 0o600 });
  await writeFile(files.kubeconfig, kubeconfigYaml(plane.apiServerUrl, plane.caPem, client), { mode: 0o600 });
  await writeFile(
    files.config,
    JSON.stringify(
      kubeletConfig({
        net,
        caFile: files.ca,
        tlsCertFile: files.servingCert,
        tlsKeyFile: files.servingKey,
        runtimeSocket: o.runtimeSocket,
        podLogsDir: join(dir, 'pod-logs'),
        featureGates: o.featureGates,
      }),
      null,
      2,
    ),
  );
  const gates = Object.entries(o.featureGates)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

  const kubelet = await startPeer(
    'kubelet',
    o.paths.kubelet,
    [
      `--config=${files.config}`,
      `--kubeconfig=${files.kubeconfig}`,
      `--root-dir=${join(dir, 'kubelet')}`,
      `--cert-dir=${pki}`,
      `--hostname-override=${o.nodeName}`,
      `--node-ip=${net.nodeIp}`,
      '--v=1',
    ],
    { logDir: o.logDir },
  );
  o.peers.push(kubelet);

  const scheduler = await startPeer(
    'kube-scheduler',
    o.paths.kubeScheduler,
    [
      `--kubeconfig=${plane.kubeconfigPath}`,
      '--leader-elect=false',
      '--secure-port=0',
      ...(gates ? [`--feature-gates=${gates}`] : []),
      '--v=1',
    ],
    { logDir: o.logDir },
  );
  o.peers.push(scheduler);

  await writeFile(
    files.proxyConfig,
    JSON.stringify(
      {
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        clientConnection: { kubeconfig: plane.kubeconfigPath },
        hostnameOverride: o.nodeName,
        bindAddress: net.nodeIp,
        healthzBindAddress: `${net.nodeIp}:10256`,
        metricsBindAddress: `${net.nodeIp}:10249`,
        clusterCIDR: net.podCidr,
        mode: 'iptables',
        detectLocalMode: 'ClusterCIDR',
        nodePortAddresses: [`${net.nodeIp}/32`],
        oomScoreAdj: 0,
        conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
        iptables: { localhostNodePorts: false, masqueradeAll: false, syncPeriod: '30s', minSyncPeriod: '0s' },
        featureGates: o.featureGates,
      },
      null,
      2,
    ),
  );
  const proxy = await startPeer('kube-proxy', o.paths.kubeProxy, [`--config=${files.proxyConfig}`, '--v=1'], {
    logDir: o.logDir,
  });
  o.peers.push(proxy);
  return { kubelet, scheduler, proxy };
}
