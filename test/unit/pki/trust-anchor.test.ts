import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateKey, issueCertificate, trustAnchors } from '../../../src/pki/index.ts';

const NOW = Date.now();
const DAY = 86_400_000;
interface Ca {
  certPem: string;
  keyPem: string;
}

async function ca(cn: string, parent?: Ca): Promise<Ca> {
  const keyPem = (await generateKey('ecdsa-p256')).privateKeyPem;
  const { certPem } = await issueCertificate({
    subjectKeyPem: keyPem,
    identity: { commonName: cn, dnsNames: [], ipAddresses: [], uris: [] },
    notBefore: NOW - DAY,
    notAfter: NOW + 30 * DAY,
    issuer: parent ?? 'self',
    isCA: true,
  });
  return { certPem, keyPem };
}

const cns = (pem: string) =>
  (pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n/g) ?? []).map(
    (p) => new X509Certificate(p).subject,
  );

describe('trustAnchors: what a verifier must trust for a CA', () => {
  it('a root is its own anchor; old and new roots of a rollover are both kept, in order, once each', async () => {
    const [a, b] = [await ca('root A'), await ca('root B')];
    expect(cns(trustAnchors([a.certPem], []))).toEqual(['CN=root A']);
    expect(cns(trustAnchors([b.certPem, a.certPem, b.certPem], []))).toEqual(['CN=root B', 'CN=root A']);
  });

  it('an intermediate is anchored at its root, found in its own chain or in the pool (ca.crt)', async () => {
    const root = await ca('root');
    const mid = await ca('mid', root);
    expect(cns(trustAnchors([mid.certPem + root.certPem], []))).toEqual(['CN=root']);
    expect(cns(trustAnchors([mid.certPem], [root.certPem]))).toEqual(['CN=root']);
    // Two levels, the root only in the pool.
    const low = await ca('low', mid);
    expect(cns(trustAnchors([low.certPem + mid.certPem], [root.certPem]))).toEqual(['CN=root']);
  });

  it('two intermediates of one root (an intermediate rollover) need one anchor: the root', async () => {
    const root = await ca('root');
    const [oldMid, newMid] = [await ca('mid', root), await ca('mid', root)];
    expect(cns(trustAnchors([newMid.certPem, oldMid.certPem], [root.certPem]))).toEqual(['CN=root']);
  });

  it('without its root anywhere, the topmost certificate found; a same-name impostor is not a parent', async () => {
    const root = await ca('root');
    const mid = await ca('mid', root);
    expect(cns(trustAnchors([mid.certPem], []))).toEqual(['CN=mid']);
    const impostor = await ca('root'); // the root's name, another key: it did not sign mid
    expect(cns(trustAnchors([mid.certPem], [impostor.certPem]))).toEqual(['CN=mid']);
  });

  it('skips empty and unreadable texts', async () => {
    const root = await ca('root');
    expect(cns(trustAnchors([undefined, '', root.certPem, 'not pem'], ['garbage']))).toEqual(['CN=root']);
  });
});
