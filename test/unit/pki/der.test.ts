import 'reflect-metadata';
import {
  createHash,
  generateKeyPairSync,
  type KeyObject,
  type webcrypto,
  X509Certificate,
} from 'node:crypto';
import * as x509 from '@peculiar/x509';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type CertSummary,
  canonicalIp,
  certificateParts,
  issueCertificate,
  KEY_ALGORITHMS,
  type KeyAlgorithm,
  keyAlgorithmOfSpki,
  PkiError,
  readCertificateSummary,
} from '../../../src/pki/index.ts';
import { allKeys, type Ca, DAY, der, identity, makeRootCa, peculiarSummary } from './fixtures.ts';

function normalized(s: CertSummary) {
  return {
    notBefore: s.notBefore,
    notAfter: s.notAfter,
    serialHex: s.serialHex,
    subjectCommonName: s.subjectCommonName,
    issuerCommonName: s.issuerCommonName,
    dnsNames: s.dnsNames,
    ipAddresses: s.ipAddresses,
    uris: s.uris,
    isCA: s.isCA,
    selfIssued: s.selfIssued,
  };
}

function expectMatchesPeculiar(d: Uint8Array): CertSummary {
  const mine = readCertificateSummary(d);
  const { spki, ...theirs } = peculiarSummary(d, canonicalIp);
  expect(normalized(mine)).toEqual(theirs);
  expect(mine.spkiSha256).toBe(createHash('sha256').update(spki).digest('hex'));
  // node:crypto (OpenSSL) agrees on the validity window too.
  const n = new X509Certificate(d);
  expect(mine.notBefore).toBe(Date.parse(n.validFromDate.toISOString()));
  expect(mine.notAfter).toBe(Date.parse(n.validToDate.toISOString()));
  return mine;
}

