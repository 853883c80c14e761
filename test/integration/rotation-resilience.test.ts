import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import * as k8s from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { SecretController } from '../../src/controller/controller.ts';
import { buildIssuers } from '../../src/issuers/index.ts';
import { makeClients } from '../../src/kube/client.ts';
import { EventRecorder } from '../../src/kube/events.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import type { ControlPlane } from '../testenv/control-plane.ts';
import { killAllControllers, startControllerProcess, writeConfig } from '../testenv/controller-process.ts';
import { startOwnControlPlane } from '../testenv/env.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { decoded, makeLeaf, tlsSecret } from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const MIN = 60_000;
const DAY = 86_400_000;
const A = 'cert-rotator.io/';

afterAll(async () => {
  await killAllControllers();
});

describe('a concurrent writer', () => {
  it('makes the controller get 409 and never clobber the certificate someone else just wrote', async () => {
    const kc = adminKubeConfig();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const old = await makeLeaf({ dnsNames: ['race.example.com'], fromMs: -DAY, toMs: MIN });
    const theirs = await makeLeaf({ dnsNames: ['race.example.com'], fromMs: -MIN, toMs: 30 * DAY });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('race', old, { [`${A}enabled`]: 'true' }),
    });

    // The real API server, with one twist: just before the controller's replace reaches it, another
    // writer replaces the Secret, so the controller's resourceVersion is stale.
    const clients = makeClients(kc);
    let interfered = 0;
    const realReplace = clients.core.replaceNamespacedSecret.bind(clients.core);
    clients.core.replaceNamespacedSecret = (async (req: k8s.CoreV1ApiReplaceNamespacedSecretRequest) => {
      if (req.name === 'race' && interfered === 0) {
        interfered++;
        const current = await core.readNamespacedSecret({ namespace: ns(), name: 'race' });
        await core.replaceNamespacedSecret({
          namespace: ns(),
          name: 'race',
          body: { ...current, data: { ...current.data, ...tlsSecret('x', theirs).data } },
        });
      }
      return await realReplace(req);
    }) as typeof clients.core.replaceNamespacedSecret;

    const out = new PassThrough();
    let logText = '';
    out.on('data', (d) => {
      logText += d;
    });
    const log = createLogger({ level: 'debug', destination: out });
    const config = loadConfig(
      `namespaces: [${ns()}]\nissuers: [{ name: self, selfSigned: {} }]\ndefaults: { issuer: self }\n`,
    );
    const { issuers } = await buildIssuers(config, { readSecret: async () => undefined });
    const controller = new SecretController({
      config,
      clients,
      issuers,
      events: new EventRecorder(clients.core, log),
      log,
      metrics: new Metrics({ processMetrics: false }),
    });
    controller.start();
    try {
      await waitFor('the controller to hit the conflict', () =>
        logText.includes('Secret changed while renewing') ? true : undefined,
      );
      const seenRace = () =>
        logText.match(/"secret":"[^"]+\/race","resourceVersion":"\d+","managed":true,"msg":"Secret seen"/g)
          ?.length ?? 0;
      // The created version and the other writer's version both reached the controller.
      await waitFor("the controller to see the other writer's version", () =>
        seenRace() >= 2 ? true : undefined,
      );
      // Give any wrong second attempt the chance to happen: a later Secret renews, then compare.
      const probe = await makeLeaf({ dnsNames: ['probe.example.com'], fromMs: -DAY, toMs: MIN });
      await core.createNamespacedSecret({
        namespace: ns(),
        body: tlsSecret('probe', probe, { [`${A}enabled`]: 'true' }),
      });
      await waitFor('the probe to be renewed', async () => {
        const s = await core.readNamespacedSecret({ namespace: ns(), name: 'probe' });
        return s.metadata?.annotations?.[`${A}revision`] === '1' ? true : undefined;
      });
      const race = await core.readNamespacedSecret({ namespace: ns(), name: 'race' });
      expect(interfered).toBe(1);
      expect(decoded(race, 'tls.crt')).toBe(theirs.certPem);
      expect(decoded(race, 'tls.key')).toBe(theirs.keyPem);
      expect(race.metadata?.annotations?.[`${A}revision`]).toBeUndefined();
    } finally {
      await controller.stop();
    }
  });
});

