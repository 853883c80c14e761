import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Server } from 'node:tls';
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
import { decoded, makeLeaf, makeTestCA, tlsSecret, waitForRevision } from '../testenv/tls-fixtures.ts';
import { type Child, startSidecar, stopAllChildren } from './fixtures/sidecar-process.ts';

/**
 * Mutual TLS across a CA rollover, counted handshake by handshake — on loopback, NOT on the e2e
 * node: the API server, kube-controller-manager, the controller and the sidecar are the real
 * programs; the two "workloads" are processes of this test. The server takes its Secret's
 * files when its Deployment's template changes (what a rollout gives a new pod, without the
 * kubelet's delay); the client's files are kept by a real `cert-rotator sidecar --secret`.
 * Each side verifies its peer against its own ca.crt. The flag-day control replaces a CA in
 * place with the rollover off and must see failures, so the counting can fail.
 */
const ns = useNamespace(import.meta.url);
const HOUR = 3_600_000;
const A = 'cert-rotator.io/';
const PROBE_MS = 50;
const MIN_PER_PHASE = 10;

let core: k8s.CoreV1Api;
let apps: k8s.AppsV1Api;
let controller: ControllerProcess;
let kubeconfigPath: string;
const servers: Server[] = [];
const timers: Array<ReturnType<typeof setInterval>> = [];

async function managed(name: string, issuer: string, restart: string): Promise<void> {
  const pair = await makeLeaf({ dnsNames: [`${name}.example.com`], fromMs: -6 * HOUR, toMs: 4 * HOUR });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret(name, pair, {
      [`${A}enabled`]: 'true',
      [`${A}issuer`]: issuer,
      [`${A}renew-before`]: '5h',
      [`${A}restart`]: restart,
    }),
  });
}

async function deployment(name: string, secret: string): Promise<void> {
  await apps.createNamespacedDeployment({
    namespace: ns(),
    body: {
      metadata: { name },
      spec: {
        replicas: 0,
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
}

async function secretFiles(name: string): Promise<{ cert: string; key: string; ca: string }> {
  const s = await core.readNamespacedSecret({ namespace: ns(), name });
  return { cert: decoded(s, 'tls.crt'), key: decoded(s, 'tls.key'), ca: decoded(s, 'ca.crt') };
}

/** A server that takes its Secret's files at start and whenever its Deployment's template changes. */
async function rolloutServer(secret: string, deploymentName: string): Promise<number> {
  const files = await secretFiles(secret);
  const server = createServer({ ...files, requestCert: true, rejectUnauthorized: true }, (socket) =>
    socket.end('ok'),
  );
  servers.push(server);
  let generation = (await apps.readNamespacedDeployment({ namespace: ns(), name: deploymentName })).metadata
    ?.generation;
  let busy = false;
  timers.push(
    setInterval(() => {
      if (busy) return;
      busy = true;
      void (async () => {
        const g = (await apps.readNamespacedDeployment({ namespace: ns(), name: deploymentName })).metadata
          ?.generation;
        if (g !== generation) {
          server.setSecureContext({ ...(await secretFiles(secret)), requestCert: true } as never);
          generation = g;
        }
      })()
        .catch(() => undefined)
        .finally(() => {
          busy = false;
        });
    }, 100),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

/** One handshake from the client's current files (the sidecar's directory) to the server. */
async function handshake(dir: string, port: number, servername: string): Promise<string | undefined> {
  const [cert, key, ca] = await Promise.all(
    ['tls.crt', 'tls.key', 'ca.crt'].map((f) => readFile(join(dir, f), 'utf8')),
  );
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername, cert, key, ca }, () => {
      // The server checks the client after its Finished: read its answer to know it accepted.
      socket.once('data', () => {
        socket.destroy();
        resolve(undefined);
      });
    });
    socket.once('error', (err) => resolve(err.message));
    socket.once('end', () => resolve('closed by the server'));
  });
}

interface Counts {
  ok: number;
  failed: number;
  errors: Set<string>;
}

/** Probes continuously, counting by the label `phase()` gives at each attempt. */
function prober(dir: string, port: number, servername: string, phase: () => string) {
  const counts = new Map<string, Counts>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const label = phase();
      const error = await handshake(dir, port, servername);
      const c = counts.get(label) ?? { ok: 0, failed: 0, errors: new Set<string>() };
      if (error === undefined) c.ok++;
      else {
        c.failed++;
        c.errors.add(error);
      }
      counts.set(label, c);
      await new Promise((r) => setTimeout(r, PROBE_MS));
    }
  })();
  return {
    counts,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

function sidecarFor(secret: string, dir: string): Child {
  return startSidecar([
    '--secret',
    secret,
    '--dir',
    dir,
    '--dns-names',
    `${secret}.example.com`,
    '--kubeconfig',
    kubeconfigPath,
    '--namespace',
    ns(),
    '--metrics-address',
    '127.0.0.1:0',
  ]);
}

const report = (counts: Map<string, Counts>) =>
  [...counts].map(([p, c]) => `${p}: ${c.ok + c.failed} attempted, ${c.failed} failed`).join('; ');

beforeAll(async () => {
  const kc = adminKubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  apps = kc.makeApiClient(k8s.AppsV1Api);
  kubeconfigPath = testEnv().kubeconfigPath;
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret('rolling-ca', await makeTestCA('rolling CA 1')),
  });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret('flag-ca', await makeTestCA('flag CA 1')),
  });
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-handshakes-'));
  const ca = (name: string, rollover: Record<string, unknown>) => ({
    name,
    ca: { secret: { namespace: ns(), name: `${name.split('-')[0]}-ca` }, rollover },
  });
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    defaults: { issuer: 'rolling-ca' },
    issuers: [
      ca('rolling-ca', {
        trustPropagation: '3s',
        maxWait: '30s',
        reissue: { maxPerMinute: 100 },
        retireAfter: '4s',
        checkInterval: '1s',
      }),
      ca('flag-ca', { enabled: false }),
    ],
    rollout: { debounce: '1s' },
  });
  controller = startControllerProcess({ configPath, kubeconfigPath });
  await controller.waitForLog('the rollout index', (l) => l.msg === 'rollout index ready', 60_000);
  // The server is restarted by rollout; the client reloads through its sidecar (restart: none).
  await managed('srv', 'rolling-ca', 'auto');
  await managed('cli', 'rolling-ca', 'none');
  await managed('fsrv', 'flag-ca', 'auto');
  await managed('fcli', 'flag-ca', 'none');
  for (const name of ['srv', 'cli', 'fsrv', 'fcli']) await waitForRevision(core, ns(), name, '1');
  await deployment('srv', 'srv');
  await deployment('fsrv', 'fsrv');
});

