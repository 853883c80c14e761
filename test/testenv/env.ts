import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { type Bind, startBind } from './bind.ts';
import { makeCA } from './certs.ts';
import { type ControlPlane, startControlPlane } from './control-plane.ts';
import { type Pebble, startPebble } from './pebble.ts';

export interface Binaries {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  helm: string;
  pebble: string;
  challtestsrv: string;
  promtool: string;
  named: string;
  nsupdate: string;
  dig: string;
}

const PROVISION = new URL('./provision.sh', import.meta.url).pathname;

export function cacheDir(): string {
  return process.env.CERT_ROTATOR_CACHE ?? join(homedir(), '.cache', 'cert-rotator');
}

/** The CR_* variables provision.sh wrote; runs it first if it has never run here. */
function provisioned(): { envFile: string; vars: Record<string, string> } {
  const envFile = join(cacheDir(), 'env.sh');
  if (!existsSync(envFile)) execFileSync('bash', [PROVISION], { stdio: 'inherit' });
  const vars: Record<string, string> = {};
  for (const line of readFileSync(envFile, 'utf8').split('\n')) {
    const m = /^export (CR_[A-Z_]+)="(.*)"$/.exec(line);
    if (m?.[1] && m[2] !== undefined) vars[m[1]] = m[2];
  }
  return { envFile, vars };
}

/** One tool that provisioning built, by its env.sh name (CR_ACTIONLINT, ...), for the one test that uses it. */
export function provisionedTool(key: string): string {
  const { envFile, vars } = provisioned();
  const v = vars[key];
  if (!v) throw new Error(`${envFile} lacks ${key}: run npm run provision`);
  return v;
}

/** Binary paths written by provision.sh; runs it first if it has never run here. */
export function binaries(): Binaries {
  const { envFile, vars } = provisioned();
  const need = (k: string): string => {
    const v = vars[k];
    if (!v) throw new Error(`${envFile} lacks ${k}: run npm run provision`);
    return v;
  };
  return {
    etcd: need('CR_ETCD'),
    kubeApiserver: need('CR_KUBE_APISERVER'),
    kubeControllerManager: need('CR_KUBE_CONTROLLER_MANAGER'),
    helm: need('CR_HELM'),
    pebble: need('CR_PEBBLE'),
    challtestsrv: need('CR_PEBBLE_CHALLTESTSRV'),
    promtool: need('CR_PROMTOOL'),
    named: need('CR_NAMED'),
    nsupdate: need('CR_NSUPDATE'),
    dig: need('CR_DIG'),
  };
}

/** What the test files get through vitest's inject('testEnv'): plain data only. */
export interface TestEnvInfo {
  runDir: string;
  kubeconfigPath: string;
  apiServerUrl: string;
  clusterCaPem: string;
  acme: {
    directoryUrl: string;
    tlsCaPem: string;
    httpPort: number;
    challtestsrvManagementUrl: string;
  };
  bind: {
    nameserver: string;
    zone: string;
    tsigKeyName: string;
    tsigAlgorithm: string;
    tsigSecret: string;
  };
  bins: Binaries;
  pids: Record<string, number>;
  startupMs: Record<string, number>;
}

export interface TestEnv {
  info: TestEnvInfo;
  controlPlane: ControlPlane;
  pebble: Pebble;
  bind: Bind;
  stop(): Promise<void>;
}

export async function makeRunDir(prefix = 'cert-rotator-test-'): Promise<string> {
  return await mkdtemp(join(tmpdir(), prefix));
}

/** Starts every peer, in parallel where they do not depend on each other. */
export async function startTestEnv(runDir?: string): Promise<TestEnv> {
  const dir = runDir ?? (await makeRunDir());
  const bins = binaries();
  const timed = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
    const t0 = Date.now();
    const v = await f();
    return [v, Date.now() - t0];
  };
  const acmeTlsCa = await makeCA('cert-rotator-test-pebble-tls');
  const started = await Promise.allSettled([
    timed(() =>
      startControlPlane(
        {
          etcd: bins.etcd,
          kubeApiserver: bins.kubeApiserver,
          kubeControllerManager: bins.kubeControllerManager,
        },
        join(dir, 'cluster'),
      ),
    ),
    timed(() =>
      startPebble({ pebble: bins.pebble, challtestsrv: bins.challtestsrv }, acmeTlsCa, join(dir, 'acme')),
    ),
    timed(() => startBind(bins.named, bins.dig, join(dir, 'dns'))),
  ]);
  const stopAll = async () => {
    await Promise.all(started.map((s) => (s.status === 'fulfilled' ? s.value[0].stop() : undefined)));
  };
  const failed = started.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed.length > 0) {
    await stopAll();
    throw new Error(
      `test environment failed to start (logs in ${dir}):\n${failed.map((f) => String(f.reason)).join('\n')}`,
    );
  }
  const [[cp, cpMs], [pebble, pebbleMs], [bind, bindMs]] = started.map(
    (s) => (s as PromiseFulfilledResult<[unknown, number]>).value,
  ) as [[ControlPlane, number], [Pebble, number], [Bind, number]];
  const pids: Record<string, number> = {};
  for (const p of [...cp.peers, ...pebble.peers, bind.peer]) pids[p.name] = p.pid;
  return {
    info: {
      runDir: dir,
      kubeconfigPath: cp.kubeconfigPath,
      apiServerUrl: cp.apiServerUrl,
      clusterCaPem: cp.caPem,
      acme: {
        directoryUrl: pebble.directoryUrl,
        tlsCaPem: pebble.tlsCaPem,
        httpPort: pebble.httpPort,
        challtestsrvManagementUrl: pebble.challtestsrvManagementUrl,
      },
      bind: {
        nameserver: bind.nameserver,
        zone: bind.zone,
        tsigKeyName: bind.tsigKeyName,
        tsigAlgorithm: bind.tsigAlgorithm,
        tsigSecret: bind.tsigSecret,
      },
      bins,
      pids,
      startupMs: { controlPlane: cpMs, pebble: pebbleMs, bind: bindMs },
    },
    controlPlane: cp,
    pebble,
    bind,
    stop: stopAll,
  };
}

/**
 * A control plane of one's own (etcd, kube-apiserver, kube-controller-manager) in a fresh run
 * directory, for a test that restarts the API server or a benchmark that fills it, with an admin
 * KubeConfig for it. The caller stops it.
 */
export async function startOwnControlPlane(
  prefix: string,
  opts: { controllerManager?: boolean } = {},
): Promise<{ plane: ControlPlane; kubeConfig: k8s.KubeConfig; dir: string }> {
  const dir = await makeRunDir(prefix);
  const bins = binaries();
  const plane = await startControlPlane(
    { etcd: bins.etcd, kubeApiserver: bins.kubeApiserver, kubeControllerManager: bins.kubeControllerManager },
    join(dir, 'cluster'),
    opts,
  );
  const kubeConfig = new k8s.KubeConfig();
  kubeConfig.loadFromFile(plane.kubeconfigPath);
  return { plane, kubeConfig, dir };
}
