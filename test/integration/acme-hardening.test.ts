import { mkdtemp } from 'node:fs/promises';
import { request as httpsRequest, createServer as httpsServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http01RouteName } from '../../src/issuers/acme/http01.ts';
import { pendingSecretName } from '../../src/issuers/acme/pending.ts';
import { issueLeaf, makeCA } from '../testenv/certs.ts';
import { killAllControllers, startControllerProcess, writeConfig } from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { orderCount, type Pebble, startPebble } from '../testenv/pebble.ts';
import { eventsFor, makeLeaf, tlsSecret } from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const A = 'cert-rotator.io/';
const DAY = 86_400_000;

let core: k8s.CoreV1Api;
let pebble: Pebble;
/** Pebble for the ed25519 check alone: its order count must stay 0. */
let quietPebble: Pebble;
let tamper: Server;
let ingressWatch: AbortController | undefined;
const ingressHosts = new Set<string>();

/**
 * A tampering HTTPS proxy in front of the real Pebble (no real CA sends bad authorizations on
 * demand): it forwards every request unchanged, keeping the Host header so Pebble's URLs point
 * back at the proxy, and rewrites authorization objects for names that ask for it —
 * `tamper-id.*`: the identifier becomes `evil.example.org`; `tamper-token.*`: every challenge
 * token becomes a path traversal.
 */
async function startTamperingProxy(target: URL, caPem: string, tls: { certPem: string; keyPem: string }) {
  const server = httpsServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const up = httpsRequest(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
          ca: caPem,
        },
        (upRes) => {
          const body: Buffer[] = [];
          upRes.on('data', (c: Buffer) => body.push(c));
          upRes.on('end', () => {
            let text = Buffer.concat(body).toString('utf8');
            try {
              const obj = JSON.parse(text) as {
                identifier?: { value?: string };
                challenges?: Array<{ token?: string }>;
              };
              const value = obj.identifier?.value ?? '';
              if (obj.challenges && value.startsWith('tamper-id.') && obj.identifier) {
                obj.identifier.value = 'evil.example.org';
                text = JSON.stringify(obj);
              } else if (obj.challenges && value.startsWith('tamper-token.')) {
                for (const c of obj.challenges) c.token = '../../../../etc/passwd';
                text = JSON.stringify(obj);
              }
            } catch {
              // not JSON (a certificate chain, say): unchanged
            }
            const headers = { ...upRes.headers };
            delete headers['content-length'];
            res.writeHead(upRes.statusCode ?? 502, headers).end(text);
          });
        },
      );
      up.on('error', () => res.writeHead(502).end());
      up.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

function acmeIssuer(name: string, directoryUrl: string, caPem: string, httpPort: number) {
  return {
    name,
    acme: {
      server: directoryUrl,
      caBundle: caPem,
      accountKeySecret: { namespace: ns(), name: `${name}-account` },
      // podIP makes the controller create the Service + EndpointSlice + Ingress route objects.
      solvers: [{ http01: { address: `127.0.0.1:${httpPort}`, podIP: '10.244.0.5' } }],
    },
  };
}

beforeAll(async () => {
  const env = testEnv();
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-acme-hardening-'));
  const tlsCa = await makeCA('cert-rotator-test-pebble-hardening');
  const bins = { pebble: env.bins.pebble, challtestsrv: env.bins.challtestsrv };
  [pebble, quietPebble] = await Promise.all([
    startPebble(bins, tlsCa, join(dir, 'pebble')),
    startPebble(bins, tlsCa, join(dir, 'quiet')),
  ]);
  const proxyTls = await issueLeaf(tlsCa, {
    commonName: 'tamper',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  tamper = await startTamperingProxy(new URL(pebble.directoryUrl), tlsCa.certPem, proxyTls);
  const tamperUrl = `https://127.0.0.1:${(tamper.address() as { port: number }).port}/dir`;

  // Every Ingress host ever created in the namespace, seen by a watch (not a later snapshot).
  const watch = new k8s.Watch(adminKubeConfig());
  ingressWatch = await watch.watch(
    `/apis/networking.k8s.io/v1/namespaces/${ns()}/ingresses`,
    {},
    (_type, obj: k8s.V1Ingress) => {
      for (const rule of obj.spec?.rules ?? []) if (rule.host) ingressHosts.add(rule.host);
    },
    () => undefined,
  );

  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    issuers: [
      acmeIssuer('pebble', pebble.directoryUrl, tlsCa.certPem, pebble.httpPort),
      acmeIssuer('quiet', quietPebble.directoryUrl, tlsCa.certPem, quietPebble.httpPort),
      acmeIssuer('tampered', tamperUrl, tlsCa.certPem, pebble.httpPort),
    ],
    defaults: { issuer: 'pebble' },
  });
  startControllerProcess({ configPath, kubeconfigPath: env.kubeconfigPath });
});

afterAll(async () => {
  ingressWatch?.abort();
  await killAllControllers();
  tamper?.close();
  await Promise.all([pebble?.stop(), quietPebble?.stop()]);
});