afterAll(async () => {
  for (const t of timers) clearInterval(t);
  for (const s of servers) s.close();
  await stopAllChildren();
  await killAllControllers();
});

describe('mutual TLS across a CA rollover (loopback processes, real API server, controller and sidecar)', () => {
  it('a full rollover: no failed handshake in any phase', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-cli-'));
    const sidecar = sidecarFor('cli', dir);
    await sidecar.waitForLog('the first swap', (l) => l.msg === 'files swapped');
    const port = await rolloutServer('srv', 'srv');
    let phase = 'before';
    const watch = setInterval(() => {
      void core
        .readNamespacedSecret({ namespace: ns(), name: 'rolling-ca' })
        .then((s) => {
          const p = s.metadata?.annotations?.['status.cert-rotator.io/ca-rollover-phase'];
          if (p) phase = p;
          else if (phase !== 'before') phase = 'after';
        })
        .catch(() => undefined);
    }, 100);
    timers.push(watch);
    const probe = prober(dir, port, 'srv.example.com', () => phase);
    await waitFor('handshakes before the rollover', async () =>
      (probe.counts.get('before')?.ok ?? 0) >= MIN_PER_PHASE ? true : undefined,
    );
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('rolling-next', await makeTestCA('rolling CA 2')),
    });
    const ca = await core.readNamespacedSecret({ namespace: ns(), name: 'rolling-ca' });
    ca.metadata = {
      ...ca.metadata,
      annotations: { ...ca.metadata?.annotations, [`${A}next-ca`]: 'rolling-next' },
    };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'rolling-ca', body: ca });
    await waitFor('the rollover to finish', async () => (phase === 'after' ? true : undefined), {
      timeoutMs: 120_000,
    });
    await waitFor('handshakes after the rollover', async () =>
      (probe.counts.get('after')?.ok ?? 0) >= MIN_PER_PHASE ? true : undefined,
    );
    await probe.stop();
    clearInterval(watch);
    console.log(`[handshakes] rollover — ${report(probe.counts)}`);
    for (const p of ['before', 'Trust', 'Propagate', 'Reissue', 'Retire', 'after']) {
      const c = probe.counts.get(p);
      expect(c?.failed, `${p}: ${[...(c?.errors ?? [])].join(', ')}`).toBe(0);
      expect(c?.ok ?? 0, p).toBeGreaterThanOrEqual(MIN_PER_PHASE);
    }
    // The server really moved: its leaf now comes from CA 2, its trust is CA 2 alone.
    const srv = await core.readNamespacedSecret({ namespace: ns(), name: 'srv' });
    expect(decoded(srv, 'ca.crt')).toContain('-----BEGIN CERTIFICATE-----');
    expect(decoded(srv, 'ca.crt').match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    await sidecar.stop();
  });

  it('negative control: the CA replaced in place with the rollover off (a flag day) fails handshakes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-fcli-'));
    const sidecar = sidecarFor('fcli', dir);
    await sidecar.waitForLog('the first swap', (l) => l.msg === 'files swapped');
    const port = await rolloutServer('fsrv', 'fsrv');
    let phase = 'before';
    const probe = prober(dir, port, 'fsrv.example.com', () => phase);
    await waitFor('handshakes before the swap', async () =>
      (probe.counts.get('before')?.ok ?? 0) >= MIN_PER_PHASE ? true : undefined,
    );
    // The flag day: a new CA written over the old one, then the server's certificate comes due.
    const next = await makeTestCA('flag CA 2');
    const ca = await core.readNamespacedSecret({ namespace: ns(), name: 'flag-ca' });
    ca.data = {
      ...ca.data,
      'tls.crt': Buffer.from(next.certPem).toString('base64'),
      'tls.key': Buffer.from(next.keyPem).toString('base64'),
    };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'flag-ca', body: ca });
    await new Promise((r) => setTimeout(r, 6000)); // past the issuer's 5 s reuse of the CA it read
    phase = 'server renewed';
    const fsrv = await core.readNamespacedSecret({ namespace: ns(), name: 'fsrv' });
    fsrv.metadata = {
      ...fsrv.metadata,
      annotations: { ...fsrv.metadata?.annotations, [`${A}renew-requested-at`]: 'flag-day' },
    };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'fsrv', body: fsrv });
    await waitFor('failed handshakes after the flag day', async () =>
      (probe.counts.get('server renewed')?.failed ?? 0) >= MIN_PER_PHASE ? true : undefined,
    );
    await probe.stop();
    console.log(`[handshakes] flag-day control — ${report(probe.counts)}`);
    expect(probe.counts.get('before')?.failed).toBe(0);
    expect(probe.counts.get('server renewed')?.failed ?? 0).toBeGreaterThanOrEqual(MIN_PER_PHASE);
    await sidecar.stop();
  });
});
