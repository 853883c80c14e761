import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { hostPortOf, startTcpProxy, type TcpProxy } from '../testenv/tcp-proxy.ts';
import { makeLeaf, tlsSecret } from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const A = 'cert-rotator.io/';
const LEASE_MS = 6_000;
let core: k8s.CoreV1Api;
let configPath: string;
let proxy: TcpProxy;
/** A kubeconfig whose server is the proxy: the partitioned replica talks to the API through it. */
let proxiedKubeconfig: string;

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-le-partition-'));
  configPath = await writeConfig(dir, {
    namespaces: [ns()],
    issuers: [{ name: 'self', selfSigned: {} }],
    defaults: { issuer: 'self' },
    leaderElection: { namespace: ns(), leaseDuration: '6s', renewDeadline: '3s', retryPeriod: '1s' },
  });
  const env = testEnv();
  proxy = await startTcpProxy(hostPortOf(env.apiServerUrl));
  const kc = JSON.parse(await readFile(env.kubeconfigPath, 'utf8')) as {
    clusters: Array<{ cluster: { server: string } }>;
  };
  for (const c of kc.clusters) c.cluster.server = `https://${proxy.address}`;
  proxiedKubeconfig = join(dir, 'proxied.kubeconfig');
  await writeFile(proxiedKubeconfig, JSON.stringify(kc), { mode: 0o600 });
});

afterAll(async () => {
  await killAllControllers();
  await proxy?.close();
});

async function dueSecrets(prefix: string, count: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${prefix}-${i}`;
    const pair = await makeLeaf({ dnsNames: [`${name}.example.com`], fromMs: -86_400_000, toMs: 60_000 });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret(name, pair, { [`${A}enabled`]: 'true' }),
    });
    names.push(name);
  }
  return names;
}

async function revisions(names: string[]): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const name of names) {
    const s = await core.readNamespacedSecret({ namespace: ns(), name });
    out[name] = s.metadata?.annotations?.[`${A}revision`];
  }
  return out;
}

async function allAtRevisionOne(names: string[]): Promise<void> {
  await waitFor(
    `${names.join(', ')} renewed`,
    async () => Object.values(await revisions(names)).every((r) => r === '1'),
    { timeoutMs: 60_000, intervalMs: 200 },
  );
}

const renewedBy = (c: ControllerProcess) =>
  c.logs.filter((l) => l.msg === 'certificate renewed').map((l) => String(l.secret));
const logTime = (c: ControllerProcess, msg: string): number => {
  const line = c.logs.find((l) => l.msg === msg);
  if (!line) throw new Error(`no "${msg}" in the controller log`);
  return Date.parse(String(line.time));
};
const readyz = async (c: ControllerProcess): Promise<number> =>
  (await fetch((await c.metricsUrl()).replace(/\/metrics$/, '/readyz'))).status;

describe('a leader whose connection to the API server freezes (loopback TCP proxy)', () => {
  it('stops claiming leadership within renewDeadline, exits before its lease expires, and the standby takes over alone', async () => {
    const direct = testEnv().kubeconfigPath;
    // Readiness before the first list: the proxied replica starts with its connection frozen.
    proxy.freeze();
    const a = startControllerProcess({ configPath, kubeconfigPath: proxiedKubeconfig });
    await a.metricsUrl();
    expect(await readyz(a)).toBe(503);
    proxy.thaw();
    await a.waitForLog('A to lead', (l) => l.msg === 'became leader');
    await a.waitForLog('A to list', (l) => l.msg === 'initial list processed');
    expect(proxy.accepted).toBeGreaterThan(0);
    await waitFor('A ready', async () => (await readyz(a)) === 200);

    const b = startControllerProcess({ configPath, kubeconfigPath: direct });
    await b.waitForLog('B to list', (l) => l.msg === 'initial list processed');
    // A standby is ready too: otherwise a rolling update of the Deployment could never proceed.
    expect(await readyz(b)).toBe(200);

    const before = await dueSecrets('before', 3);
    await allAtRevisionOne(before);
    expect(renewedBy(a).sort()).toEqual(before.map((n) => `${ns()}/${n}`).sort());
    expect(renewedBy(b)).toEqual([]);

    // Partition: every byte between A and the API server stops, connections stay open.
    const frozenAt = Date.now();
    proxy.freeze();
    const code = await a.exited;
    expect(code).toBe(1);
    const lostAt = logTime(a, 'could not renew the lease within the renew deadline; leadership lost');
    await b.waitForLog('B to lead', (l) => l.msg === 'became leader', 30_000);
    const tookOverAt = logTime(b, 'became leader');
    // A had given up before B could take the lease: there was never a moment with two leaders.
    expect(lostAt).toBeLessThan(tookOverAt);
    const lastAWrite = Math.max(
      0,
      ...a.logs.filter((l) => l.msg === 'certificate renewed').map((l) => Date.parse(String(l.time))),
    );
    expect(lastAWrite).toBeLessThan(tookOverAt);
    const failoverMs = tookOverAt - frozenAt;

    // The held-back bytes of the dead leader reach the API server now; they must change nothing.
    proxy.thaw();
    const after = await dueSecrets('after', 3);
    await allAtRevisionOne([...before, ...after]);
    expect(renewedBy(b).sort()).toEqual(after.map((n) => `${ns()}/${n}`).sort());
    // No Secret was written by both: each carries revision 1 (two writers would have made one 2,
    // or one of them would have logged a renewal of it), and the two logs are disjoint.
    expect(await revisions([...before, ...after])).toEqual(
      Object.fromEntries([...before, ...after].map((n) => [n, '1'])),
    );
    const both = renewedBy(a).filter((s) => renewedBy(b).includes(s));
    expect(both).toEqual([]);
    for (const name of [...before, ...after]) {
      const s = await core.readNamespacedSecret({ namespace: ns(), name });
      const managers = (s.metadata?.managedFields ?? []).map((f) => `${f.manager}/${f.operation}`);
      // The controller did write it (managedFields keep one entry per manager, not per write, so
      // the single-writer proof is the revision and the disjoint logs above).
      expect(managers.filter((m) => m === 'cert-rotator/Update')).toHaveLength(1);
    }
    const lease = await adminKubeConfig()
      .makeApiClient(k8s.CoordinationV1Api)
      .readNamespacedLease({ namespace: ns(), name: 'cert-rotator' });
    expect(lease.spec?.holderIdentity).toBe(String(b.logs.find((l) => l.msg === 'became leader')?.identity));
    process.stdout.write(
      `[leader-election] failover after a frozen connection ${failoverMs} ms (lease ${LEASE_MS} ms, renewDeadline 3000 ms); A gave up ${lostAt - frozenAt} ms after the freeze\n`,
    );
    expect(await b.stop()).toBe(0);
  });
});
