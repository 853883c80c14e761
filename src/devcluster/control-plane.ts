import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { issueLeaf, makeCA, makeSigningKey, type TestCA } from './certs.ts';
import { freePort, httpsGet, waitFor } from './net.ts';
import { isAlive, type Peer, startPeer } from './processes.ts';

export interface ControlPlaneBinaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
}

export interface ControlPlane {
  apiServerUrl: string;
  etcdUrl: string;
  kubeconfigPath: string;
  /** Cluster CA: signs the API server's serving cert, client certs and approved CSRs. */
  caPem: string;
  /** The same CA with its key, for a node launcher that issues the kubelet's certificates. */
  ca: TestCA;
  /** Where ca.crt, ca.key and the other certificates of the cluster are. */
  pkiDir: string;
  peers: Peer[];
  startedInMs: number;
  stop(): Promise<void>;
  /** Stops and restarts kube-apiserver on the same port (for "API server goes away" tests). */
  restartApiServer(): Promise<void>;
  /** Stops and restarts etcd on the same ports and data directory (the chaos suite). */
  restartEtcd(): Promise<void>;
}

export function kubeconfigYaml(
  server: string,
  caPem: string,
  user: { certPem: string; keyPem: string },
): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
      users: [
        {
          name: 'admin',
          user: { 'client-certificate-data': b64(user.certPem), 'client-key-data': b64(user.keyPem) },
        },
      ],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin' } }],
      'current-context': 'test',
    },
    null,
    2,
  );
}

export interface ControlPlaneOptions {
  /** Told about each step as it starts ("starting etcd", ...), for a progress line. */
  onStep?: (step: string) => void;
  /**
   * false: no kube-controller-manager (benchmarks of other controllers: it adds API traffic of
   * its own and would create a ReplicaSet per Deployment). Default true.
   */
  controllerManager?: boolean;
  /**
   * Address the API server binds to and advertises (default 127.0.0.1). A node's pods reach the
   * API server here through the `kubernetes` Service, so its serving certificate carries it as an
   * IP SAN.
   */
  bindAddress?: string;
  /** The Service range (default 10.96.0.0/24); its first address, the `kubernetes` Service, is an IP SAN. */
  serviceCidr?: string;
  /**
   * true: the API server keeps the `kubernetes` Service's endpoints (lease reconciler) so pods
   * can reach it; default false (`--endpoint-reconciler-type=none`, nothing is scheduled anyway).
   */
  reconcileEndpoints?: boolean;
  /** `--authorization-mode` (default RBAC; a cluster with a kubelet wants Node,RBAC). */
  authorizationModes?: string[];
  /** `--feature-gates` for kube-apiserver and kube-controller-manager (and a node's components). */
  featureGates?: Record<string, boolean>;
  /** `--runtime-config` entries, e.g. `certificates.k8s.io/v1beta1=true`. */
  runtimeConfig?: string[];
  /** `--enable-admission-plugins` beyond the default set (e.g. NodeRestriction). */
  admissionPlugins?: string[];
  /**
   * true: the API server gets a kubelet client certificate (for logs, exec, port-forward),
   * verifies kubelets' serving certificates against the cluster CA and reaches them by InternalIP.
   */
  kubeletClient?: boolean;
  /** kube-controller-manager controllers to run beyond the default set here (e.g. nodelifecycle). */
  enableControllers?: string[];
  /** More kube-controller-manager flags (e.g. `--node-monitor-period=1s`). */
  controllerManagerArgs?: string[];
}

