import { beforeAll, describe, expect, it } from 'vitest';
import { generateKey, issueCertificate, PkiError } from '../../../src/pki/index.ts';
import { NO_NAMES, verifyMaterial } from '../../../src/sidecar/material.ts';

const MIN = 60_000;
let good: { chainPem: string; keyPem: string };
let otherKey: string;
let expired: { chainPem: string; keyPem: string };

async function leaf(fromMs: number, toMs: number) {
  const key = await generateKey('ecdsa-p256');
  const now = Date.now();
  const c = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { dnsNames: ['app.test'], ipAddresses: [], uris: ['spiffe://cluster.local/ns/a/sa/b'] },
    notBefore: now + fromMs,
    notAfter: now + toMs,
    issuer: 'self',
  });
  return { chainPem: c.chainPem, keyPem: key.privateKeyPem };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`;
  }
  return undefined;
}

beforeAll(async () => {
  good = await leaf(-MIN, 10 * MIN);
  expired = await leaf(-10 * MIN, -MIN);
  otherKey = (await generateKey('ecdsa-p256')).privateKeyPem;
});

describe('verifyMaterial: what may replace files on disk', () => {
  it('accepts a matching, valid pair, normalising the PEM', () => {
    const v = verifyMaterial(
      { chainPem: `junk\n${good.chainPem}`, keyPem: good.keyPem },
      NO_NAMES,
      Date.now(),
    );
    expect(v.chainPem.startsWith('-----BEGIN CERTIFICATE-----')).toBe(true);
    expect(v.leaf.dnsNames).toEqual(['app.test']);
  });
  it('refuses a key that does not belong to the certificate', () => {
    expect(
      codeOf(() => verifyMaterial({ chainPem: good.chainPem, keyPem: otherKey }, NO_NAMES, Date.now())),
    ).toBe('KEY_MISMATCH');
  });
  it('refuses an expired or not yet valid certificate', () => {
    expect(codeOf(() => verifyMaterial(expired, NO_NAMES, Date.now()))).toBe('NOT_VALID_NOW');
    expect(codeOf(() => verifyMaterial(good, NO_NAMES, Date.now() - 5 * MIN))).toBe('NOT_VALID_NOW');
  });
  it('refuses a certificate without a required name', () => {
    const need = { dnsNames: ['other.test'], ipAddresses: [], uris: [] };
    expect(codeOf(() => verifyMaterial(good, need, Date.now()))).toBe('NAMES_NOT_COVERED');
    const spiffe = { dnsNames: [], ipAddresses: [], uris: ['spiffe://cluster.local/ns/a/sa/b'] };
    expect(codeOf(() => verifyMaterial(good, spiffe, Date.now()))).toBeUndefined();
  });
  it('refuses malformed PEM, a missing certificate, a bad chain member and a bad ca.crt', () => {
    expect(
      codeOf(() => verifyMaterial({ chainPem: 'nope', keyPem: good.keyPem }, NO_NAMES, Date.now())),
    ).toBe('NO_CERTIFICATE');
    const broken = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(
      codeOf(() =>
        verifyMaterial({ chainPem: good.chainPem + broken, keyPem: good.keyPem }, NO_NAMES, Date.now()),
      ),
    ).toBe('DER_MALFORMED');
    expect(codeOf(() => verifyMaterial({ ...good, caPem: broken }, NO_NAMES, Date.now()))).toBe(
      'DER_MALFORMED',
    );
    expect(
      codeOf(() => verifyMaterial({ chainPem: good.chainPem, keyPem: 'garbage' }, NO_NAMES, Date.now())),
    ).toBe('KEY_MALFORMED');
  });
});
