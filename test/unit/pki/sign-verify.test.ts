import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  certificatesFromPem,
  type Identity,
  identityFromSummary,
  issueCertificate,
  KEY_ALGORITHMS,
  type KeyAlgorithm,
  PkiError,
  readCertificateSummary,
  verifyIssued,
} from '../../../src/pki/index.ts';
import { allKeys, type Ca, DAY, der, identity, legacyPem, makeRootCa } from './fixtures.ts';

async function codeOfAsync(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
  } catch (err) {
    return err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`;
  }
  return undefined;
}
function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`;
  }
  return undefined;
}

const NOW = Date.UTC(2030, 5, 1);
const webId: Identity = identity({
  commonName: 'svc.example.com',
  dnsNames: ['svc.example.com', 'svc.ns.svc.cluster.local'],
  ipAddresses: ['10.0.0.5', 'fd00::5'],
  uris: ['spiffe://cluster.local/ns/ns/sa/svc'],
});

const SIG_OID: Record<KeyAlgorithm, string> = {
  'ecdsa-p256': '1.2.840.10045.4.3.2', // ecdsa-with-SHA256
  'ecdsa-p384': '1.2.840.10045.4.3.3', // ecdsa-with-SHA384
  'rsa-2048': '1.2.840.113549.1.1.11', // sha256WithRSAEncryption
  'rsa-3072': '1.2.840.113549.1.1.11',
  'rsa-4096': '1.2.840.113549.1.1.11',
  ed25519: '1.3.101.112',
};

/** The signatureAlgorithm OID straight from the DER (outer Certificate field 2). */
function signatureOid(d: Uint8Array): string {
  const c = new x509.X509Certificate(d.slice());
  const alg = c.signatureAlgorithm as { name: string; hash?: { name: string } };
  const name = `${alg.name}/${alg.hash?.name ?? ''}`;
  return (
    {
      'ECDSA/SHA-256': SIG_OID['ecdsa-p256'],
      'ECDSA/SHA-384': SIG_OID['ecdsa-p384'],
      'RSASSA-PKCS1-v1_5/SHA-256': SIG_OID['rsa-2048'],
      'Ed25519/': SIG_OID.ed25519,
    }[name] ?? name
  );
}

let keys: Record<KeyAlgorithm, string>;
let cas: Record<KeyAlgorithm, Ca>;

beforeAll(async () => {
  keys = await allKeys();
  const entries = await Promise.all(
    KEY_ALGORITHMS.map(async (a) => [a, await makeRootCa(a, `Root ${a}`, NOW)] as const),
  );
  cas = Object.fromEntries(entries) as Record<KeyAlgorithm, Ca>;
}, 120_000);

describe('issueCertificate → verifyIssued round trip', () => {
  for (const issuerAlg of KEY_ALGORITHMS) {
    it(`every subject algorithm, issued by a ${issuerAlg} CA (issuer key in legacy PEM form)`, async () => {
      const ca = { certPem: cas[issuerAlg].certPem, keyPem: legacyPem(cas[issuerAlg].keyPem) };
      for (const subjectAlg of KEY_ALGORITHMS) {
        const subjectKeyPem = subjectAlg === issuerAlg ? legacyPem(keys[subjectAlg]) : keys[subjectAlg];
        const issued = await issueCertificate({
          subjectKeyPem,
          identity: webId,
          notBefore: NOW - DAY,
          notAfter: NOW + 90 * DAY,
          issuer: ca,
        });
        const s = verifyIssued({
          certPem: issued.chainPem,
          keyPem: subjectKeyPem,
          identity: webId,
          now: NOW,
          issuerCertPem: issued.caPem,
        });
        expect(s.keyAlgorithm).toBe(subjectAlg);
        expect(s.issuerCommonName).toBe(`Root ${issuerAlg}`);
        expect(identityFromSummary(s)).toEqual(webId);
        const leaf = der(issued.certPem);
        expect(signatureOid(leaf)).toBe(SIG_OID[issuerAlg]);
        expect(new X509Certificate(leaf).verify(new X509Certificate(der(ca.certPem)).publicKey)).toBe(true);
        expect(certificatesFromPem(issued.chainPem)).toEqual([leaf, der(ca.certPem)]);
        expect(issued.caPem).toBe(cas[issuerAlg].certPem);
      }
    }, 60_000);
  }

  for (const alg of KEY_ALGORITHMS) {
    it(`self-signs with ${alg}`, async () => {
      const id = identity({ dnsNames: ['self.example'] });
      const issued = await issueCertificate({
        subjectKeyPem: keys[alg],
        identity: id,
        notBefore: NOW,
        notAfter: NOW + DAY,
        issuer: 'self',
      });
      expect(issued.chainPem).toBe(issued.certPem);
      expect(issued.caPem).toBe(issued.certPem);
      const s = verifyIssued({
        certPem: issued.certPem,
        keyPem: keys[alg],
        identity: id,
        now: NOW,
        issuerCertPem: issued.caPem,
      });
      expect(s).toMatchObject({
        selfIssued: true,
        isCA: false,
        keyAlgorithm: alg,
        dnsNames: ['self.example'],
      });
      expect(s.subjectCommonName).toBeUndefined();
      expect(signatureOid(der(issued.certPem))).toBe(SIG_OID[alg]);
    });
  }
});

