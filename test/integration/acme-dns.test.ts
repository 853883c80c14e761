import { X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsClient, parseServer } from '../../src/issuers/acme/dns/client.ts';
import { RRClass, RRType, txtRdata } from '../../src/issuers/acme/dns/wire.ts';
import { makeCA } from '../testenv/certs.ts';
import { killAllControllers, startControllerProcess, writeConfig } from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { type Pebble, startPebble } from '../testenv/pebble.ts';
import { decoded, makeLeaf, tlsSecret } from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const A = 'cert-rotator.io/';
const DAY = 86_400_000;

let core: k8s.CoreV1Api;
let pebble: Pebble;

beforeAll(async () => {
  const env = testEnv();
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-acme-dns-'));
  // A Pebble of its own that resolves through BIND, so DNS-01 TXT records come from the real zone.
  pebble = await startPebble(
    { pebble: env.bins.pebble, challtestsrv: env.bins.challtestsrv },
    await makeCA('cert-rotator-test-pebble-dns'),
    join(dir, 'pebble'),
    { dnsServer: env.bind.nameserver },
  );
  await core.createNamespacedSecret({
    namespace: ns(),
    body: { metadata: { name: 'tsig' }, type: 'Opaque', stringData: { secret: env.bind.tsigSecret } },
  });
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    defaults: { issuer: 'pebble-dns' },
    issuers: [
      {
        name: 'pebble-dns',
        acme: {
          server: pebble.directoryUrl,
          caBundle: pebble.tlsCaPem,
          accountKeySecret: { namespace: ns(), name: 'account' },
          solvers: [
            { http01: {}, selector: { dnsNames: ['never-used.example.test'] } },
            {
              dns01: {
                rfc2136: {
                  nameserver: env.bind.nameserver,
                  tsigKeyName: env.bind.tsigKeyName,
                  tsigAlgorithm: 'hmac-sha256',
                  tsigSecret: { namespace: ns(), name: 'tsig', key: 'secret' },
                },
              },
              selector: { dnsZones: [env.bind.zone] },
            },
          ],
        },
      },
    ],
  });
  const controller = startControllerProcess({ configPath, kubeconfigPath: env.kubeconfigPath });
  await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
});

afterAll(async () => {
  await killAllControllers();
  await pebble?.stop();
});

describe('DNS-01 via RFC2136 + TSIG against BIND (real) and Pebble resolving through it', () => {
  it('issues a wildcard and its base name; the TXT records are gone afterwards', async () => {
    const zone = testEnv().bind.zone;
    const names = [`*.wild.${zone}`, `wild.${zone}`];
    const old = await makeLeaf({ dnsNames: names, fromMs: -DAY, toMs: 60_000 });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('wild', old, { [`${A}enabled`]: 'true' }),
    });
    const renewed = await waitFor(
      'the wildcard Secret to be renewed',
      async () => {
        const s = await core.readNamespacedSecret({ namespace: ns(), name: 'wild' });
        return s.metadata?.annotations?.[`${A}revision`] === '1' ? s : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const x = new X509Certificate(decoded(renewed, 'tls.crt'));
    expect(x.subjectAltName).toBe(`DNS:*.wild.${zone}, DNS:wild.${zone}`);
    expect(x.issuer).toMatch(/Pebble Intermediate/);
    // Pebble really looked the TXT up through BIND (its log names the DNS-01 validation).
    const dns = new DnsClient(parseServer(testEnv().bind.nameserver));
    expect(await dns.txt(`_acme-challenge.wild.${zone}`)).toEqual([]);
  });

  it('the RFC2136 client: a signed update is served, a wrong key is refused with BADSIG/NOTAUTH', async () => {
    const env = testEnv();
    const dns = new DnsClient(parseServer(env.bind.nameserver));
    expect(await dns.findZone(`_acme-challenge.deep.below.${env.bind.zone}`)).toBe(env.bind.zone);
    const key = {
      name: env.bind.tsigKeyName,
      algorithm: 'hmac-sha256' as const,
      secret: Buffer.from(env.bind.tsigSecret, 'base64'),
    };
    const rr = {
      name: `_acme-challenge.client.${env.bind.zone}`,
      type: RRType.TXT,
      ttl: 30,
      rdata: txtRdata('v1'),
    };
    await dns.update(env.bind.zone, [{ ...rr, class: RRClass.IN }], key);
    expect(await dns.txt(rr.name)).toEqual(['v1']);
    const wrong = { ...key, secret: Buffer.alloc(32, 7) };
    await expect(
      dns.update(env.bind.zone, [{ ...rr, rdata: txtRdata('v2'), class: RRClass.IN }], wrong),
    ).rejects.toThrow(/BADSIG|NOTAUTH|REFUSED/);
    await expect(
      dns.update(env.bind.zone, [{ ...rr, rdata: txtRdata('v3'), class: RRClass.IN }]),
    ).rejects.toThrow(/REFUSED/);
    await dns.update(env.bind.zone, [{ ...rr, class: RRClass.NONE, ttl: 0 }], key);
    expect(await dns.txt(rr.name)).toEqual([]);
  });
});
