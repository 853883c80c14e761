import { X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectPrivateKey } from '../../src/pki/index.ts';
import { makeCA } from '../testenv/certs.ts';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { orderCount, type Pebble, startPebble } from '../testenv/pebble.ts';
import { decoded, eventsFor, makeLeaf, tlsSecret } from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const A = 'cert-rotator.io/';
const DAY = 86_400_000;

let core: k8s.CoreV1Api;
let crashPebble: Pebble;
let fallbackPebble: Pebble;
let capPebble: Pebble;
let configPath: string;
let controller: ControllerProcess;

function acmeIssuer(name: string, p: Pebble, extra: Record<string, unknown> = {}, acmeExtra = {}) {
  return {
    name,
    ...extra,
    acme: {
      server: p.directoryUrl,
      caBundle: p.tlsCaPem,
      accountKeySecret: { namespace: ns(), name: `${name}-account` },
      solvers: [{ http01: { address: `127.0.0.1:${p.httpPort}` } }],
      ...acmeExtra,
    },
  };
}

async function expiring(name: string, issuer: string, dnsNames: string[]): Promise<void> {
  const old = await makeLeaf({ dnsNames, fromMs: -DAY, toMs: 60_000 });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret(name, old, { [`${A}enabled`]: 'true', [`${A}issuer`]: issuer }),
  });
}

async function readOrUndefined(name: string): Promise<k8s.V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ namespace: ns(), name });
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

/**
 * The controller of the tests after the crash test: that test starts it once it has crashed the
 * first one; a test run on its own (or after a restart test) starts it here.
 */
function running(): ControllerProcess {
  if (!controller || controller.proc.exitCode !== null || controller.proc.signalCode !== null) {
    controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  }
  return controller;
}

beforeAll(async () => {
  const env = testEnv();
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-acme-recovery-'));
  const bins = { pebble: env.bins.pebble, challtestsrv: env.bins.challtestsrv };
  const tlsCa = await makeCA('cert-rotator-test-pebble-recovery');
  [crashPebble, fallbackPebble, capPebble] = await Promise.all([
    startPebble(bins, tlsCa, join(dir, 'crash'), {}),
    startPebble(bins, tlsCa, join(dir, 'fallback'), {}),
    startPebble(bins, tlsCa, join(dir, 'cap'), {}),
  ]);
  configPath = await writeConfig(dir, {
    namespaces: [ns()],
    // Short enough that several failures fit in a test.
    renewalBackoff: { base: '1s', cap: '2s' },
    // A short lease, so the restarted controller does not wait long for the crashed one's.
    leaderElection: { namespace: ns(), leaseDuration: '3s', renewDeadline: '2s', retryPeriod: '500ms' },
    issuers: [
      acmeIssuer('crash', crashPebble),
      acmeIssuer('refusing', fallbackPebble, { fallback: 'self', fallbackAfter: 2 }),
      acmeIssuer('capped', capPebble, {}, { maxOrdersPerHour: 2 }),
      { name: 'self', selfSigned: {} },
    ],
  });
});

afterAll(async () => {
  await killAllControllers();
  await Promise.all([crashPebble?.stop(), fallbackPebble?.stop(), capPebble?.stop()]);
});