describe('issued certificate contents', () => {
  it('leaf: serial, key usages, EKU, basic constraints, SAN criticality, key identifiers', async () => {
    const issued = await issueCertificate({
      subjectKeyPem: keys['rsa-2048'],
      identity: identity({ dnsNames: ['nocn.example'] }),
      notBefore: NOW,
      notAfter: NOW + DAY,
      issuer: cas['ecdsa-p256'],
    });
    const c = new x509.X509Certificate(der(issued.certPem).slice());
    const ca = new x509.X509Certificate(der(cas['ecdsa-p256'].certPem).slice());
    expect(c.serialNumber).toMatch(/^[0-9a-f]{32}$/);
    expect(c.subject).toBe('');
    expect(c.issuer).toBe('CN=Root ecdsa-p256');
    const ku = c.getExtension(x509.KeyUsagesExtension)!;
    expect(ku.critical).toBe(true);
    expect(ku.usages).toBe(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    expect(c.getExtension(x509.ExtendedKeyUsageExtension)!.usages).toEqual([
      x509.ExtendedKeyUsage.serverAuth,
      x509.ExtendedKeyUsage.clientAuth,
    ]);
    const bc = c.getExtension(x509.BasicConstraintsExtension)!;
    expect([bc.ca, bc.critical]).toEqual([false, true]);
    expect(c.getExtension(x509.SubjectAlternativeNameExtension)!.critical).toBe(true); // no CN
    const aki = c.getExtension(x509.AuthorityKeyIdentifierExtension)!;
    expect(aki.keyId).toBe(ca.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);
    expect(c.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId).toMatch(/^[0-9a-f]{40}$/);
  });

  it('EC leaf with CN has digitalSignature only and a non-critical SAN; serials differ', async () => {
    const req = {
      subjectKeyPem: keys['ecdsa-p384'],
      identity: webId,
      notBefore: NOW,
      notAfter: NOW + DAY,
      issuer: cas.ed25519,
    };
    const [a, b] = await Promise.all([issueCertificate(req), issueCertificate(req)]);
    const c = new x509.X509Certificate(der(a.certPem).slice());
    expect(c.subject).toBe('CN=svc.example.com');
    expect(c.getExtension(x509.KeyUsagesExtension)!.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(c.getExtension(x509.SubjectAlternativeNameExtension)!.critical).toBe(false);
    expect(readCertificateSummary(der(a.certPem)).serialHex).not.toBe(
      readCertificateSummary(der(b.certPem)).serialHex,
    );
  });

  it('CA certificates: root and intermediate, with a chain of 3', async () => {
    const root = cas['ecdsa-p384'];
    const rootCert = new x509.X509Certificate(der(root.certPem).slice());
    const usage = rootCert.getExtension(x509.KeyUsagesExtension)!;
    expect(usage.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(usage.critical).toBe(true);
    expect(rootCert.getExtension(x509.ExtendedKeyUsageExtension)).toBeNull();

    const inter = await issueCertificate({
      subjectKeyPem: keys['rsa-3072'],
      identity: identity({ commonName: 'Intermediate' }),
      notBefore: NOW - DAY,
      notAfter: NOW + 100 * DAY,
      issuer: root,
      isCA: true,
    });
    const interSummary = verifyIssued({
      certPem: inter.certPem,
      keyPem: keys['rsa-3072'],
      identity: identity({ commonName: 'Intermediate' }),
      now: NOW,
      issuerCertPem: root.certPem,
    });
    expect(interSummary).toMatchObject({
      isCA: true,
      selfIssued: false,
      issuerCommonName: 'Root ecdsa-p384',
    });

    const leaf = await issueCertificate({
      subjectKeyPem: keys.ed25519,
      identity: webId,
      notBefore: NOW,
      notAfter: NOW + DAY,
      issuer: { certPem: inter.chainPem, keyPem: keys['rsa-3072'] },
    });
    const chain = certificatesFromPem(leaf.chainPem);
    expect(chain).toHaveLength(3);
    expect(chain.map((d) => readCertificateSummary(d).subjectCommonName)).toEqual([
      'svc.example.com',
      'Intermediate',
      'Root ecdsa-p384',
    ]);
    expect(leaf.caPem).toBe(inter.certPem);
    verifyIssued({
      certPem: leaf.chainPem,
      keyPem: keys.ed25519,
      identity: webId,
      now: NOW,
      issuerCertPem: leaf.caPem,
    });
    expect(
      codeOf(() =>
        verifyIssued({
          certPem: leaf.chainPem,
          keyPem: keys.ed25519,
          identity: webId,
          now: NOW,
          issuerCertPem: root.certPem,
        }),
      ),
    ).toBe('ISSUER_MISMATCH');
  });
});

describe('CA path length', () => {
  const caOf = (pem: string) => new x509.X509Certificate(der(pem).slice());
  const constraints = (pem: string) => caOf(pem).getExtension(x509.BasicConstraintsExtension)!;

  it('writes pathLenConstraint as asked (critical cA), reads it back, and an intermediate must fit under it', async () => {
    const root = await issueCertificate({
      subjectKeyPem: keys['ecdsa-p256'],
      identity: identity({ commonName: 'Root with path length 1' }),
      notBefore: NOW - DAY,
      notAfter: NOW + 100 * DAY,
      issuer: 'self',
      isCA: true,
      pathLength: 1,
    });
    const bc = constraints(root.certPem);
    expect([bc.ca, bc.pathLength, bc.critical]).toEqual([true, 1, true]);
    expect(readCertificateSummary(der(root.certPem)).pathLen).toBe(1);
    expect(new X509Certificate(root.certPem).ca).toBe(true);
    const signer = { certPem: root.certPem, keyPem: keys['ecdsa-p256'] };
    const intermediate = (pathLength?: number) =>
      issueCertificate({
        subjectKeyPem: keys['ecdsa-p384'],
        identity: identity({ commonName: 'Intermediate' }),
        notBefore: NOW - DAY,
        notAfter: NOW + 10 * DAY,
        issuer: signer,
        isCA: true,
        ...(pathLength !== undefined ? { pathLength } : {}),
      });
    const ok = await intermediate(0);
    expect(constraints(ok.certPem).pathLength).toBe(0);
    await expect(intermediate(1)).rejects.toThrow(/does not fit under the issuing CA's path length 1/);
    await expect(intermediate()).rejects.toThrow(/needs a path length of at most 0/);
    // A CA of path length 0 signs no CA at all.
    await expect(
      issueCertificate({
        subjectKeyPem: keys['ecdsa-p256'],
        identity: identity({ commonName: 'Too deep' }),
        notBefore: NOW - DAY,
        notAfter: NOW + DAY,
        issuer: { certPem: ok.certPem, keyPem: keys['ecdsa-p384'] },
        isCA: true,
        pathLength: 0,
      }),
    ).rejects.toThrow(/path length 0: it may not sign CA certificates/);
  });

  it('a root without a path length has none; a leaf never gets one', async () => {
    const root = await issueCertificate({
      subjectKeyPem: keys['ecdsa-p256'],
      identity: identity({ commonName: 'Unconstrained root' }),
      notBefore: NOW - DAY,
      notAfter: NOW + DAY,
      issuer: 'self',
      isCA: true,
    });
    expect(constraints(root.certPem).pathLength).toBeUndefined();
    expect(readCertificateSummary(der(root.certPem)).pathLen).toBeUndefined();
    await expect(
      issueCertificate({
        subjectKeyPem: keys['ecdsa-p256'],
        identity: webId,
        notBefore: NOW,
        notAfter: NOW + DAY,
        issuer: 'self',
        pathLength: 0,
      }),
    ).rejects.toThrow(/only for a CA certificate/);
  });
});

describe('issueCertificate refuses bad requests', () => {
  it('issuer that is not a CA', async () => {
    const leaf = await issueCertificate({
      subjectKeyPem: keys['ecdsa-p256'],
      identity: webId,
      notBefore: NOW,
      notAfter: NOW + DAY,
      issuer: 'self',
    });
    expect(
      await codeOfAsync(() =>
        issueCertificate({
          subjectKeyPem: keys.ed25519,
          identity: webId,
          notBefore: NOW,
          notAfter: NOW + DAY,
          issuer: { certPem: leaf.certPem, keyPem: keys['ecdsa-p256'] },
        }),
      ),
    ).toBe('ISSUER_NOT_CA');
  });

  it('issuer key that does not match the issuer certificate', async () => {
    expect(
      await codeOfAsync(() =>
        issueCertificate({
          subjectKeyPem: keys.ed25519,
          identity: webId,
          notBefore: NOW,
          notAfter: NOW + DAY,
          issuer: { certPem: cas['rsa-2048'].certPem, keyPem: keys['rsa-3072'] },
        }),
      ),
    ).toBe('KEY_MISMATCH');
  });

  it('bad identities, validity and keys', async () => {
    const base = {
      subjectKeyPem: keys.ed25519,
      notBefore: NOW,
      notAfter: NOW + DAY,
      issuer: 'self' as const,
    };
    const cases: [Parameters<typeof issueCertificate>[0], string][] = [
      [{ ...base, identity: identity({}) }, 'INVALID_IDENTITY'],
      [{ ...base, identity: identity({ dnsNames: ['bad name'] }) }, 'INVALID_IDENTITY'],
      [{ ...base, identity: identity({ dnsNames: ['ünïcode.example'] }) }, 'INVALID_IDENTITY'],
      [{ ...base, identity: identity({ ipAddresses: ['10.0.0.256'] }) }, 'INVALID_IDENTITY'],
      [{ ...base, identity: identity({ uris: ['not a uri'] }) }, 'INVALID_IDENTITY'],
      [{ ...base, identity: identity({ commonName: '' }) }, 'INVALID_IDENTITY'],
      [{ ...base, identity: identity({ commonName: 'x'.repeat(65) }) }, 'INVALID_IDENTITY'],
      [{ ...base, identity: webId, notAfter: NOW }, 'INVALID_VALIDITY'],
      [{ ...base, identity: webId, notBefore: Number.NaN }, 'INVALID_VALIDITY'],
      [{ ...base, identity: webId, subjectKeyPem: 'garbage' }, 'KEY_MALFORMED'],
      [{ ...base, identity: webId, issuer: { certPem: 'none', keyPem: keys.ed25519 } }, 'NO_CERTIFICATE'],
    ];
    for (const [req, code] of cases)
      expect(await codeOfAsync(() => issueCertificate(req)), JSON.stringify(req.identity)).toBe(code);
  });

  it('a CN starting with "#" or containing commas is taken literally', async () => {
    const id = identity({ commonName: '#not hex, CN=evil+O=x' });
    const issued = await issueCertificate({
      subjectKeyPem: keys.ed25519,
      identity: id,
      notBefore: NOW,
      notAfter: NOW + DAY,
      issuer: 'self',
    });
    expect(readCertificateSummary(der(issued.certPem)).subjectCommonName).toBe('#not hex, CN=evil+O=x');
  });
});

describe('verifyIssued rejects', () => {
  let issued: Awaited<ReturnType<typeof issueCertificate>>;
  beforeAll(async () => {
    issued = await issueCertificate({
      subjectKeyPem: keys['ecdsa-p256'],
      identity: webId,
      notBefore: NOW,
      notAfter: NOW + 10 * DAY,
      issuer: cas['rsa-2048'],
    });
  });
  const input = () => ({
    certPem: issued.chainPem,
    keyPem: keys['ecdsa-p256'],
    identity: webId,
    now: NOW + DAY,
  });

  it('accepts the matching input, with case-insensitive DNS and any IP text form', () => {
    const alt = { ...webId, dnsNames: ['SVC.Example.COM'], ipAddresses: ['fd00:0:0:0:0:0:0:5', '10.0.0.5'] };
    expect(
      verifyIssued({ ...input(), identity: alt, issuerCertPem: cas['rsa-2048'].certPem }).serialHex,
    ).toMatch(/^[0-9a-f]+$/);
  });

  it('a wrong key', () => {
    expect(codeOf(() => verifyIssued({ ...input(), keyPem: keys['ecdsa-p384'] }))).toBe('KEY_MISMATCH');
    expect(codeOf(() => verifyIssued({ ...input(), keyPem: cas['rsa-2048'].keyPem }))).toBe('KEY_MISMATCH');
  });

  it('a missing DNS name, IP, URI or CN, naming what is missing', () => {
    const missing: [Partial<Identity>, string][] = [
      [{ dnsNames: [...webId.dnsNames, 'other.example'] }, 'dns:other.example'],
      [{ ipAddresses: ['10.0.0.6'] }, 'ip:10.0.0.6'],
      [{ uris: ['spiffe://cluster.local/ns/ns/sa/other'] }, 'uri:spiffe://cluster.local/ns/ns/sa/other'],
      [{ commonName: 'other' }, 'cn:other'],
      [{ dnsNames: ['*.example.com'] }, 'dns:*.example.com'],
    ];
    for (const [patch, text] of missing) {
      try {
        verifyIssued({ ...input(), identity: { ...webId, ...patch } });
        expect.unreachable();
      } catch (err) {
        expect((err as PkiError).code).toBe('NAMES_NOT_COVERED');
        expect((err as Error).message).toContain(text);
      }
    }
  });

  it('expired and not-yet-valid (notBefore inclusive, notAfter exclusive)', () => {
    expect(codeOf(() => verifyIssued({ ...input(), now: NOW - 1 }))).toBe('NOT_VALID_NOW');
    expect(codeOf(() => verifyIssued({ ...input(), now: NOW + 10 * DAY }))).toBe('NOT_VALID_NOW');
    expect(verifyIssued({ ...input(), now: NOW }).notBefore).toBe(NOW);
    expect(verifyIssued({ ...input(), now: NOW + 10 * DAY - 1 }).notAfter).toBe(NOW + 10 * DAY);
  });

  it('a wrong issuer: other CA, and a same-named CA with a different key', async () => {
    expect(codeOf(() => verifyIssued({ ...input(), issuerCertPem: cas['rsa-3072'].certPem }))).toBe(
      'ISSUER_MISMATCH',
    );
    const impostor = await makeRootCa('ecdsa-p384', 'Root rsa-2048', NOW);
    expect(readCertificateSummary(der(impostor.certPem)).subjectCommonName).toBe('Root rsa-2048');
    expect(codeOf(() => verifyIssued({ ...input(), issuerCertPem: impostor.certPem }))).toBe(
      'ISSUER_MISMATCH',
    );
  });

  it('broken inputs', () => {
    expect(codeOf(() => verifyIssued({ ...input(), certPem: '' }))).toBe('NO_CERTIFICATE');
    expect(codeOf(() => verifyIssued({ ...input(), keyPem: '' }))).toBe('KEY_MALFORMED');
    const d = der(issued.certPem);
    const truncated = `-----BEGIN CERTIFICATE-----\n${Buffer.from(d.subarray(0, 100)).toString('base64')}\n-----END CERTIFICATE-----\n`;
    expect(codeOf(() => verifyIssued({ ...input(), certPem: truncated }))).toBe('DER_MALFORMED');
  });
});
