/**
 * Webhook notifications against a real Alertmanager (Debian's 0.25): a managed Secret whose
 * renewal fails makes cert-rotator fire CertRotatorRenewalFailed at /api/v2/alerts; the alert is
 * active in Alertmanager's API just before the Secret is fixed; after the renewal the resolution
 * cert-rotator sends reaches a webhook receiver that Alertmanager notifies with send_resolved —
 * well before the last endsAt sent, so the alert cannot have lapsed on its own.
 */

import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertName, Metric } from '../../src/names.ts';
import {
  type ControllerProcess,
  killAllControllers,
  metricValue,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { freePort, waitFor } from '../testenv/net.ts';
import { type Peer, startPeer } from '../testenv/processes.ts';
import { makeLeaf, makeTestCA, tlsSecret, waitForRevision } from '../testenv/tls-fixtures.ts';

const A = 'cert-rotator.io/';
const DAY = 86_400_000;
const RESEND_MS = 20_000;
const ns = useNamespace(import.meta.url);

interface AmAlert {
  labels: Record<string, string>;
  endsAt: string;
  status: { state: string };
}
interface Notification {
  status: string;
  alerts: Array<{ status: string; labels: Record<string, string> }>;
  receivedAt: number;
}

let core: k8s.CoreV1Api;
let am: Peer;
let amUrl = '';
let receiver: Server;
const received: Notification[] = [];
let controller: ControllerProcess;

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-am-'));
  receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      received.push({ ...(JSON.parse(body) as Omit<Notification, 'receivedAt'>), receivedAt: Date.now() });
      res.writeHead(200).end();
    });
  });
  const hookPort = await new Promise<number>((resolve) =>
    receiver.listen(0, '127.0.0.1', () => resolve((receiver.address() as { port: number }).port)),
  );
  const port = await freePort();
  await writeFile(
    join(dir, 'alertmanager.yml'),
    [
      'route:',
      '  receiver: hook',
      "  group_by: ['alertname', 'namespace', 'secret']",
      '  group_wait: 1s',
      '  group_interval: 1s',
      '  repeat_interval: 1h',
      'receivers:',
      '  - name: hook',
      '    webhook_configs:',
      `      - url: http://127.0.0.1:${hookPort}/`,
      '        send_resolved: true',
      '',
    ].join('\n'),
  );
  am = await startPeer(
    'alertmanager',
    testEnv().bins.alertmanager,
    [
      `--config.file=${join(dir, 'alertmanager.yml')}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=', // no gossip: one instance, no other ports
    ],
    { logDir: dir },
  );
  amUrl = `http://127.0.0.1:${port}`;
  await waitFor(
    'Alertmanager to be ready',
    async () => (await fetch(`${amUrl}/-/ready`).catch(() => undefined))?.ok,
    {
      timeoutMs: 30_000,
    },
  );

  const ca = await makeTestCA('cert-rotator webhook test CA');
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
  // The renewal fails: rotate-key "false" with a key that is not the certificate's.
  const pair = await makeLeaf({ dnsNames: ['failing.example.com'], fromMs: -27 * DAY, toMs: 3 * DAY });
  pair.keyPem = (await makeLeaf({ dnsNames: ['other.example.com'], fromMs: -DAY, toMs: DAY })).keyPem;
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret('failing', pair, { [`${A}enabled`]: 'true', [`${A}rotate-key`]: 'false' }),
  });
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    defaults: { issuer: 'internal-ca' },
    issuers: [{ name: 'internal-ca', ca: { secret: { namespace: ns(), name: 'internal-ca' } } }],
    renewalBackoff: { base: '1s', cap: '2s' },
    notifications: {
      resendInterval: `${RESEND_MS / 1000}s`,
      webhooks: [{ name: 'alertmanager', url: amUrl, format: 'alertmanager' }],
    },
  });
  controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
}, 60_000);

afterAll(async () => {
  await killAllControllers();
  await am?.stop();
  receiver?.close();
});

async function activeAlerts(): Promise<AmAlert[]> {
  const res = await fetch(`${amUrl}/api/v2/alerts?active=true&silenced=false&inhibited=false`);
  return ((await res.json()) as AmAlert[]).filter((a) => a.labels.namespace === ns());
}

describe('webhook notifications to Alertmanager', () => {
  it('fire on a failing renewal and resolve explicitly right after the renewal', async () => {
    const firing = await waitFor(
      'CertRotatorRenewalFailed active in Alertmanager',
      async () => {
        const a = (await activeAlerts()).find(
          (x) => x.labels.alertname === AlertName.renewalFailed && x.labels.secret === 'failing',
        );
        return a?.status.state === 'active' ? a : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    // Alertmanager delivered the firing alert to the receiver too.
    await waitFor(
      'the firing notification',
      () =>
        received.some((n) => n.status === 'firing' && n.alerts.some((a) => a.labels.secret === 'failing')) ||
        undefined,
    );
    const metricsUrl = await controller.metricsUrl();
    expect(
      await metricValue(metricsUrl, Metric.notificationsTotal, { result: 'success' }),
    ).toBeGreaterThanOrEqual(1);

    // Just before the renewal: still active. Then the Secret is fixed and renewed.
    const before = await activeAlerts();
    expect(before.map((a) => `${a.labels.alertname}/${a.labels.secret}/${a.status.state}`)).toContain(
      `${AlertName.renewalFailed}/failing/active`,
    );
    const lastEndsAt = Math.max(...before.map((a) => Date.parse(a.endsAt)), Date.parse(firing.endsAt));
    await core.patchNamespacedSecret(
      {
        namespace: ns(),
        name: 'failing',
        body: { metadata: { annotations: { [`${A}rotate-key`]: 'true' } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await waitForRevision(core, ns(), 'failing', '1', 30_000);
    const renewedAt = Date.now();

    const resolved = await waitFor(
      'the resolved notification',
      () =>
        received.find(
          (n) =>
            n.status === 'resolved' &&
            n.alerts.some(
              (a) => a.labels.secret === 'failing' && a.labels.alertname === AlertName.renewalFailed,
            ),
        ),
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(resolved.receivedAt).toBeGreaterThanOrEqual(renewedAt - 2_000);
    // Sent by cert-rotator, not lapsed: well before the last endsAt it had sent (3 × 20 s ahead).
    expect(lastEndsAt - resolved.receivedAt).toBeGreaterThan(RESEND_MS);
    expect((await activeAlerts()).filter((a) => a.labels.secret === 'failing')).toEqual([]);
  }, 120_000);
});