function expectMalformed(d: Uint8Array): void {
  let thrown: unknown;
  try {
    readCertificateSummary(d);
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(PkiError);
  expect((thrown as PkiError).code).toBe('DER_MALFORMED');
}

/** Replaces the first occurrence of `find` (ASCII) in the DER with `repl` (same length). */
function patchAscii(d: Uint8Array, find: string, repl: string): Uint8Array {
  const buf = Buffer.from(d);
  const at = buf.indexOf(Buffer.from(find, 'latin1'));
  if (at < 0 || find.length !== repl.length) throw new Error(`cannot patch ${find}`);
  buf.write(repl, at, 'latin1');
  return new Uint8Array(buf);
}

let keys: Record<KeyAlgorithm, string>;
let cas: Record<KeyAlgorithm, Ca>;

beforeAll(async () => {
  keys = await allKeys();
  const entries = await Promise.all(KEY_ALGORITHMS.map(async (a) => [a, await makeRootCa(a)] as const));
  cas = Object.fromEntries(entries) as Record<KeyAlgorithm, Ca>;
}, 120_000);

describe('readCertificateSummary agrees with @peculiar/x509 and node:crypto', () => {
  it('reads a CA-issued leaf with every SAN kind', async () => {
    const issued = await issueCertificate({
      subjectKeyPem: keys['ecdsa-p256'],
      identity: identity({
        commonName: 'web',
        dnsNames: ['web.example.com', '*.web.example.com'],
        ipAddresses: ['10.1.2.3', '2001:DB8:0:0:0:0:0:1', '::ffff:192.0.2.1', 'fe80::1:0:0:0'],
        uris: ['spiffe://cluster.local/ns/default/sa/web'],
      }),
      notBefore: Date.UTC(2030, 0, 2, 3, 4, 5, 678),
      notAfter: Date.UTC(2031, 0, 2, 3, 4, 5),
      issuer: cas['rsa-2048'],
    });
    const s = expectMatchesPeculiar(der(issued.certPem));
    expect(s).toMatchObject({
      notBefore: Date.UTC(2030, 0, 2, 3, 4, 5),
      notAfter: Date.UTC(2031, 0, 2, 3, 4, 5),
      subjectCommonName: 'web',
      issuerCommonName: 'Test Root rsa-2048',
      dnsNames: ['web.example.com', '*.web.example.com'],
      ipAddresses: ['10.1.2.3', '2001:db8::1', '::ffff:c000:201', 'fe80::1:0:0:0'],
      uris: ['spiffe://cluster.local/ns/default/sa/web'],
      isCA: false,
      selfIssued: false,
      keyAlgorithm: 'ecdsa-p256',
    });
    expect(s.serialHex).toMatch(/^[0-9a-f]{32}$/);
  });

  it('reads GeneralizedTime after 2049 and UTCTime before 2050', async () => {
    const issued = await issueCertificate({
      subjectKeyPem: keys.ed25519,
      identity: identity({ dnsNames: ['long.example'] }),
      notBefore: Date.UTC(2049, 11, 31, 23, 59, 59),
      notAfter: Date.UTC(2150, 5, 30, 12, 0, 0),
      issuer: 'self',
    });
    const d = der(issued.certPem);
    const text = Buffer.from(d).toString('latin1');
    expect(text).toContain('491231235959Z'); // UTCTime
    expect(text).toContain('21500630120000Z'); // GeneralizedTime
    const s = expectMatchesPeculiar(d);
    expect(s.notBefore).toBe(Date.UTC(2049, 11, 31, 23, 59, 59));
    expect(s.notAfter).toBe(Date.UTC(2150, 5, 30, 12, 0, 0));
    expect(s.selfIssued).toBe(true);
    expect(s.subjectCommonName).toBeUndefined();
    expect(s.keyAlgorithm).toBe('ed25519');
  });

  it('maps UTCTime years 50-99 to the 1900s', () => {
    const d = der(cas['ecdsa-p256'].certPem);
    const nb = readCertificateSummary(d).notBefore;
    const stamp = new Date(nb).toISOString().replace(/[-:T]/g, '').slice(2, 14);
    const patched = patchAscii(d, `${stamp}Z`, '500101000000Z');
    expect(readCertificateSummary(patched).notBefore).toBe(Date.UTC(1950, 0, 1));
    const leap = patchAscii(d, `${stamp}Z`, '960229120000Z');
    expect(readCertificateSummary(leap).notBefore).toBe(Date.UTC(1996, 1, 29, 12));
    expectMalformed(patchAscii(d, `${stamp}Z`, '970229120000Z')); // not a leap year
    expectMalformed(patchAscii(d, `${stamp}Z`, '971301000000Z')); // month 13
    expectMalformed(patchAscii(d, `${stamp}Z`, '970101246000Z')); // hour 24
    expectMalformed(patchAscii(d, `${stamp}Z`, '9701010000a0Z')); // non-digit
    expectMalformed(patchAscii(d, `${stamp}Z`, '970101000000+')); // not Z
  });

  it('reads a certificate without SAN and CA certificates of every key type', () => {
    for (const alg of KEY_ALGORITHMS) {
      const s = expectMatchesPeculiar(der(cas[alg].certPem));
      expect(s).toMatchObject({
        isCA: true,
        selfIssued: true,
        dnsNames: [],
        ipAddresses: [],
        uris: [],
        subjectCommonName: `Test Root ${alg}`,
        issuerCommonName: `Test Root ${alg}`,
        keyAlgorithm: alg,
      });
    }
  });

  it('reads certificates made directly with @peculiar/x509 (multi-RDN names, no extensions)', async () => {
    const crypto = globalThis.crypto;
    const keysPair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: '00ff0102',
        name: 'C=DE, O=Acme, CN=first, CN=second',
        notBefore: new Date(Date.UTC(2024, 1, 29)),
        notAfter: new Date(Date.UTC(2025, 1, 28)),
        keys: keysPair,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.Algorithm,
      },
      crypto,
    );
    const s = expectMatchesPeculiar(new Uint8Array(cert.rawData));
    expect(s.subjectCommonName).toBe('first');
    expect(s.serialHex).toBe('ff0102');
    expect(s.isCA).toBe(false);
    expect(s.dnsNames).toEqual([]);
  });

  it('agrees on many generated certificates (property)', async () => {
    const names = fc.stringMatching(/^[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,3}$/);
    const ipv4 = fc.ipV4();
    const ipv6 = fc.ipV6();
    const uri = fc.webUrl({ withQueryParameters: true, withFragments: true });
    const year = fc.integer({ min: 1951, max: 2200 });
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          cn: fc.option(
            fc.string({ minLength: 1, maxLength: 30 }).filter((s) => s.trim() === s && s !== ''),
            {
              nil: undefined,
            },
          ),
          dnsNames: fc.array(names, { maxLength: 4 }),
          ips: fc.array(fc.oneof(ipv4, ipv6), { maxLength: 4 }),
          uris: fc.array(uri, { maxLength: 2 }),
          y1: year,
          span: fc.integer({ min: 1, max: 200 * 365 }),
          subject: fc.constantFrom(...KEY_ALGORITHMS),
          issuer: fc.constantFrom<KeyAlgorithm | 'self'>('self', ...KEY_ALGORITHMS),
          isCA: fc.boolean(),
        }),
        async (r) => {
          const id = identity({ dnsNames: r.dnsNames, ipAddresses: r.ips, uris: r.uris });
          if (r.cn !== undefined) id.commonName = r.cn;
          if (r.cn === undefined && r.dnsNames.length + r.ips.length + r.uris.length === 0)
            id.commonName = 'x';
          const notBefore = Date.UTC(r.y1, 0, 1) + (r.span % 1000) * 1000;
          const issued = await issueCertificate({
            subjectKeyPem: keys[r.subject],
            identity: id,
            notBefore,
            notAfter: notBefore + r.span * DAY,
            issuer: r.issuer === 'self' ? 'self' : cas[r.issuer],
            isCA: r.isCA,
          });
          const s = expectMatchesPeculiar(der(issued.certPem));
          expect(s.keyAlgorithm).toBe(r.subject);
          expect(s.isCA).toBe(r.isCA);
          expect(s.dnsNames).toEqual(r.dnsNames);
          expect(s.uris).toEqual(r.uris);
          expect(s.ipAddresses).toEqual(
            r.ips.map((ip) =>
              new URL(`http://${ip.includes(':') ? `[${ip}]` : ip}`).hostname.replace(/^\[|\]$/g, ''),
            ),
          );
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);
});