describe('ACME crash safety, fallback and order cap against Pebble (real)', () => {
  it('a controller killed after finalize (fault injection) resumes that order on restart: one order', async () => {
    const env = testEnv();
    const crashing = startControllerProcess({
      configPath,
      kubeconfigPath: env.kubeconfigPath,
      env: { CERT_ROTATOR_TEST_CRASH_AFTER: 'finalize' },
    });
    await expiring('crash-web', 'crash', ['crash.example.test']);
    expect(await crashing.exited).toBe(137);
    expect(crashing.output()).toContain('fault injection: CERT_ROTATOR_TEST_CRASH_AFTER=finalize');

    // What the crash left: the managed Secret untouched, the pending order in its companion.
    const untouched = await core.readNamespacedSecret({ namespace: ns(), name: 'crash-web' });
    expect(untouched.metadata?.annotations?.[`${A}revision`]).toBeUndefined();
    const companion = await core.readNamespacedSecret({
      namespace: ns(),
      name: 'crash-web-cert-rotator-pending',
    });
    expect(companion.type).toBe('Opaque');
    expect(companion.metadata?.labels?.['cert-rotator.io/acme-pending-order']).toBe('true');
    expect(companion.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: 'Secret',
      name: 'crash-web',
      uid: untouched.metadata?.uid,
    });
    const pendingKey = decoded(companion, 'tls.key');
    expect(decoded(companion, 'order-url')).toContain('/my-order/');
    expect(await orderCount(crashPebble)).toBe(1);

    controller = startControllerProcess({ configPath, kubeconfigPath: env.kubeconfigPath });
    const renewed = await waitFor('crash-web to be renewed after the restart', async () => {
      const s = await core.readNamespacedSecret({ namespace: ns(), name: 'crash-web' });
      return s.metadata?.annotations?.[`${A}revision`] === '1' ? s : undefined;
    });
    await controller.waitForLog(
      'the resumed order',
      (l) => l.msg === 'resumed the ACME order persisted before a restart',
    );
    // The key written is the one persisted before the crash, and it is the certificate's.
    expect(decoded(renewed, 'tls.key')).toBe(pendingKey);
    const leaf = new X509Certificate(decoded(renewed, 'tls.crt'));
    expect(leaf.subjectAltName).toBe('DNS:crash.example.test');
    expect(leaf.publicKey.export({ format: 'der', type: 'spki' }).toString('hex')).toBe(
      (await import('node:crypto'))
        .createPublicKey(pendingKey)
        .export({ format: 'der', type: 'spki' })
        .toString('hex'),
    );
    expect(inspectPrivateKey(pendingKey).algorithm).toBe('ecdsa-p256');
    // Pebble saw exactly one new-order, and the companion is gone once the Secret is written.
    expect(await orderCount(crashPebble)).toBe(1);
    await waitFor('the companion Secret to be deleted', async () =>
      (await readOrUndefined('crash-web-cert-rotator-pending')) === undefined ? true : undefined,
    );
  });

  it('stale pending state (another issuer) is deleted and a new order placed', async () => {
    running();
    // Left behind by something else; ownerless here so it can exist before its Secret.
    await core.createNamespacedSecret({
      namespace: ns(),
      body: {
        metadata: { name: 'stale-web-cert-rotator-pending' },
        type: 'Opaque',
        stringData: {
          'tls.key': 'not a key',
          'order-url': 'https://127.0.0.1:1/my-order/gone',
          issuer: 'someone-else',
          server: 'https://elsewhere.example/dir',
          names: 'stale.example.test',
          created: new Date().toISOString(),
        },
      },
    });
    await expiring('stale-web', 'crash', ['stale.example.test']);
    const s = await waitFor('stale-web to be renewed', async () => {
      const x = await core.readNamespacedSecret({ namespace: ns(), name: 'stale-web' });
      return x.metadata?.annotations?.[`${A}revision`] === '1' ? x : undefined;
    });
    expect(new X509Certificate(decoded(s, 'tls.crt')).subjectAltName).toBe('DNS:stale.example.test');
    const dropped = await running().waitForLog(
      'stale state discarded',
      (l) => l.msg === 'discarding pending ACME order state' && String(l.secret).endsWith('/stale-web'),
    );
    expect(dropped.why).toBe('other issuer');
    expect(await orderCount(crashPebble)).toBe(2);
    await waitFor('the stale companion Secret to be gone', async () =>
      (await readOrUndefined('stale-web-cert-rotator-pending')) === undefined ? true : undefined,
    );
  });

  it('falls back to the fallback issuer after fallbackAfter consecutive failures, and says so', async () => {
    running();
    await expiring('fallback-web', 'refusing', ['blocked-domain.example']);
    const s = await waitFor(
      'fallback-web to be renewed by the fallback',
      async () => {
        const x = await core.readNamespacedSecret({ namespace: ns(), name: 'fallback-web' });
        return x.metadata?.annotations?.[`${A}revision`] === '1' ? x : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const leaf = new X509Certificate(decoded(s, 'tls.crt'));
    expect(leaf.subjectAltName).toBe('DNS:blocked-domain.example');
    expect(leaf.issuer).toBe(leaf.subject); // self-signed: the fallback issued it
    const events = await eventsFor(core, ns(), 'fallback-web');
    const failed = events.filter((e) => e.reason === 'RenewalFailed');
    expect(failed.reduce((n, e) => n + (e.count ?? 1), 0)).toBe(2);
    expect(failed[0]?.message).toMatch(/issuer "refusing".*rejectedIdentifier/);
    const renewed = events.find((e) => e.reason === 'Renewed');
    expect(renewed?.message).toContain(
      'renewed by issuer "self" as fallback for issuer "refusing" after 2 consecutive failures',
    );
    expect(await orderCount(fallbackPebble)).toBe(2);
  });

  it('caps orders per Secret per hour: the third attempt waits for the next allowed time', async () => {
    running();
    await expiring('capped-web', 'capped', ['blocked-domain.example']);
    const event = await waitFor('RenewalFailed naming the order cap', async () =>
      (await eventsFor(core, ns(), 'capped-web')).find(
        (e) => e.reason === 'RenewalFailed' && /reached the cap/.test(e.message ?? ''),
      ),
    );
    expect(event.message).toContain('2 orders in the last hour reached the cap (acme.maxOrdersPerHour)');
    const next = Number(/next attempt in (\d+)s/.exec(event.message ?? '')?.[1]);
    expect(next).toBeGreaterThan(3_500);
    expect(next).toBeLessThanOrEqual(3_600);
    expect(await orderCount(capPebble)).toBe(2);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await orderCount(capPebble)).toBe(2);
  });

  it('the order cap holds across a restart: the order times are recorded on the Secret', async () => {
    const first = running();
    const before = await orderCount(capPebble);
    await expiring('cap-restart-web', 'capped', ['blocked-domain.example']);
    const capped = (l: Record<string, unknown>) =>
      l.secret === `${ns()}/cap-restart-web` && /reached the cap/.test(String(l.msg));
    await first.waitForLog('the cap to be reached', capped, 60_000);
    expect(await orderCount(capPebble)).toBe(before + 2);
    // The log line comes before the failure's status write: wait for the write, then check it.
    // The cap's wait (the next allowed order, ~1 h) is recorded too: a new process keeps to it.
    const s = await waitFor('the cap failure recorded on the Secret', async () => {
      const read = await core.readNamespacedSecret({ namespace: ns(), name: 'cap-restart-web' });
      const next = Date.parse(read.metadata?.annotations?.['status.cert-rotator.io/next-attempt-time'] ?? '');
      return next - Date.now() > 50 * 60_000 ? read : undefined;
    });
    const recorded = s.metadata?.annotations?.['status.cert-rotator.io/acme-orders']?.split(',') ?? [];
    expect(recorded).toHaveLength(2);

    // A new process knows only what the Secret says. Without the recorded wait (as an older
    // version wrote it), it tries after the short backoff: the order times alone must stop the order.
    await first.kill();
    await core.patchNamespacedSecret(
      {
        namespace: ns(),
        name: 'cap-restart-web',
        body: { metadata: { annotations: { 'status.cert-rotator.io/next-attempt-time': null } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const second = running();
    await second.waitForLog('the restarted controller to meet the cap', capped, 60_000);
    expect(await orderCount(capPebble)).toBe(before + 2);
  });
});
