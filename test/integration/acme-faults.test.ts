import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueLeaf, makeCA } from '../testenv/certs.ts';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { orderCount, type Pebble, startPebble } from '../testenv/pebble.ts';
import {
  decoded,
  eventsFor,
  makeLeaf,
  tlsSecret,
  waitForRevision as waitForSecretRevision,
} from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const A = 'cert-rotator.io/';
const DAY = 86_400_000;
const EAB_KID = 'kid-cert-rotator';
const EAB_HMAC = 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W';

let core: k8s.CoreV1Api;
let eabPebble: Pebble;
let noncePebble: Pebble;
let plainPebble: Pebble;
let fake: Server;
let controller: ControllerProcess;

function acmeIssuer(
  name: string,
  p: { directoryUrl: string; tlsCaPem: string; httpPort: number },
  extra = {},
) {
  return {
    name,
    acme: {
      server: p.directoryUrl,
      caBundle: p.tlsCaPem,
      accountKeySecret: { namespace: ns(), name: `${name}-account` },
      solvers: [{ http01: { address: `127.0.0.1:${p.httpPort}` } }],
      ...extra,
    },
  };
}

const waitForRevision = (name: string, timeoutMs = 30_000) =>
  waitForSecretRevision(core, ns(), name, '1', timeoutMs);

async function waitForFailure(name: string, match: RegExp): Promise<k8s.CoreV1Event> {
  return await waitFor(`RenewalFailed on ${name} matching ${match}`, async () =>
    (await eventsFor(core, ns(), name)).find(
      (e) => e.reason === 'RenewalFailed' && match.test(e.message ?? ''),
    ),
  );
}

beforeAll(async () => {
  const env = testEnv();
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-acme-faults-'));
  const bins = { pebble: env.bins.pebble, challtestsrv: env.bins.challtestsrv };
  const tlsCa = await makeCA('cert-rotator-test-pebble-faults');
  [eabPebble, noncePebble, plainPebble] = await Promise.all([
    startPebble(bins, tlsCa, join(dir, 'eab'), {
      externalAccountBindingRequired: true,
      eabKeys: { [EAB_KID]: EAB_HMAC },
    }),
    startPebble(bins, tlsCa, join(dir, 'nonce'), { env: { PEBBLE_WFE_NONCEREJECT: '50' } }),
    startPebble(bins, tlsCa, join(dir, 'plain'), {}),
  ]);
  // A fake ACME server (no real program answers 503 + Retry-After on demand): directory + busy nonce.
  const fakeTls = await issueLeaf(tlsCa, {
    commonName: 'fake-acme',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  fake = createServer({ cert: fakeTls.certPem, key: fakeTls.keyPem }, (req, res) => {
    const base = `https://127.0.0.1:${(fake.address() as { port: number }).port}`;
    if (req.url === '/dir') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          newNonce: `${base}/nonce`,
          newAccount: `${base}/acct`,
          newOrder: `${base}/order`,
        }),
      );
      return;
    }
    res.writeHead(503, { 'retry-after': '7200', 'content-type': 'application/problem+json' }).end(
      JSON.stringify({
        type: 'urn:ietf:params:acme:error:rateLimited',
        detail: 'busy, come back in two hours',
      }),
    );
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  const fakeUrl = `https://127.0.0.1:${(fake.address() as { port: number }).port}/dir`;

  await core.createNamespacedSecret({
    namespace: ns(),
    body: { metadata: { name: 'eab' }, type: 'Opaque', stringData: { hmac: EAB_HMAC } },
  });
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    issuers: [
      acmeIssuer('eab', eabPebble, {
        externalAccountBinding: {
          keyId: EAB_KID,
          hmacKeySecret: { namespace: ns(), name: 'eab', key: 'hmac' },
        },
      }),
      acmeIssuer('nonce', noncePebble),
      acmeIssuer('plain', plainPebble),
      acmeIssuer('busy', { directoryUrl: fakeUrl, tlsCaPem: tlsCa.certPem, httpPort: plainPebble.httpPort }),
    ],
  });
  controller = startControllerProcess({ configPath, kubeconfigPath: env.kubeconfigPath });
  await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
});

afterAll(async () => {
  await killAllControllers();
  fake?.close();
  await Promise.all([eabPebble?.stop(), noncePebble?.stop(), plainPebble?.stop()]);
});

async function expiring(name: string, issuer: string, dnsNames: string[]): Promise<void> {
  const old = await makeLeaf({ dnsNames, fromMs: -DAY, toMs: 60_000 });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret(name, old, { [`${A}enabled`]: 'true', [`${A}issuer`]: issuer }),
  });
}

describe('ACME failures and account variants against Pebble (real)', () => {
  it('registers with External Account Binding on a Pebble that requires it', async () => {
    await expiring('eab-web', 'eab', ['eab.example.test']);
    const s = await waitForRevision('eab-web');
    expect(new X509Certificate(decoded(s, 'tls.crt')).subjectAltName).toBe('DNS:eab.example.test');
  });

  it('still issues when Pebble rejects half of all nonces (badNonce retried)', async () => {
    await expiring('nonce-web', 'nonce', ['nonce-a.example.test', 'nonce-b.example.test']);
    const s = await waitForRevision('nonce-web');
    expect(new X509Certificate(decoded(s, 'tls.crt')).subjectAltName).toBe(
      'DNS:nonce-a.example.test, DNS:nonce-b.example.test',
    );
    const pebbleLog = await readFile(
      noncePebble.peers.find((p) => p.name === 'pebble')?.logFile ?? '',
      'utf8',
    );
    expect(pebbleLog).toContain('reject 50% of good nonces');
  });

  it('a name the CA refuses: RenewalFailed with the problem detail, backoff in minutes, one order only', async () => {
    await expiring('refused', 'plain', ['blocked-domain.example']);
    const event = await waitForFailure('refused', /rejectedIdentifier/);
    expect(event.message).toContain('issuer "plain"');
    const next = Number(/next attempt in (\d+)s/.exec(event.message ?? '')?.[1]);
    expect(next).toBeGreaterThanOrEqual(60);
    expect(await orderCount(plainPebble)).toBe(1);
    // Poke the Secret (a watch event) and give a hot loop every chance to show itself.
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'refused' });
    s.metadata = { ...s.metadata, labels: { poked: 'yes' } };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'refused', body: s });
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await orderCount(plainPebble)).toBe(1);
    const failures = (await eventsFor(core, ns(), 'refused')).filter((e) => e.reason === 'RenewalFailed');
    expect(failures.reduce((n, e) => n + (e.count ?? 1), 0)).toBe(1);
  });

  it('a CA that answers 503 with Retry-After (fake server): next attempt after Retry-After, not by sleeping', async () => {
    const t0 = Date.now();
    await expiring('busy-web', 'busy', ['busy.example.test']);
    const event = await waitForFailure('busy-web', /answered 503/);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(event.message).toContain('issuer "busy"');
    expect(event.message).toContain('next attempt in 7200s');
  });
});