describe('certificateParts / keyAlgorithmOfSpki', () => {
  it('returns views of the TBS, names and SPKI', () => {
    const d = der(cas['rsa-3072'].certPem);
    const parts = certificateParts(d);
    const c = new x509.X509Certificate(d.slice());
    expect(Buffer.from(parts.spki).equals(Buffer.from(c.publicKey.rawData))).toBe(true);
    expect(Buffer.from(parts.subject).equals(Buffer.from(c.subjectName.toArrayBuffer()))).toBe(true);
    expect(Buffer.from(parts.issuer).equals(Buffer.from(parts.subject))).toBe(true);
    expect(parts.tbs[0]).toBe(0x30);
    expect(parts.tbs.byteOffset).toBeGreaterThan(d.byteOffset);
    expect(keyAlgorithmOfSpki(parts.spki)).toBe('rsa-3072');
  });

  it('reports unknown for keys outside KEY_ALGORITHMS and malformed for broken SPKI', () => {
    const spki = (k: { publicKey: KeyObject }) =>
      new Uint8Array(k.publicKey.export({ type: 'spki', format: 'der' }));
    expect(keyAlgorithmOfSpki(spki(generateKeyPairSync('ec', { namedCurve: 'P-521' })))).toBe('unknown');
    expect(keyAlgorithmOfSpki(spki(generateKeyPairSync('ed448')))).toBe('unknown');
    expect(keyAlgorithmOfSpki(spki(generateKeyPairSync('rsa', { modulusLength: 1024 })))).toBe('unknown');
    expect(keyAlgorithmOfSpki(spki(generateKeyPairSync('ec', { namedCurve: 'P-384' })))).toBe('ecdsa-p384');
    expect(() => keyAlgorithmOfSpki(new Uint8Array([0x30, 0x03, 0x30, 0x01, 0x00]))).toThrow(PkiError);
  });
});

describe('malformed input', () => {
  it('rejects indefinite lengths, overruns, trailing bytes and high tag numbers', () => {
    const d = der(cas['ecdsa-p256'].certPem);
    expectMalformed(new Uint8Array(0));
    expectMalformed(new Uint8Array([0x30]));
    expectMalformed(new Uint8Array([0x30, 0x80, 0x00, 0x00]));
    expectMalformed(new Uint8Array([0x30, 0x85, 1, 0, 0, 0, 0]));
    expectMalformed(new Uint8Array([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]));
    expectMalformed(new Uint8Array([0x1f, 0x01, 0x00]));
    expectMalformed(new Uint8Array([...d, 0x00]));
    const indefinite = d.slice();
    indefinite[1] = 0x80;
    expectMalformed(indefinite);
    expectMalformed(d.subarray(0, d.length - 1));
  });

  it('reads a duplicate subjectAltName extension for expiry only: no names, the problem named', async () => {
    const crypto = globalThis.crypto;
    const kp = (await crypto.subtle.generateKey({ name: 'Ed25519' } as webcrypto.Algorithm, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const san = new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'a.example' }]);
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      { name: 'CN=dup', keys: kp, signingAlgorithm: { name: 'Ed25519' }, extensions: [san, san] },
      crypto,
    );
    const s = readCertificateSummary(new Uint8Array(cert.rawData));
    expect(s.dnsNames).toEqual([]);
    expect(s.problems).toEqual([{ field: 'extensions', reason: 'duplicate extension 2.5.29.17' }]);
  });
});
