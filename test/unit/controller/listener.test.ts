import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';
import { evaluate } from '../../../src/controller/evaluate.ts';
import { describeChange, fingerprintOf } from '../../../src/controller/listener.ts';
import type { SecretRecord } from '../../../src/controller/record.ts';
import type { CertSummary } from '../../../src/pki/index.ts';

const config = loadConfig('issuers: [{ name: self, selfSigned: {} }]\ndefaults: { issuer: self }\n');
const NOW = Date.UTC(2030, 0, 1);

function cert(serialHex: string): CertSummary {
  return {
    serialHex,
    spkiSha256: `spki-${serialHex}`,
    notBefore: NOW - 1000,
    notAfter: NOW + 30 * 86_400_000,
    dnsNames: ['a.example.com'],
    ipAddresses: [],
    uris: [],
    keyAlgorithm: 'ecdsa-p256',
    problems: [],
  } as unknown as CertSummary;
}

function record(serial: string | null, annotations: Record<string, string> = {}): SecretRecord {
  return {
    namespace: 'n',
    name: 's',
    uid: 'u',
    resourceVersion: '1',
    annotations: { 'cert-rotator.io/enabled': 'true', ...annotations },
    managed: annotations['cert-rotator.io/enabled'] !== 'false',
    cert: serial ? cert(serial) : null,
  };
}

const change = (prev: SecretRecord | undefined, next: SecretRecord, ours?: string) =>
  describeChange(prev, next, evaluate(next, config, NOW), config, ours);

describe('describeChange', () => {
  it('reports a new certificate with the one it replaced, and whether this process wrote it', () => {
    const c = change(record('01'), record('02'));
    expect(c?.previousFingerprint).toBe(fingerprintOf(cert('01')));
    expect(c?.fingerprint).toBe(fingerprintOf(cert('02')));
    expect(c?.byController).toBe(false);
    expect(change(record('01'), record('02'), fingerprintOf(cert('02')))?.byController).toBe(true);
  });

  it('the first sighting has no previous fingerprint; an unchanged Secret says nothing', () => {
    expect(change(undefined, record('01'))?.previousFingerprint).toBeUndefined();
    expect(change(record('01'), record('01'))).toBeUndefined();
  });

  it('the same certificate with changed restart or window annotations is reported with equal fingerprints', () => {
    const c = change(record('01'), record('01', { 'cert-rotator.io/restart': 'none' }));
    expect(c?.fingerprint).toBe(c?.previousFingerprint);
    expect(c?.policy.restart).toEqual({ mode: 'none' });
  });

  it('a Secret that becomes valid is reported; unmanaged, unparseable or invalid ones are not', () => {
    const invalid = record('01', { 'cert-rotator.io/dns-names': '' });
    expect(change(invalid, record('01'))).toBeDefined();
    expect(change(undefined, invalid)).toBeUndefined();
    expect(change(undefined, record(null))).toBeUndefined();
    expect(change(undefined, record('01', { 'cert-rotator.io/enabled': 'false' }))).toBeUndefined();
  });

  it('a status annotation the controller writes is not a rollout-relevant change', () => {
    expect(
      change(record('01'), record('01', { 'status.cert-rotator.io/restart-owed': 'abc' })),
    ).toBeUndefined();
  });
});

describe('certificateProblem (for events and scan)', async () => {
  const { certificateProblem } = await import('../../../src/controller/record.ts');
  it('says why tls.crt gives no certificate', () => {
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    expect(certificateProblem({ data: {} })).toBe('tls.crt is missing or empty');
    expect(certificateProblem({ data: { 'tls.crt': b64('hello') } })).toBe(
      'tls.crt cannot be parsed: no CERTIFICATE block found in PEM text',
    );
    expect(
      certificateProblem({
        data: { 'tls.crt': b64('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n') },
      }),
    ).toMatch(/^tls.crt cannot be parsed: .+/);
  });
});

describe('a change of ca.crt alone (trust-baseline)', async () => {
  const { certificateHash } = await import('../../../src/rollout/hash.ts');
  const { createHash } = await import('node:crypto');
  const withCa = (serial: string, caDigest: string | undefined, baseline?: string) => ({
    ...record(serial, baseline === undefined ? {} : { 'status.cert-rotator.io/trust-baseline': baseline }),
    ...(caDigest === undefined ? {} : { caDigest }),
  });

  it('is reported as a new fingerprint, once, when ca.crt differs from the trust written with the leaf', () => {
    const c = change(withCa('01', 'old', 'old'), withCa('01', 'old+new', 'old'));
    expect(c?.previousFingerprint).toBe(fingerprintOf(cert('01')));
    expect(c?.fingerprint).not.toBe(c?.previousFingerprint);
    // Seen again unchanged (a resync, another replica): nothing more.
    expect(change(withCa('01', 'old+new', 'old'), withCa('01', 'old+new', 'old'))).toBeUndefined();
    // Narrowed again (Retire) → one more change; ca.crt removed → also one.
    expect(change(withCa('01', 'old+new', 'old'), withCa('01', 'new', 'old'))).toBeDefined();
    expect(change(withCa('01', 'old', 'old'), withCa('01', undefined, 'old'))?.fingerprint).toMatch(
      /ca:none$/,
    );
  });

  it('keeps the fingerprint, and so the pod-template hash, byte-identical to earlier versions while ca.crt is as written', () => {
    // The formula of 0.1: sha256 over sorted "name=serial:spki" lines, 32 hex digits.
    const before = createHash('sha256')
      .update(`s=${fingerprintOf(cert('01'))}`)
      .digest('hex')
      .slice(0, 32);
    for (const r of [withCa('01', 'old', 'old'), withCa('01', 'anything'), withCa('01', undefined)]) {
      const fp = change(undefined, r)?.fingerprint ?? '';
      expect(certificateHash([{ name: 's', fingerprint: fp }])).toBe(before);
    }
    // Without a baseline (written by an older version) ca.crt does not count: an upgrade rolls nothing.
    expect(change(withCa('01', 'a'), withCa('01', 'b'))).toBeUndefined();
  });
});