/** `--feature-gates` value: `A=true,B=false`, sorted, or undefined when there are none. */
export function featureGatesArg(gates: Record<string, boolean> | undefined): string | undefined {
  const entries = Object.entries(gates ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length > 0 ? entries.map(([k, v]) => `${k}=${v}`).join(',') : undefined;
}

/** The first host address of an IPv4 CIDR (10.96.0.0/24 → 10.96.0.1): the `kubernetes` Service's IP. */
export function firstHostAddress(cidr: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const n = m.slice(1, 5).reduce((acc, o) => acc * 256 + Number(o), 0) + 1;
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/**
 * etcd → kube-apiserver (RBAC, SA token signing) → kube-controller-manager (CSR signing), on
 * loopback, everything (data, certificates, logs) under `dir`. Used by the test harness and by
 * `cert-rotator demo`.
 */
export async function startControlPlane(
  bins: ControlPlaneBinaries,
  dir: string,
  options: ControlPlaneOptions = {},
): Promise<ControlPlane> {
  const step = options.onStep ?? (() => undefined);
  const t0 = Date.now();
  const logDir = join(dir, 'logs');
  const pki = join(dir, 'pki');
  await mkdir(pki, { recursive: true });
  for (const [what, bin] of Object.entries(bins)) {
    if (!existsSync(bin)) throw new Error(`${what} binary not found at ${bin}: run npm run provision`);
  }

  step('generating the cluster CA and certificates');
  const bindAddress = options.bindAddress ?? '127.0.0.1';
  const serviceCidr = options.serviceCidr ?? '10.96.0.0/24';
  const ca: TestCA = await makeCA('cert-rotator-test-ca');
  const serving = await issueLeaf(ca, {
    commonName: 'kube-apiserver',
    dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
    ipAddresses: [...new Set(['127.0.0.1', bindAddress, firstHostAddress(serviceCidr)])],
    usage: 'server',
  });
  const kubeletClient = options.kubeletClient
    ? await issueLeaf(ca, {
        commonName: 'kube-apiserver-kubelet-client',
        organizations: ['system:masters'],
        usage: 'client',
      })
    : undefined;
  const admin = await issueLeaf(ca, {
    commonName: 'admin',
    organizations: ['system:masters'],
    usage: 'client',
  });
  const sa = await makeSigningKey();
  const files = {
    ca: join(pki, 'ca.crt'),
    caKey: join(pki, 'ca.key'),
    servingCert: join(pki, 'apiserver.crt'),
    servingKey: join(pki, 'apiserver.key'),
    saKey: join(pki, 'sa.key'),
    saPub: join(pki, 'sa.pub'),
    kubeletClientCert: join(pki, 'apiserver-kubelet-client.crt'),
    kubeletClientKey: join(pki, 'apiserver-kubelet-client.key'),
  };
  await Promise.all([
    ...(kubeletClient
      ? [
          writeFile(files.kubeletClientCert, kubeletClient.certPem),
          writeFile(files.kubeletClientKey, kubeletClient.keyPem, { mode: 0o600 }),
        ]
      : []),
    writeFile(files.ca, ca.certPem),
    writeFile(files.caKey, ca.keyPem, { mode: 0o600 }),
    writeFile(files.servingCert, serving.certPem),
    writeFile(files.servingKey, serving.keyPem, { mode: 0o600 }),
    writeFile(files.saKey, sa.privatePem, { mode: 0o600 }),
    writeFile(files.saPub, sa.publicPem),
  ]);

  const peers: Peer[] = [];
  let launched: Launched;
  try {
    launched = await launch(bins, dir, {
      ca,
      admin,
      files,
      logDir,
      peers,
      step,
      controllerManager: options.controllerManager !== false,
      options: { ...options, bindAddress, serviceCidr },
    });
  } catch (err) {
    // A half-started control plane is stopped, not left to the exit handler.
    for (const p of [...peers].reverse()) await p.stop();
    throw err;
  }
  const { apiServerUrl, etcdUrl, kubeconfigPath, startApi, startEtcd } = launched;
  let api = launched.api;
  let etcd = launched.etcd;
  return {
    apiServerUrl,
    etcdUrl,
    kubeconfigPath,
    caPem: ca.certPem,
    ca,
    pkiDir: pki,
    peers,
    startedInMs: Date.now() - t0,
    async stop() {
      // Reverse start order: controllers first, etcd last.
      for (const p of [...peers].reverse()) await p.stop();
    },
    async restartApiServer() {
      await api.stop();
      const idx = peers.indexOf(api);
      api = await startApi();
      peers[idx] = api;
    },
    async restartEtcd() {
      await etcd.stop();
      const idx = peers.indexOf(etcd);
      // A loaded machine may not have released the old member's ports or data-dir lock yet.
      for (let attempt = 1; ; attempt++) {
        try {
          etcd = await startEtcd();
          break;
        } catch (err) {
          if (attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 1_000 * attempt));
        }
      }
      peers[idx] = etcd;
    },
  };
}

/** Controllers that make no sense here (no cloud, no node IPAM, no volumes) unless asked for. */
const OFF_BY_DEFAULT = [
  'nodeipam',
  'nodelifecycle',
  'cloud-node-lifecycle',
  'service-lb-controller',
  'route',
  'persistentvolume-binder',
  'attachdetach',
  'ttl',
  'bootstrapsigner',
  'tokencleaner',
];

function kcmControllers(enable: string[]): string {
  return ['*', ...OFF_BY_DEFAULT.filter((c) => !enable.includes(c)).map((c) => `-${c}`)].join(',');
}

interface Launched {
  apiServerUrl: string;
  etcdUrl: string;
  kubeconfigPath: string;
  api: Peer;
  startApi(): Promise<Peer>;
  etcd: Peer;
  startEtcd(): Promise<Peer>;
}

async function launch(
  bins: ControlPlaneBinaries,
  dir: string,
  ctx: {
    ca: TestCA;
    admin: { certPem: string; keyPem: string };
    files: Record<
      | 'ca'
      | 'caKey'
      | 'servingCert'
      | 'servingKey'
      | 'saKey'
      | 'saPub'
      | 'kubeletClientCert'
      | 'kubeletClientKey',
      string
    >;
    logDir: string;
    peers: Peer[];
    step: (what: string) => void;
    controllerManager: boolean;
    options: ControlPlaneOptions & { bindAddress: string; serviceCidr: string };
  },
): Promise<Launched> {
  const { ca, admin, files, logDir, peers, step, options } = ctx;
  const gates = featureGatesArg(options.featureGates);
  const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  step('starting etcd');
  const etcdArgs = [
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=${etcdUrl}`,
    `--advertise-client-urls=${etcdUrl}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
    `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
    '--unsafe-no-fsync',
    '--log-level=warn',
  ];
  const startEtcd = async (): Promise<Peer> => {
    const peer = await startPeer('etcd', bins.etcd, etcdArgs, { logDir });
    try {
      await waitFor('etcd /health', async () => {
        if (!isAlive(peer.pid)) throw new Error(`etcd exited; see ${peer.logFile}`);
        const res = await fetch(`${etcdUrl}/health`);
        return res.ok;
      });
    } catch (err) {
      await peer.stop();
      throw err;
    }
    return peer;
  };
  const etcd = await startEtcd();
  peers.push(etcd);

  const apiServerUrl = `https://${options.bindAddress}:${apiPort}`;
  const apiArgs = [
    `--etcd-servers=${etcdUrl}`,
    `--bind-address=${options.bindAddress}`,
    `--advertise-address=${options.bindAddress}`,
    `--secure-port=${apiPort}`,
    `--tls-cert-file=${files.servingCert}`,
    `--tls-private-key-file=${files.servingKey}`,
    `--client-ca-file=${files.ca}`,
    `--cert-dir=${join(dir, 'apiserver-certs')}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${files.saPub}`,
    `--service-account-signing-key-file=${files.saKey}`,
    `--authorization-mode=${(options.authorizationModes ?? ['RBAC']).join(',')}`,
    `--service-cluster-ip-range=${options.serviceCidr}`,
    `--endpoint-reconciler-type=${options.reconcileEndpoints ? 'lease' : 'none'}`,
    '--allow-privileged=true',
    '--profiling=false',
    '--v=1',
    ...(gates ? [`--feature-gates=${gates}`] : []),
    ...(options.runtimeConfig?.length ? [`--runtime-config=${options.runtimeConfig.join(',')}`] : []),
    ...(options.admissionPlugins?.length
      ? [`--enable-admission-plugins=${options.admissionPlugins.join(',')}`]
      : []),
    ...(options.kubeletClient
      ? [
          `--kubelet-client-certificate=${files.kubeletClientCert}`,
          `--kubelet-client-key=${files.kubeletClientKey}`,
          `--kubelet-certificate-authority=${files.ca}`,
          '--kubelet-preferred-address-types=InternalIP',
        ]
      : []),
  ];
  const startApi = async () => {
    const api = await startPeer('kube-apiserver', bins.kubeApiserver, apiArgs, { logDir });
    await waitFor(
      'kube-apiserver /readyz',
      async () => {
        if (!isAlive(api.pid)) throw new Error(`kube-apiserver exited; see ${api.logFile}`);
        const res = await httpsGet(`${apiServerUrl}/readyz`, {
          ca: ca.certPem,
          cert: admin.certPem,
          key: admin.keyPem,
        });
        return res.status === 200;
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    return api;
  };
  step('starting kube-apiserver');
  const api = await startApi();
  peers.push(api);

  const kubeconfigPath = join(dir, 'admin.kubeconfig');
  await writeFile(kubeconfigPath, kubeconfigYaml(apiServerUrl, ca.certPem, admin), { mode: 0o600 });

  if (ctx.controllerManager) {
    step('starting kube-controller-manager');
    const kcm = await startPeer(
      'kube-controller-manager',
      bins.kubeControllerManager,
      [
        `--kubeconfig=${kubeconfigPath}`,
        `--cluster-signing-cert-file=${files.ca}`,
        `--cluster-signing-key-file=${files.caKey}`,
        `--root-ca-file=${files.ca}`,
        `--service-account-private-key-file=${files.saKey}`,
        '--use-service-account-credentials=false',
        '--leader-elect=false',
        '--secure-port=0',
        `--controllers=${kcmControllers(options.enableControllers ?? [])}`,
        '--v=1',
        ...(gates ? [`--feature-gates=${gates}`] : []),
        ...(options.controllerManagerArgs ?? []),
      ],
      { logDir },
    );
    peers.push(kcm);
    // The service-account controller creating "default" in namespace default proves kcm is working.
    await waitFor(
      'kube-controller-manager to create the default ServiceAccount',
      async () => {
        if (!isAlive(kcm.pid)) throw new Error(`kube-controller-manager exited; see ${kcm.logFile}`);
        const res = await httpsGet(`${apiServerUrl}/api/v1/namespaces/default/serviceaccounts/default`, {
          ca: ca.certPem,
          cert: admin.certPem,
          key: admin.keyPem,
        });
        return res.status === 200;
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    );
  }

  return { apiServerUrl, etcdUrl, kubeconfigPath, api, startApi, etcd, startEtcd };
}
