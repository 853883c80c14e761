import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { certificateParts } from '../../../src/pki/der.ts';
import * as der from '../../../src/pki/der-write.ts';
import {
  certificatesFromPem,
  issueCertificate,
  KEY_ALGORITHMS,
  readCertificateSummary,
} from '../../../src/pki/index.ts';
import { DAY, identity, keyFor, makeRootCa } from './fixtures.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('DER writer', () => {
  it('encodes the primitive types as X.690 DER', () => {
    expect(hex(der.oid('2.5.29.17'))).toBe('0603551d11');
    expect(hex(der.oid('1.2.840.113549.1.1.11'))).toBe('06092a864886f70d01010b');
    expect(hex(der.oid('1.3.6.1.5.5.7.3.1'))).toBe('06082b06010505070301');
    // KeyUsage: digitalSignature; +keyEncipherment; CA (digitalSignature, keyCertSign, cRLSign).
    expect(hex(der.namedBits(1))).toBe('03020780');
    expect(hex(der.namedBits(1 | 4))).toBe('030205a0');
    expect(hex(der.namedBits(1 | 32 | 64))).toBe('03020186');
    expect(hex(der.namedBits(1 << 8))).toBe('0303070080'); // decipherOnly: second octet
    expect(hex(der.unsignedInteger(Uint8Array.of(0x7f)))).toBe('02017f');
    expect(hex(der.unsignedInteger(Uint8Array.of(0x80)))).toBe('02020080');
    expect(hex(der.unsignedInteger(Uint8Array.of(0, 0, 1)))).toBe('020101');
    expect(hex(der.unsignedInteger(Uint8Array.of(0)))).toBe('020100');
    expect(hex(der.tlv(0x04, new Uint8Array(200))).slice(0, 6)).toBe('0481c8');
    expect(hex(der.tlv(0x04, new Uint8Array(300))).slice(0, 8)).toBe('0482012c');
    expect(Buffer.from(der.time(Date.UTC(2049, 11, 31, 23, 59, 59, 999)).subarray(2)).toString()).toBe(
      '491231235959Z',
    );
    expect(der.time(Date.UTC(2049, 0, 1))[0]).toBe(0x17);
    expect(Buffer.from(der.time(Date.UTC(2050, 0, 1, 0, 0, 0)).subarray(2)).toString()).toBe(
      '20500101000000Z',
    );
    expect(der.time(Date.UTC(1949, 11, 31))[0]).toBe(0x18);
    expect(() => der.oid('1')).toThrow(RangeError);
  });
});

describe('issued certificates are canonical DER that other parsers read the same way', () => {
  for (const alg of KEY_ALGORITHMS) {
    it(`${alg}: CA-issued leaf and self-signed root re-serialize byte for byte`, async () => {
      const now = Date.now();
      const ca = await makeRootCa(alg, `Writer ${alg}`, now);
      const leaf = await issueCertificate({
        subjectKeyPem: await keyFor(alg),
        identity: identity({
          dnsNames: ['a.example.com', '*.b.example.com'],
          ipAddresses: ['10.0.0.1', '2001:db8::1'],
          uris: ['spiffe://cluster.local/ns/x/sa/y'],
        }),
        organizations: ['Org A', 'Org Ä'],
        notBefore: now,
        notAfter: now + 60 * 365 * DAY, // past 2050: GeneralizedTime
        issuer: ca,
      });
      for (const pem of [leaf.certPem, ca.certPem]) {
        const raw = certificatesFromPem(pem)[0]!;
        const reencoded = new Uint8Array(AsnConvert.serialize(AsnConvert.parse(raw, Certificate)));
        expect(hex(reencoded)).toBe(hex(raw));
      }
      const node = new X509Certificate(leaf.certPem);
      const caNode = new X509Certificate(ca.certPem);
      expect(node.verify(caNode.publicKey)).toBe(true);
      expect(node.checkIssued(caNode)).toBe(true);
      expect(node.subjectAltName).toBe(
        'DNS:a.example.com, DNS:*.b.example.com, IP Address:10.0.0.1, IP Address:2001:DB8:0:0:0:0:0:1, URI:spiffe://cluster.local/ns/x/sa/y',
      );
      expect(new Date(node.validTo).getUTCFullYear()).toBeGreaterThanOrEqual(2050);
      const p = new x509.X509Certificate(leaf.certPem);
      expect(p.subject).toBe('O=Org A, O=Org Ä');
      expect(p.getExtension(x509.SubjectAlternativeNameExtension)?.critical).toBe(true);
      const ski = p.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
      expect(ski).toBe(hex(new Uint8Array(await p.publicKey.getKeyIdentifier())));
      const caSki = new x509.X509Certificate(ca.certPem).getExtension(
        x509.SubjectKeyIdentifierExtension,
      )?.keyId;
      expect(p.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId).toBe(caSki);
      expect(await p.verify({ publicKey: new x509.X509Certificate(ca.certPem).publicKey })).toBe(true);
    });
  }
});

describe('subjectKeyIdentifier as read for an issuer', () => {
  it('is read from the CA certificate; a malformed one does not fail the read but unmakes the CA (as OpenSSL)', async () => {
    const ca = await makeRootCa('ecdsa-p256', 'SKI CA');
    const raw = certificatesFromPem(ca.certPem)[0]!;
    const ski = new x509.X509Certificate(ca.certPem).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    expect(hex(certificateParts(raw).subjectKeyId!)).toBe(ski);
    // extnID 2.5.29.14, extnValue OCTET STRING { OCTET STRING keyId }: make the inner one a NULL tag.
    const at = Buffer.from(raw).indexOf(Buffer.from('0603551d0e04', 'hex'));
    expect(at).toBeGreaterThan(0);
    const broken = Uint8Array.from(raw);
    expect(broken[at + 7]).toBe(0x04);
    broken[at + 7] = 0x05;
    expect(certificateParts(broken).subjectKeyId).toBeUndefined();
    const summary = readCertificateSummary(broken);
    expect(summary.isCA).toBe(false);
    expect(summary.problems.map((p) => p.field)).toEqual(['subjectKeyIdentifier']);
    expect(new X509Certificate(broken).ca).toBe(false);
  });
});