async function expiring(
  name: string,
  issuer: string,
  dnsNames: string[],
  extra: Record<string, string> = {},
) {
  const old = await makeLeaf({ dnsNames, fromMs: -DAY, toMs: 60_000 });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret(name, old, { [`${A}enabled`]: 'true', [`${A}issuer`]: issuer, ...extra }),
  });
}

async function eventOn(name: string, reason: string, match: RegExp): Promise<k8s.CoreV1Event> {
  return await waitFor(
    `${reason} on ${name} matching ${match}`,
    async () =>
      (await eventsFor(core, ns(), name)).find((e) => e.reason === reason && match.test(e.message ?? '')),
    { timeoutMs: 60_000 },
  );
}

async function revision(name: string): Promise<string | undefined> {
  const s = await core.readNamespacedSecret({ namespace: ns(), name });
  return s.metadata?.annotations?.[`${A}revision`];
}

describe('ACME hardening against the real Pebble and API server', () => {
  it('an ed25519 key with an ACME issuer is an InvalidAnnotation at once, before any order', async () => {
    await expiring('ed', 'quiet', ['ed.example.test'], { [`${A}key-algorithm`]: 'ed25519' });
    const event = await eventOn('ed', 'InvalidAnnotation', /key-algorithm.*ed25519/);
    expect(event.message).toContain('ACME issuer "quiet"');
    expect(await orderCount(quietPebble)).toBe(0);
    expect(await revision('ed')).toBeUndefined();
  });

  it('a Service of the computed HTTP-01 route name that is not ours is left alone and the issuance fails', async () => {
    const route = http01RouteName('svc-clash');
    const foreign = await core.createNamespacedService({
      namespace: ns(),
      body: {
        metadata: { name: route, labels: { app: 'somebody-elses' } },
        spec: { ports: [{ port: 443 }], selector: { app: 'somebody-elses' } },
      },
    });
    await expiring('svc-clash', 'pebble', ['svc-clash.example.test']);
    const event = await eventOn('svc-clash', 'RenewalFailed', /Service .* is not cert-rotator's/);
    expect(event.message).toContain(route);
    const after = await core.readNamespacedService({ namespace: ns(), name: route });
    expect(after.metadata?.uid).toBe(foreign.metadata?.uid);
    expect(after.metadata?.labels).toEqual({ app: 'somebody-elses' });
    expect(after.spec?.ports?.[0]?.port).toBe(443);
    expect(await revision('svc-clash')).toBeUndefined();
  });

  it('a Secret of the computed pending-order name that is not ours is left alone and the issuance fails', async () => {
    const pending = pendingSecretName('pending-clash');
    const foreign = await core.createNamespacedSecret({
      namespace: ns(),
      body: {
        metadata: { name: pending },
        type: 'Opaque',
        stringData: { 'order-url': 'mine', note: 'keep me' },
      },
    });
    await expiring('pending-clash', 'pebble', ['pending-clash.example.test']);
    const event = await eventOn(
      'pending-clash',
      'RenewalFailed',
      /Secret .*-cert-rotator-pending exists but is not/,
    );
    expect(event.message).toContain('left untouched');
    const after = await core.readNamespacedSecret({ namespace: ns(), name: pending });
    expect(after.metadata?.uid).toBe(foreign.metadata?.uid);
    expect(Buffer.from(after.data?.note ?? '', 'base64').toString()).toBe('keep me');
    expect(await revision('pending-clash')).toBeUndefined();
  });

  it('our own route objects are still replaced and removed (the check does not block the normal path)', async () => {
    await expiring('plain', 'pebble', ['plain.example.test']);
    await waitFor('plain renewed', async () => (await revision('plain')) === '1', {
      timeoutMs: 60_000,
    }).catch(async (err: unknown) => {
      const evs = (await eventsFor(core, ns(), 'plain')).map((e) => `${e.reason}: ${e.message}`);
      throw new Error(`${String(err)}; events: ${evs.join(' | ')}`);
    });
    expect(ingressHosts.has('plain.example.test')).toBe(true);
    const route = http01RouteName('plain');
    await expect(core.readNamespacedService({ namespace: ns(), name: route })).rejects.toMatchObject({
      code: 404,
    });
  });

  it('an authorization for a name that was not ordered (tampering proxy) stops the issuance before anything is presented', async () => {
    await expiring('tamper-id', 'tampered', ['tamper-id.example.test']);
    const event = await eventOn('tamper-id', 'RenewalFailed', /not a name this order asked for/);
    expect(event.message).toContain('evil.example.org');
    expect(ingressHosts.has('evil.example.org')).toBe(false);
    expect(await revision('tamper-id')).toBeUndefined();
  });

  it('a challenge token that is not base64url (tampering proxy) never becomes an Ingress path', async () => {
    await expiring('tamper-token', 'tampered', ['tamper-token.example.test']);
    const event = await eventOn('tamper-token', 'RenewalFailed', /token .* is not base64url/);
    expect(event.message).toContain('tamper-token.example.test');
    expect(ingressHosts.has('tamper-token.example.test')).toBe(false);
    expect(await revision('tamper-token')).toBeUndefined();
  });
});
