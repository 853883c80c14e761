/**
 * Issuer policy over the whole identity, against the real API server: a CA issuer with only
 * allowedDomains refuses a CN, an IP SAN or a URI SAN no list allows — including ones it would
 * copy from the Secret's own tls.crt — with an IssuerNotAllowed event naming the value, and
 * writes nothing; with the lists for them, the same Secret is renewed.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  certificatesFromPem,
  generateKey,
  issueCertificate,
  readCertificateSummary,
} from '../../src/pki/index.ts';
import { killAllControllers, startControllerProcess, writeConfig } from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { decoded, eventsFor, makeTestCA, tlsSecret } from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const A = 'cert-rotator.io/';
const MIN = 60_000;
let core: k8s.CoreV1Api;

async function expiringPair(identity: {
  commonName?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  uris?: string[];
}) {
  const key = await generateKey('ecdsa-p256');
  const now = Date.now();
  const cert = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { dnsNames: [], ipAddresses: [], uris: [], ...identity },
    notBefore: now - 10 * MIN,
    notAfter: now + 2 * MIN,
    issuer: 'self',
  });
  return { certPem: cert.certPem, keyPem: key.privateKeyPem };
}

async function refusal(name: string): Promise<string> {
  const event = await waitFor(`an IssuerNotAllowed event on ${name}`, async () =>
    (await eventsFor(core, ns(), name)).find((e) => e.reason === 'IssuerNotAllowed'),
  );
  return event.message ?? '';
}

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const ca = await makeTestCA();
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-identity-'));
  const caRef = { secret: { namespace: ns(), name: 'internal-ca' } };
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    issuers: [
      { name: 'domains-only', ca: caRef, allowedDomains: ['*.example.com'] },
      {
        name: 'full',
        ca: caRef,
        allowedDomains: ['*.example.com'],
        allowedIPs: ['10.0.0.0/8'],
        allowedURIs: ['spiffe://cluster.local/ns/*/sa/*'],
      },
    ],
  });
  const controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
});

afterAll(async () => {
  await killAllControllers();
});

describe('issuer policy covers the whole identity', () => {
  it('refuses CN evil.example.org with allowedDomains *.example.com, naming it; nothing written', async () => {
    const pair = await expiringPair({ dnsNames: ['app.example.com'] });
    const created = await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('cn', pair, {
        [`${A}enabled`]: 'true',
        [`${A}issuer`]: 'domains-only',
        [`${A}common-name`]: 'evil.example.org',
      }),
    });
    expect(await refusal('cn')).toContain('does not allow common name "evil.example.org"');
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'cn' });
    expect(decoded(s, 'tls.crt')).toBe(pair.certPem);
    expect(s.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
  });

  it('refuses an IP SAN and a URI SAN copied from the current tls.crt when no list allows them', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('ip', await expiringPair({ dnsNames: ['a.example.com'], ipAddresses: ['10.1.2.3'] }), {
        [`${A}enabled`]: 'true',
        [`${A}issuer`]: 'domains-only',
      }),
    });
    expect(await refusal('ip')).toContain('does not allow IP address "10.1.2.3" (no allowedIPs');
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('uri', await expiringPair({ uris: ['spiffe://cluster.local/ns/x/sa/admin'] }), {
        [`${A}enabled`]: 'true',
        [`${A}issuer`]: 'domains-only',
      }),
    });
    expect(await refusal('uri')).toContain(
      'does not allow URI "spiffe://cluster.local/ns/x/sa/admin" (no allowedURIs',
    );
  });

  it('with allowedIPs and allowedURIs the same identity is renewed, names kept', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret(
        'allowed',
        await expiringPair({
          dnsNames: ['a.example.com'],
          ipAddresses: ['10.1.2.3'],
          uris: ['spiffe://cluster.local/ns/x/sa/y'],
        }),
        { [`${A}enabled`]: 'true', [`${A}issuer`]: 'full' },
      ),
    });
    const s = await waitFor('allowed to be renewed', async () => {
      const x = await core.readNamespacedSecret({ namespace: ns(), name: 'allowed' });
      return x.metadata?.annotations?.[`${A}revision`] === '1' ? x : undefined;
    });
    const leaf = readCertificateSummary(certificatesFromPem(decoded(s, 'tls.crt'))[0] as Uint8Array);
    expect(leaf.ipAddresses).toEqual(['10.1.2.3']);
    expect(leaf.uris).toEqual(['spiffe://cluster.local/ns/x/sa/y']);
    // An IP outside the CIDR is still refused by the same issuer.
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret(
        'outside',
        await expiringPair({ dnsNames: ['b.example.com'], ipAddresses: ['192.168.0.1'] }),
        {
          [`${A}enabled`]: 'true',
          [`${A}issuer`]: 'full',
        },
      ),
    });
    expect(await refusal('outside')).toContain('"192.168.0.1" (allowedIPs: 10.0.0.0/8)');
  });
});
