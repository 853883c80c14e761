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
const RETRY_MS = 1_000;
let core: k8s.CoreV1Api;
let configPath: string;

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

const renewals = (logs: Array<Record<string, unknown>>) =>
  logs.filter((l) => l.msg === 'certificate renewed').length;

describe('two controllers with leader election on a Lease', () => {
  it('only the leader writes; a killed leader is replaced within the lease duration; SIGTERM hands over at once', async () => {
    const kubeconfigPath = testEnv().kubeconfigPath;
    const a = startControllerProcess({ configPath, kubeconfigPath });
    await a.waitForLog('A to lead', (l) => l.msg === 'became leader');
    const b = startControllerProcess({ configPath, kubeconfigPath });
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
    const lease = await adminKubeConfig()
      .makeApiClient(k8s.CoordinationV1Api)
      .readNamespacedLease({ namespace: ns(), name: 'cert-rotator' });
    expect(lease.spec?.leaseDurationSeconds).toBe(LEASE_MS / 1000);
    expect(String(lease.spec?.renewTime)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

    // Crash of the leader: B must wait out the lease, and take over within it (+ one retry).
    const killedAt = Date.now();
    await a.kill();
    await b.waitForLog('B to lead', (l) => l.msg === 'became leader', 30_000);
    const failoverMs = Date.now() - killedAt;
    expect(failoverMs).toBeLessThanOrEqual(LEASE_MS + 2 * RETRY_MS + 1_000);
    expect(failoverMs).toBeGreaterThanOrEqual(LEASE_MS - 2 * RETRY_MS);
    const second = await dueSecrets('second', 3);
    await allAtRevisionOne([...first, ...second]);
    expect(renewals(b.logs)).toBe(3); // and nothing of the first batch renewed twice

    // Clean shutdown releases the lease: C takes over without waiting for it to expire.
    const c = startControllerProcess({ configPath, kubeconfigPath });
    await c.waitForLog('C to list', (l) => l.msg === 'initial list processed');
    const stoppedAt = Date.now();
    expect(await b.stop()).toBe(0);
    expect(b.logs.some((l) => l.msg === 'lease released')).toBe(true);
    await c.waitForLog('C to lead', (l) => l.msg === 'became leader', 30_000);
    const handoverMs = Date.now() - stoppedAt;
    expect(handoverMs).toBeLessThan(LEASE_MS - RETRY_MS);
    process.stdout.write(
      `[leader-election] failover after SIGKILL ${failoverMs} ms, after SIGTERM ${handoverMs} ms\n`,
    );
    expect(await c.stop()).toBe(0);
  });
});
