import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificatesFromPem, readCertificateSummary } from '../../src/pki/index.ts';
import { certificateHash } from '../../src/rollout/hash.ts';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { decoded, makeLeaf, makeTestCA, tlsSecret, waitForRevision } from '../testenv/tls-fixtures.ts';

/** The rollout hash and ca.crt: what a CA rollover relies on to roll workloads when trust changes. */
const ns = useNamespace(import.meta.url);
const HOUR = 3_600_000;
const A = 'cert-rotator.io/';
const HASH = `${A}certificate-hash`;
const BASELINE = 'status.cert-rotator.io/trust-baseline';

let core: k8s.CoreV1Api;
let apps: k8s.AppsV1Api;
let controller: ControllerProcess;
let configPath: string;

const b64 = (text: string) => Buffer.from(text).toString('base64');

function leafFingerprint(secret: k8s.V1Secret): string {
  const der = certificatesFromPem(decoded(secret, 'tls.crt'))[0];
  if (!der) throw new Error('no certificate');
  const s = readCertificateSummary(der);
  return `${s.serialHex}:${s.spkiSha256}`;
}

async function startController(): Promise<void> {
  controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  await controller.waitForLog('the rollout index', (l) => l.msg === 'rollout index ready', 60_000);
}

async function deployment(name: string, secret: string): Promise<void> {
  await apps.createNamespacedDeployment({
    namespace: ns(),
    body: {
      metadata: { name },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
            volumes: [{ name: 'tls', secret: { secretName: secret } }],
          },
        },
      },
    },
  });
  await controller.waitForLog(
    `deployment/${name} indexed`,
    (l) => l.msg === 'workload indexed' && l.workload === `deployment/${ns()}/${name}`,
  );
}

const readDeployment = (name: string) => apps.readNamespacedDeployment({ namespace: ns(), name });

async function setCaCrt(name: string, pem: string | undefined): Promise<k8s.V1Secret> {
  const s = await core.readNamespacedSecret({ namespace: ns(), name });
  const data = { ...s.data };
  if (pem === undefined) delete data['ca.crt'];
  else data['ca.crt'] = b64(pem);
  s.data = data;
  return await core.replaceNamespacedSecret({ namespace: ns(), name, body: s });
}

beforeAll(async () => {
  const kc = adminKubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  apps = kc.makeApiClient(k8s.AppsV1Api);
  const ca = await makeTestCA('trust-rollout CA');
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-trust-'));
  configPath = await writeConfig(dir, {
    namespaces: [ns()],
    defaults: { issuer: 'internal-ca' },
    issuers: [{ name: 'internal-ca', ca: { secret: { namespace: ns(), name: 'internal-ca' } } }],
    rollout: { debounce: '1s' },
  });
  await startController();
});

afterAll(async () => {
  await killAllControllers();
});

