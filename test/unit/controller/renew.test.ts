import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';
import { parseSecretPolicy, type SecretPolicy } from '../../../src/controller/annotations.ts';
import { issue, RenewFailure, type RenewInput, targetIdentity } from '../../../src/controller/renew.ts';
import { verifyIssued } from '../../../src/controller/verify.ts';
import type { Issuer } from '../../../src/issuers/types.ts';
import * as w from '../../../src/pki/der-write.ts';
import { certificatesFromPem, generateKey, readCertificateSummary } from '../../../src/pki/index.ts';
import { buildCertificate, keys } from '../pki/differential.ts';
import { DAY, FakeIssuer, leaf, MIN } from './fakes.ts';

const config = loadConfig('issuers: [{ name: self, selfSigned: {} }]\ndefaults: { issuer: self }\n');
const NOW = Date.now();

function policy(annotations: Record<string, string> = {}): SecretPolicy {
  const parsed = parseSecretPolicy({ 'cert-rotator.io/enabled': 'true', ...annotations }, config);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return parsed.policy;
}

async function input(over: Partial<RenewInput> = {}): Promise<RenewInput> {
  const current = await leaf('keep.example.com', -DAY, MIN, NOW);
  const der = certificatesFromPem(current.certPem)[0];
  return {
    namespace: 'n',
    name: 's',
    currentKeyPem: current.keyPem,
    currentCert: der ? readCertificateSummary(der) : null,
    policy: policy(),
    issuer: new FakeIssuer('self'),
    now: NOW,
    ...over,
  };
}

describe('issue', () => {
  it('copies the names from the current certificate, rotates the key by default, and verifies', async () => {
    const i = await input();
    const issued = await issue(i);
    expect(issued.identity.dnsNames).toEqual(['keep.example.com']);
    expect(issued.keyRotated).toBe(true);
    expect(issued.keyPem).not.toBe(i.currentKeyPem);
    const out = verifyIssued(i, issued);
    expect(out.summary.dnsNames).toEqual(['keep.example.com']);
    expect(Object.keys(out.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
  });

  it('names from annotations win over the current certificate', async () => {
    const p = policy({ 'cert-rotator.io/dns-names': 'new.example.com' });
    expect(targetIdentity(p, (await input()).currentCert).dnsNames).toEqual(['new.example.com']);
  });

  it('nothing to issue for: says why tls.crt is unusable', async () => {
    const i = await input({ currentCert: null, certProblem: 'tls.crt cannot be parsed: bad base64' });
    await expect(issue(i)).rejects.toThrow(/nothing to issue for: tls.crt cannot be parsed: bad base64/);
  });

  it('rotate-key "false" keeps a matching key and refuses one that is not the certificate\'s', async () => {
    const kept = await input({ policy: policy({ 'cert-rotator.io/rotate-key': 'false' }) });
    const issued = await issue(kept);
    expect(issued.keyPem).toBe(kept.currentKeyPem);
    expect(issued.keyRotated).toBe(false);
    const other = await generateKey('ecdsa-p256');
    const mismatch = { ...kept, currentKeyPem: other.privateKeyPem };
    await expect(issue(mismatch)).rejects.toMatchObject({ code: 'KEY_MISMATCH' });
  });

  it('a readable but not acceptable certificate gives no identity: annotations only, else NO_IDENTITY naming the field', async () => {
    // A SAN holding a GeneralName of no known kind: readable for expiry, not acceptable to act on.
    const san = [w.tlv(0x82, new TextEncoder().encode('copied.example.com')), w.tlv(0x89, Uint8Array.of(1))];
    const cert = readCertificateSummary(buildCertificate({ key: keys()[0]!.key, san }));
    expect(cert.problems.map((p) => p.field)).toEqual(['subjectAltName']);
    const failing = issue(await input({ currentCert: cert }));
    await expect(failing).rejects.toMatchObject({ code: 'NO_IDENTITY' });
    await expect(failing).rejects.toThrow(
      /tls.crt is readable but not acceptable to act on \(subjectAltName: unknown GeneralName tag 0x89\)/,
    );
    const annotated = await input({
      currentCert: cert,
      policy: policy({ 'cert-rotator.io/dns-names': 'named.example.com' }),
    });
    expect((await issue(annotated)).identity.dnsNames).toEqual(['named.example.com']);
  });

  it('rotate-key "false": an RSA certificate whose SPKI omits the NULL parameters still matches its key', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const spki = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
    const withNull = Buffer.from(w.sequence([w.oid('1.2.840.113549.1.1.1'), w.NULL]));
    const at = Buffer.from(spki).indexOf(withNull);
    // Drop the NULL (2 bytes) and shorten the two enclosing lengths (the SPKI's is in long form).
    const noNull = new Uint8Array([
      ...spki.subarray(0, at),
      0x30,
      0x0b,
      ...spki.subarray(at + 2, at + 13),
      ...spki.subarray(at + 15),
    ]);
    noNull[3] = noNull[3]! - 2;
    const san = [w.tlv(0x82, new TextEncoder().encode('rsa.example.com'))];
    const cert = readCertificateSummary(buildCertificate({ key: privateKey, spki: noNull, san }));
    expect(cert.problems).toEqual([]);
    expect(cert.spkiSha256).not.toBe(cert.publicKeySha256);
    const kept = await input({
      currentCert: cert,
      currentKeyPem: keyPem,
      policy: policy({ 'cert-rotator.io/rotate-key': 'false' }),
    });
    const issued = await issue(kept);
    expect(issued.keyRotated).toBe(false);
    expect(issued.keyPem).toBe(keyPem);
  });

  it('an issuer error becomes ISSUER_FAILED with its Retry-After', async () => {
    const failing = new FakeIssuer('self');
    failing.failing = 'CA down';
    await expect(issue(await input({ issuer: failing }))).rejects.toMatchObject({
      code: 'ISSUER_FAILED',
      message: 'CA down',
    });
    expect(RenewFailure.from(new Error('x')).code).toBe('ISSUER_FAILED');
  });
});

describe('verifyIssued', () => {
  it('refuses a certificate that does not cover the requested names', async () => {
    const i = await input();
    const liar: Issuer = {
      name: 'liar',
      kind: 'selfSigned',
      issue: async (req) =>
        new FakeIssuer('x').issue({ ...req, identity: { ...req.identity, dnsNames: ['other.example.com'] } }),
    };
    const issued = await issue({ ...i, issuer: liar });
    expect(() => verifyIssued({ ...i, issuer: liar }, issued)).toThrow(
      /issuer "liar" returned a certificate that fails verification/,
    );
  });
});
