import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAllControllers, startControllerProcess, writeConfig } from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { makeLeaf, tlsSecret } from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const A = 'cert-rotator.io/';
const LEASE_MS = 6_000;
let core: k8s.CoreV1Api;
let configPath: string;
let longLeaseConfigPath: string;

afterAll(async () => {
  await killAllControllers();
});

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-le-'));
  configPath = await writeConfig(dir, {
    namespaces: [ns()],
    issuers: [{ name: 'self', selfSigned: {} }],
    defaults: { issuer: 'self' },
    leaderElection: { namespace: ns(), leaseDuration: '6s', renewDeadline: '4s', retryPeriod: '1s' },
  });
  // The second leader holds the lease for a long 60 s: a successor that takes over well within
  // the test's 30 s wait can only have done so because the lease was released.
  longLeaseConfigPath = await writeConfig(
    dir,
    {
      namespaces: [ns()],
      issuers: [{ name: 'self', selfSigned: {} }],
      defaults: { issuer: 'self' },
      leaderElection: { namespace: ns(), leaseDuration: '60s', renewDeadline: '4s', retryPeriod: '1s' },
    },
    'config-long-lease.yaml',
  );
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

async function allAtRevisionOne(names: string[]): Promise<void> {
  await waitFor(
    `${names.join(', ')} renewed`,
    async () => {
      for (const name of names) {
        const s = await core.readNamespacedSecret({ namespace: ns(), name });
        if (s.metadata?.annotations?.[`${A}revision`] !== '1') return undefined;
      }
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
}

const logTime = (logs: Array<Record<string, unknown>>, msg: string): number =>
  Date.parse(String(logs.find((l) => l.msg === msg)?.time));

const renewals = (logs: Array<Record<string, unknown>>) =>
  logs.filter((l) => l.msg === 'certificate renewed').length;

describe('two controllers with leader election on a Lease', () => {
  it('only the leader writes; a killed leader is replaced once its lease expired; SIGTERM hands over without waiting for it', async () => {
    const kubeconfigPath = testEnv().kubeconfigPath;
    const a = startControllerProcess({ configPath, kubeconfigPath });
    await a.waitForLog('A to lead', (l) => l.msg === 'became leader');
    const b = startControllerProcess({ configPath: longLeaseConfigPath, kubeconfigPath });
    await b.waitForLog('B to list', (l) => l.msg === 'initial list processed');

    const first = await dueSecrets('first', 5);
    await allAtRevisionOne(first);
    expect(renewals(a.logs)).toBe(5);
    expect(renewals(b.logs)).toBe(0);
    expect(b.logs.some((l) => l.msg === 'became leader')).toBe(false);
    // The follower serves metrics too, for every Secret it sees.
    const followerMetrics = await (await fetch(await b.metricsUrl())).text();
    expect(followerMetrics).toContain(
      `cert_rotator_certificate_not_after_timestamp_seconds{namespace="${ns()}",secret="first-0"`,
    );
    const leases = adminKubeConfig().makeApiClient(k8s.CoordinationV1Api);
    const lease = await leases.readNamespacedLease({ namespace: ns(), name: 'cert-rotator' });
    expect(lease.spec?.leaseDurationSeconds).toBe(LEASE_MS / 1000);
    expect(String(lease.spec?.renewTime)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

    // Crash of the leader: B must wait out the lease before it takes over. Ordered by the one
    // machine clock both processes log with, not by how long anything took: B's takeover comes
    // at least leaseDuration after the last renewal A wrote (B counts from when it saw it).
    const killedAt = Date.now();
    await a.kill();
    const lastRenewal = Date.parse(
      String((await leases.readNamespacedLease({ namespace: ns(), name: 'cert-rotator' })).spec?.renewTime),
    );
    await b.waitForLog('B to lead', (l) => l.msg === 'became leader', 30_000);
    const tookOverAt = logTime(b.logs, 'became leader');
    expect(tookOverAt).toBeGreaterThanOrEqual(lastRenewal + LEASE_MS);
    const failoverMs = tookOverAt - killedAt;
    const second = await dueSecrets('second', 3);
    await allAtRevisionOne([...first, ...second]);
    expect(renewals(b.logs)).toBe(3); // and nothing of the first batch renewed twice

    // Clean shutdown releases the lease: C takes over without waiting for B's 60 s lease to
    // expire (the 30 s wait below is the check: only a release gets C there in time).
    const c = startControllerProcess({ configPath, kubeconfigPath });
    await c.waitForLog('C to list', (l) => l.msg === 'initial list processed');
    const stoppedAt = Date.now();
    expect(await b.stop()).toBe(0);
    expect(b.logs.some((l) => l.msg === 'lease released')).toBe(true);
    await c.waitForLog('C to lead', (l) => l.msg === 'became leader', 30_000);
    const handoverMs = logTime(c.logs, 'became leader') - stoppedAt;
    process.stdout.write(
      `[leader-election] failover after SIGKILL ${failoverMs} ms (lease ${LEASE_MS} ms), after SIGTERM ${handoverMs} ms\n`,
    );
    expect(await c.stop()).toBe(0);
  });
});
