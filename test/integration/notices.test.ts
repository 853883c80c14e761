/**
 * Expiry notices without Prometheus, against the real API server: a monitored certificate with
 * 40 seconds left crosses the thresholds 30s, 15s and 0 while the controller is killed (SIGKILL,
 * no clean-up) and a new one starts in between. Each threshold gives exactly one Warning Event,
 * the record lives in cert-rotator's own ConfigMaps, and a managed certificate whose renewal is
 * not overdue gets no notice although its time left crosses the same thresholds. The notices also
 * reach a plain-JSON webhook (a loopback receiver) as firing alerts, one per threshold.
 */
import { mkdtemp } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertName, EventReason, NOTICE_RECORD_PREFIX, NOTICE_RECORD_SHARDS } from '../../src/names.ts';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { eventsFor, makeLeaf, makeTestCA, tlsSecret, waitForRevision } from '../testenv/tls-fixtures.ts';

const A = 'cert-rotator.io/';
const ns = useNamespace(import.meta.url);
let core: k8s.CoreV1Api;
let configPath = '';
const controllers: ControllerProcess[] = [];
/** What a plain-JSON webhook receiver got: each alert with its status. */
const hooked: Array<{ status: string; labels: Record<string, string> }> = [];
let receiver: Server;

/** `ns.name` → the record line, from every notice ConfigMap that exists. */
async function record(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < NOTICE_RECORD_SHARDS; i++) {
    const cm = await core
      .readNamespacedConfigMap({ namespace: ns(), name: `${NOTICE_RECORD_PREFIX}-${i}` })
      .catch(() => undefined);
    for (const [k, v] of Object.entries(cm?.data ?? {})) out.set(k, v);
  }
  return out;
}

async function notices(name: string): Promise<Array<{ reason: string; message: string; count: number }>> {
  return (await eventsFor(core, ns(), name))
    .filter(
      (e) => e.reason === EventReason.certificateExpiring || e.reason === EventReason.certificateExpired,
    )
    .map((e) => ({ reason: e.reason ?? '', message: e.message ?? '', count: e.count ?? 1 }));
}

function start(): ControllerProcess {
  const c = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  controllers.push(c);
  return c;
}

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-notices-'));
  const ca = await makeTestCA('cert-rotator notices test CA');
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
  receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      hooked.push(...(JSON.parse(body) as { alerts: typeof hooked }).alerts);
      res.writeHead(204).end();
    });
  });
  const hookPort = await new Promise<number>((resolve) =>
    receiver.listen(0, '127.0.0.1', () => resolve((receiver.address() as { port: number }).port)),
  );
  configPath = await writeConfig(dir, {
    notifications: { webhooks: [{ name: 'hook', url: `http://127.0.0.1:${hookPort}/`, format: 'json' }] },
    namespaces: [ns()],
    defaults: { issuer: 'internal-ca' },
    issuers: [{ name: 'internal-ca', ca: { secret: { namespace: ns(), name: 'internal-ca' } } }],
    notices: { thresholds: ['30s', '15s', '0'], checkInterval: '1s' },
  });
  // Managed: renewal planned 5 s before expiry, so crossing 30s and 15s is not a problem yet.
  const managed = await makeLeaf({ dnsNames: ['managed.example.com'], fromMs: -10 * 60_000, toMs: 40_000 });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret('managed', managed, { [`${A}enabled`]: 'true', [`${A}renew-before`]: '5s' }),
  });
  const monitored = await makeLeaf({
    dnsNames: ['monitored.example.com'],
    fromMs: -10 * 60_000,
    toMs: 40_000,
  });
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('monitored', monitored) });
}, 60_000);

afterAll(async () => {
  await killAllControllers();
  receiver?.close();
});

describe('expiry notices', () => {
  it('send each threshold exactly once across a controller crash and restart', async () => {
    const first = start();
    await waitFor(
      'the 30s notice',
      async () => ((await notices('monitored')).length === 1 ? true : undefined),
      {
        timeoutMs: 30_000,
        intervalMs: 200,
      },
    );
    expect((await notices('monitored'))[0]?.message).toMatch(/less than the 30s notice threshold/);
    expect([...(await record()).values()]).toEqual([expect.stringMatching(/ 30000$/)]);
    await first.kill();

    const second = start();
    await second.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
    // The record holds every threshold once the last one is sent; each was recorded before its
    // Event, and a repeat of 30s would have come at the second controller's first check.
    await waitFor(
      'all three thresholds recorded',
      async () => ((await record()).get(`${ns()}.monitored`)?.endsWith(' 30000,15000,0') ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const sent = await waitFor(
      'three notice Events',
      async () => {
        const n = await notices('monitored');
        return n.length >= 3 ? n : undefined;
      },
      { timeoutMs: 10_000 },
    );
    const byThreshold = (re: RegExp) => sent.filter((e) => re.test(e.message));
    expect(sent).toHaveLength(3);
    expect(sent.every((e) => e.count === 1)).toBe(true);
    expect(byThreshold(/less than the 30s notice threshold/)).toHaveLength(1);
    expect(byThreshold(/less than the 15s notice threshold/)).toHaveLength(1);
    expect(sent.filter((e) => e.reason === EventReason.certificateExpired)).toHaveLength(1);

    // The same notices reached the JSON webhook as firing alerts, one per threshold.
    await waitFor(
      'the expired alert at the webhook',
      () => hooked.some((a) => a.labels.alertname === AlertName.certificateExpired) || undefined,
    );
    const firing = hooked.filter((a) => a.status === 'firing' && a.labels.secret === 'monitored');
    expect(new Set(firing.map((a) => `${a.labels.alertname} ${a.labels.threshold}`))).toEqual(
      new Set([
        `${AlertName.certificateExpiring} 30s`,
        `${AlertName.certificateExpiring} 15s`,
        `${AlertName.certificateExpired} 0s`,
      ]),
    );

    // The managed certificate was renewed in time: never noticed, and its record is pruned.
    await waitForRevision(core, ns(), 'managed', '1', 30_000);
    expect(await notices('managed')).toEqual([]);
    expect([...(await record()).keys()]).toEqual([`${ns()}.monitored`]);
  }, 120_000);
});