describe('a change of ca.crt alone rolls the workloads once (real API server)', () => {
  it('rolls on a widened and on a narrowed trust; a controller restart rolls nothing more', async () => {
    const pair = await makeLeaf({ dnsNames: ['web.example.com'], fromMs: -6 * HOUR, toMs: 4 * HOUR });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('web-tls', pair, { [`${A}enabled`]: 'true', [`${A}renew-before`]: '5h' }),
    });
    await deployment('web', 'web-tls');
    const renewed = await waitForRevision(core, ns(), 'web-tls', '1');
    const leaf = leafFingerprint(renewed);
    // The renewal recorded the trust it wrote; the hash is the one earlier versions computed.
    expect(renewed.metadata?.annotations?.[BASELINE]).toMatch(/^[0-9a-f]{32}$/);
    const first = await waitFor('web rolled to the renewed leaf', async () => {
      const d = await readDeployment('web');
      const hash = d.spec?.template.metadata?.annotations?.[HASH];
      return hash === certificateHash([{ name: 'web-tls', fingerprint: leaf }]) ? d : undefined;
    });
    const g1 = first.metadata?.generation ?? 0;

    // Trust widened: the CA plus a second one, the leaf unchanged.
    const caPem = decoded(renewed, 'ca.crt');
    const other = await makeTestCA('trust-rollout next CA');
    await setCaCrt('web-tls', caPem + other.certPem);
    const widened = await waitFor('web rolled for the widened ca.crt', async () => {
      const d = await readDeployment('web');
      return (d.metadata?.generation ?? 0) > g1 ? d : undefined;
    });
    expect(widened.metadata?.generation).toBe(g1 + 1);
    const widenedHash = widened.spec?.template.metadata?.annotations?.[HASH];
    expect(widenedHash).not.toBe(first.spec?.template.metadata?.annotations?.[HASH]);

    // Narrowed back to the CA alone: ca.crt equals the baseline again, so the hash is the first one.
    await setCaCrt('web-tls', caPem);
    const narrowed = await waitFor('web rolled for the narrowed ca.crt', async () => {
      const d = await readDeployment('web');
      return (d.metadata?.generation ?? 0) > g1 + 1 ? d : undefined;
    });
    expect(narrowed.spec?.template.metadata?.annotations?.[HASH]).toBe(
      certificateHash([{ name: 'web-tls', fingerprint: leaf }]),
    );
    // Another widening, then a controller restart: the rolled workload is rolled exactly once.
    await setCaCrt('web-tls', other.certPem + caPem);
    const g3 = await waitFor('web rolled again', async () => {
      const g = (await readDeployment('web')).metadata?.generation ?? 0;
      return g === g1 + 3 ? g : undefined;
    });
    expect(await controller.stop()).toBe(0);
    await startController();
    // A probe renewal after the restart: its rollout comes after any start-up patch would have.
    const probe = await makeLeaf({ dnsNames: ['probe.example.com'], fromMs: -6 * HOUR, toMs: 4 * HOUR });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('probe-tls', probe, { [`${A}enabled`]: 'true' }),
    });
    await deployment('probe', 'probe-tls');
    const p = await core.readNamespacedSecret({ namespace: ns(), name: 'probe-tls' });
    p.metadata = { ...p.metadata, annotations: { ...p.metadata?.annotations, [`${A}renew-before`]: '5h' } };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'probe-tls', body: p });
    await waitFor('probe rolled', async () =>
      (await readDeployment('probe')).spec?.template.metadata?.annotations?.[HASH] ? true : undefined,
    );
    expect((await readDeployment('web')).metadata?.generation).toBe(g3);
    expect(controller.logs.filter((l) => l.msg === 'workload restarted').map((l) => l.workload)).toEqual([
      `deployment/${ns()}/probe`,
    ]);
  });

  it('a Secret written before the trust baseline existed rolls nothing for its ca.crt (an upgrade rolls nothing)', async () => {
    const ca = await makeTestCA('legacy CA');
    const pair = await makeLeaf({
      dnsNames: ['legacy.example.com'],
      fromMs: -HOUR,
      toMs: 30 * 24 * HOUR,
      ca,
    });
    const legacy = await core.createNamespacedSecret({
      namespace: ns(),
      body: {
        ...tlsSecret('legacy-tls', pair, { [`${A}enabled`]: 'true' }),
        data: { 'tls.crt': b64(pair.certPem), 'tls.key': b64(pair.keyPem), 'ca.crt': b64(ca.certPem) },
      },
    });
    // As cert-rotator 0.1 left it: a workload carrying the hash of the leaf alone.
    const hash = certificateHash([{ name: 'legacy-tls', fingerprint: leafFingerprint(legacy) }]);
    await apps.createNamespacedDeployment({
      namespace: ns(),
      body: {
        metadata: { name: 'legacy' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'legacy' } },
          template: {
            metadata: { labels: { app: 'legacy' }, annotations: { [HASH]: hash } },
            spec: {
              containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
              volumes: [{ name: 'tls', secret: { secretName: 'legacy-tls' } }],
            },
          },
        },
      },
    });
    await controller.waitForLog(
      'deployment/legacy indexed',
      (l) => l.msg === 'workload indexed' && l.workload === `deployment/${ns()}/legacy`,
    );
    const g0 = (await readDeployment('legacy')).metadata?.generation;
    await setCaCrt('legacy-tls', `${ca.certPem}${(await makeTestCA('x')).certPem}`);
    await controller.stop();
    await startController(); // the start-up check compares every workload that carries a hash
    const after = await readDeployment('legacy');
    expect(after.metadata?.generation).toBe(g0);
    expect(after.spec?.template.metadata?.annotations?.[HASH]).toBe(hash);
  });
});
