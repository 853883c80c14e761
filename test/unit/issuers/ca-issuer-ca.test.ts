import { describe, expect, it } from 'vitest';
import { CAIssuer } from '../../../src/issuers/ca.ts';
import * as w from '../../../src/pki/der-write.ts';
import { generateKey, toPem } from '../../../src/pki/index.ts';
import { buildCertificate, keys } from '../pki/differential.ts';

const NOW = Date.UTC(2026, 5, 1);

function issuerFor(certDer: Uint8Array, keyPem: string): CAIssuer {
  const data = { 'tls.crt': toPem('CERTIFICATE', certDer), 'tls.key': keyPem };
  return new CAIssuer('internal', { namespace: 'cert-rotator', name: 'ca' }, async () => ({
    resourceVersion: '1',
    data,
  }));
}

async function issueWith(ca: CAIssuer) {
  const leafKey = await generateKey('ecdsa-p256');
  return ca.issue({
    namespace: 'n',
    secretName: 's',
    identity: { dnsNames: ['a.example.com'], ipAddresses: [], uris: [] },
    keyPem: leafKey.privateKeyPem,
    now: NOW,
  });
}

describe('a ca issuer signs only with a CA by both readings, with keyCertSign', () => {
  const key = keys()[0]!.key;
  const keyPem = key.export({ type: 'pkcs8', format: 'pem' }).toString();

  it('signs with a well-formed CA', async () => {
    const issued = await issueWith(issuerFor(buildCertificate({ key, ca: true }), keyPem));
    expect(issued.chainPem).toContain('BEGIN CERTIFICATE');
  });

  it('refuses a CA whose CRL distribution points OpenSSL cannot decode (no CA to OpenSSL), naming why', async () => {
    const dp = w.sequence([w.sequence([w.tlv(0xa0, [w.tlv(0xa0, [w.tlv(0x89, Uint8Array.of(1))])])])]);
    const crlDp = w.sequence([w.oid('2.5.29.31'), w.octetString(dp)]);
    const ca = buildCertificate({ key, ca: true, extraExtensions: [crlDp] });
    await expect(issueWith(issuerFor(ca, keyPem))).rejects.toMatchObject({
      code: 'CA_INVALID',
      message: expect.stringContaining('certificate extensions is not acceptable: cRLDistributionPoints'),
    });
  });

  it('refuses a CA whose keyUsage lacks keyCertSign', async () => {
    const ca = Buffer.from(buildCertificate({ key, ca: true }));
    ca.set(w.namedBits(0x01), ca.indexOf(Buffer.from(w.namedBits(0x60)))); // same length
    await expect(issueWith(issuerFor(ca, keyPem))).rejects.toMatchObject({ code: 'CA_INVALID' });
  });
});
