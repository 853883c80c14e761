import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ControlPlaneBinaries } from './control-plane.ts';
import type { NodeBinaries } from './node.ts';

/** Where provision.sh caches what it builds (`$CERT_ROTATOR_CACHE`, default ~/.cache/cert-rotator). */
export function cacheDir(): string {
  return process.env.CERT_ROTATOR_CACHE ?? join(homedir(), '.cache', 'cert-rotator');
}

/**
 * The provisioning script of the checkout (src/devcluster → test/testenv). The demo is a command of
 * a checkout, not of the container image; without the script it says so.
 */
export function provisionScript(): string | undefined {
  const path = fileURLToPath(new URL('../../test/testenv/provision.sh', import.meta.url));
  return existsSync(path) ? path : undefined;
}

/**
 * etcd, kube-apiserver and kube-controller-manager, provisioned if needed by `provision.sh
 * control-plane` (idempotent and cached: a second run only checks the stamps). Every line the script
 * prints goes to `progress`.
 */
export async function controlPlaneBinaries(progress: (line: string) => void): Promise<ControlPlaneBinaries> {
  const script = provisionScript();
  if (!script) {
    throw new Error(
      'cannot provision the control plane: test/testenv/provision.sh is not here (run the demo from a checkout: npm ci && npm run demo)',
    );
  }
  await runScript(script, ['control-plane'], progress);
  const envFile = join(cacheDir(), 'control-plane.env');
  const text = await readFile(envFile, 'utf8');
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^export (CR_[A-Z_]+)="(.*)"$/.exec(line);
    if (m?.[1] && m[2] !== undefined) vars.set(m[1], m[2]);
  }
  const need = (key: string): string => {
    const value = vars.get(key);
    if (!value) throw new Error(`${envFile} lacks ${key}: run npm run provision`);
    return value;
  };
  return {
    etcd: need('CR_ETCD'),
    kubeApiserver: need('CR_KUBE_APISERVER'),
    kubeControllerManager: need('CR_KUBE_CONTROLLER_MANAGER'),
  };
}

/**
 * Everything the e2e node needs (`provision.sh node`: the control plane, kubelet, kube-scheduler,
 * kube-proxy, containerd, runc, the CNI plugins, the pause and testbox images), provisioned if
 * needed; or, where it cannot be provisioned (not root), the reason in one line.
 */
export async function nodeBinaries(
  progress: (line: string) => void,
): Promise<{ bins: NodeBinaries } | { unavailable: string }> {
  const script = provisionScript();
  if (!script) return { unavailable: 'test/testenv/provision.sh is not here: the node runs from a checkout' };
  await runScript(script, ['node'], progress);
  const envFile = join(cacheDir(), 'node.env');
  const vars = await readEnv(envFile);
  const unavailable = vars.get('CR_NODE_UNAVAILABLE');
  if (unavailable) return { unavailable };
  const need = (key: string): string => {
    const value = vars.get(key);
    if (!value) throw new Error(`${envFile} lacks ${key}: run npm run provision`);
    return value;
  };
  return {
    bins: {
      etcd: need('CR_ETCD'),
      kubeApiserver: need('CR_KUBE_APISERVER'),
      kubeControllerManager: need('CR_KUBE_CONTROLLER_MANAGER'),
      kubelet: need('CR_KUBELET'),
      kubeScheduler: need('CR_KUBE_SCHEDULER'),
      kubeProxy: need('CR_KUBE_PROXY'),
      containerd: need('CR_CONTAINERD'),
      ctr: need('CR_CTR'),
      runc: need('CR_RUNC'),
      cniBinDir: need('CR_CNI_BIN_DIR'),
      pause: { archive: need('CR_PAUSE_IMAGE'), ref: need('CR_PAUSE_REF') },
      testbox: { archive: need('CR_TESTBOX_IMAGE'), ref: need('CR_TESTBOX_REF') },
    },
  };
}

async function readEnv(file: string): Promise<Map<string, string>> {
  const vars = new Map<string, string>();
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    const m = /^export (CR_[A-Z_]+)="(.*)"$/.exec(line);
    if (m?.[1] && m[2] !== undefined) vars.set(m[1], m[2]);
  }
  return vars;
}

async function runScript(script: string, args: string[], progress: (line: string) => void): Promise<void> {
  const child = spawn('bash', [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const lines = (chunk: Buffer, keep: boolean) => {
    const text = chunk.toString('utf8');
    if (keep) tail = (tail + text).slice(-4000);
    for (const line of text.split('\n')) if (line.trim() !== '') progress(line);
  };
  child.stdout.on('data', (c: Buffer) => lines(c, false));
  // Go's own output (module downloads, compile errors) is kept for the error message, not shown.
  child.stderr.on('data', (c: Buffer) => {
    tail = (tail + c.toString('utf8')).slice(-4000);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`${script} ${args.join(' ')} failed (exit ${code}):\n${tail.trim()}`);
}