describe('restarts', () => {
  it('a controller killed mid-way and restarted renews every Secret exactly once', async () => {
    const env = testEnv();
    const core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-restart-'));
    const configPath = await writeConfig(dir, {
      namespaces: [ns()],
      concurrency: 1,
      issuers: [{ name: 'self', selfSigned: {}, duration: '2160h' }],
      defaults: { issuer: 'self', keyAlgorithm: 'rsa-2048' },
    });
    const names = Array.from({ length: 40 }, (_, i) => `batch-${i}`);
    for (const name of names) {
      const pair = await makeLeaf({ dnsNames: [`${name}.example.com`], fromMs: -DAY, toMs: MIN });
      // RSA keys make each renewal slow enough for the kill to land mid-batch.
      await core.createNamespacedSecret({
        namespace: ns(),
        body: tlsSecret(name, pair, { [`${A}enabled`]: 'true', [`${A}key-algorithm`]: 'rsa-2048' }),
      });
    }
    const first = startControllerProcess({ configPath, kubeconfigPath: env.kubeconfigPath });
    await first.waitForLog('a first renewal', (l) => l.msg === 'certificate renewed', 60_000);
    await first.kill();
    const renewedBeforeKill = first.logs.filter((l) => l.msg === 'certificate renewed').length;

    const second = startControllerProcess({ configPath, kubeconfigPath: env.kubeconfigPath });
    const all = await waitFor(
      'every Secret of the batch to be renewed',
      async () => {
        const list = await core.listNamespacedSecret({ namespace: ns(), labelSelector: undefined });
        const batch = list.items.filter((s) => s.metadata?.name?.startsWith('batch-'));
        return batch.every((s) => s.metadata?.annotations?.[`${A}revision`]) ? batch : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    expect(all).toHaveLength(40);
    for (const s of all) expect(s.metadata?.annotations?.[`${A}revision`]).toBe('1');
    expect(renewedBeforeKill).toBeLessThan(40);
    // Every Secret at revision 1 (above) is the exactly-once proof. The log lines only have to
    // agree with it: a SIGKILL can land between a write and its log line, at most once per
    // worker (concurrency 1 here), and the second process's last line may follow its last write.
    const logged = await waitFor('the second process to log its renewals', () => {
      const n = renewedBeforeKill + second.logs.filter((l) => l.msg === 'certificate renewed').length;
      return n >= 40 - 1 ? n : undefined;
    });
    expect(logged).toBeLessThanOrEqual(40);
    expect(await second.stop()).toBe(0);
  });

  it('survives the API server going away and coming back', async () => {
    let plane: ControlPlane | undefined;
    try {
      const own = await startOwnControlPlane('cert-rotator-apirestart-');
      plane = own.plane;
      const dir = own.dir;
      const core = own.kubeConfig.makeApiClient(k8s.CoreV1Api);
      await core.createNamespace({ body: { metadata: { name: 'apps' } } });
      const configPath = await writeConfig(dir, {
        namespaces: ['apps'],
        issuers: [{ name: 'self', selfSigned: {} }],
        defaults: { issuer: 'self' },
      });
      const controller = startControllerProcess({ configPath, kubeconfigPath: plane.kubeconfigPath });
      await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
      const renewed = async (name: string) =>
        await waitFor(
          `${name} to be renewed`,
          async () => {
            const s = await core.readNamespacedSecret({ namespace: 'apps', name });
            return s.metadata?.annotations?.[`${A}revision`] === '1' ? s : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 200 },
        );
      const a = await makeLeaf({ dnsNames: ['a.example.com'], fromMs: -DAY, toMs: MIN });
      await core.createNamespacedSecret({
        namespace: 'apps',
        body: tlsSecret('before', a, { [`${A}enabled`]: 'true' }),
      });
      await renewed('before');

      await plane.restartApiServer();
      const b = await makeLeaf({ dnsNames: ['b.example.com'], fromMs: -DAY, toMs: MIN });
      await core.createNamespacedSecret({
        namespace: 'apps',
        body: tlsSecret('after', b, { [`${A}enabled`]: 'true' }),
      });
      await renewed('after');
      expect(controller.logs.some((l) => l.msg === 'Secret list/watch failed; retrying')).toBe(true);
      // The relist after the outage is not a second "initial" list.
      expect(controller.logs.filter((l) => l.msg === 'initial list processed')).toHaveLength(1);
      expect(await controller.stop()).toBe(0);
    } finally {
      await plane?.stop();
    }
  });
});
