import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  inspectPrivateKey,
  isKeyAlgorithm,
  KEY_ALGORITHMS,
  type KeyAlgorithm,
  keyMatchesCertificate,
  PkiError,
  readCertificateSummary,
} from '../../../src/pki/index.ts';
import { allKeys, type Ca, der, legacyPem, makeRootCa } from './fixtures.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`;
  }
  return undefined;
}

const spkiHash = (pem: string) =>
  createHash('sha256')
    .update(createPublicKey(pem).export({ type: 'spki', format: 'der' }))
    .digest('hex');

let keys: Record<KeyAlgorithm, string>;
let cas: Record<KeyAlgorithm, Ca>;

beforeAll(async () => {
  keys = await allKeys();
  const entries = await Promise.all(KEY_ALGORITHMS.map(async (a) => [a, await makeRootCa(a)] as const));
  cas = Object.fromEntries(entries) as Record<KeyAlgorithm, Ca>;
}, 120_000);

describe('generateKey', () => {
  it('produces PKCS#8 keys of the requested algorithm', () => {
    const expected: Record<KeyAlgorithm, [string, number | string]> = {
      'ecdsa-p256': ['ec', 'prime256v1'],
      'ecdsa-p384': ['ec', 'secp384r1'],
      'rsa-2048': ['rsa', 2048],
      'rsa-3072': ['rsa', 3072],
      'rsa-4096': ['rsa', 4096],
      ed25519: ['ed25519', ''],
    };
    for (const alg of KEY_ALGORITHMS) {
      const pem = keys[alg];
      expect(pem.startsWith('-----BEGIN PRIVATE KEY-----\n')).toBe(true);
      const k = createPrivateKey(pem);
      const [type, detail] = expected[alg];
      expect(k.asymmetricKeyType).toBe(type);
      if (type === 'ec') expect(k.asymmetricKeyDetails?.namedCurve).toBe(detail);
      if (type === 'rsa') {
        expect(k.asymmetricKeyDetails?.modulusLength).toBe(detail);
        expect(k.asymmetricKeyDetails?.publicExponent).toBe(65537n);
      }
    }
  });

  it('isKeyAlgorithm accepts exactly KEY_ALGORITHMS', () => {
    expect(KEY_ALGORITHMS.every(isKeyAlgorithm)).toBe(true);
    expect(isKeyAlgorithm('rsa-1024')).toBe(false);
    expect(isKeyAlgorithm(undefined)).toBe(false);
  });
});

describe('inspectPrivateKey', () => {
  it('reads every algorithm in PKCS#8 and its legacy form (PKCS#1 / SEC1)', () => {
    for (const alg of KEY_ALGORITHMS) {
      const pkcs8 = inspectPrivateKey(keys[alg]);
      expect(pkcs8).toEqual({ algorithm: alg, spkiSha256: spkiHash(keys[alg]) });
      const legacy = legacyPem(keys[alg]);
      if (alg.startsWith('rsa')) expect(legacy).toContain('-----BEGIN RSA PRIVATE KEY-----');
      if (alg.startsWith('ecdsa')) expect(legacy).toContain('-----BEGIN EC PRIVATE KEY-----');
      expect(inspectPrivateKey(legacy)).toEqual(pkcs8);
    }
  });

  it('fingerprint equals the certificate summary spkiSha256', () => {
    for (const alg of KEY_ALGORITHMS) {
      expect(inspectPrivateKey(cas[alg].keyPem).spkiSha256).toBe(
        readCertificateSummary(der(cas[alg].certPem)).spkiSha256,
      );
    }
  });

  it('skips EC PARAMETERS and certificates before the key', () => {
    const params = '-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n';
    const text = `${cas['ecdsa-p256'].certPem}${params}${legacyPem(keys['ecdsa-p256'])}`;
    expect(inspectPrivateKey(text).algorithm).toBe('ecdsa-p256');
  });

  it('rejects malformed and unsupported keys with specific codes', () => {
    expect(codeOf(() => inspectPrivateKey(''))).toBe('KEY_MALFORMED');
    expect(codeOf(() => inspectPrivateKey(cas.ed25519.certPem))).toBe('KEY_MALFORMED');
    expect(
      codeOf(() => inspectPrivateKey('-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----')),
    ).toBe('KEY_MALFORMED');
    expect(
      codeOf(() => inspectPrivateKey('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----')),
    ).toBe('KEY_MALFORMED');
    // An RSA key labelled as EC.
    const mislabelled = legacyPem(keys['rsa-2048']).replace(/RSA PRIVATE KEY/g, 'EC PRIVATE KEY');
    expect(codeOf(() => inspectPrivateKey(mislabelled))).toBe('KEY_MALFORMED');

    const pem = (k: { privateKey: { export(o: object): string | Buffer } }) =>
      k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(codeOf(() => inspectPrivateKey(pem(generateKeyPairSync('ec', { namedCurve: 'P-521' }))))).toBe(
      'UNSUPPORTED_KEY',
    );
    expect(codeOf(() => inspectPrivateKey(pem(generateKeyPairSync('rsa', { modulusLength: 1024 }))))).toBe(
      'UNSUPPORTED_KEY',
    );
    expect(codeOf(() => inspectPrivateKey(pem(generateKeyPairSync('ed448'))))).toBe('UNSUPPORTED_KEY');
    const encrypted = createPrivateKey(keys['ecdsa-p256'])
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' })
      .toString();
    expect(codeOf(() => inspectPrivateKey(encrypted))).toBe('UNSUPPORTED_KEY');
  });

  it('does not put key material in error messages', () => {
    const body = keys['ecdsa-p256'].split('\n')[1]!;
    const broken = keys['ecdsa-p256'].replace(body, `${body.slice(0, 40)}${body.slice(44)}`);
    try {
      inspectPrivateKey(broken);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PkiError);
      expect((err as Error).message).not.toContain(body.slice(0, 16));
    }
  });
});

describe('keyMatchesCertificate', () => {
  it('matches its own certificate in every PEM form and no other', () => {
    for (const alg of KEY_ALGORITHMS) {
      const d = der(cas[alg].certPem);
      expect(keyMatchesCertificate(keys[alg], d)).toBe(true);
      expect(keyMatchesCertificate(legacyPem(keys[alg]), d)).toBe(true);
      for (const other of KEY_ALGORITHMS) {
        if (other !== alg) expect(keyMatchesCertificate(keys[other], d)).toBe(false);
      }
    }
  });

  it('a cross-type mismatch leaves no OpenSSL error behind to fail the next key load', () => {
    // Regression: KeyObject.equals() across key types queues an OpenSSL error in Node 24.
    expect(keyMatchesCertificate(keys['ecdsa-p256'], der(cas['rsa-2048'].certPem))).toBe(false);
    expect(inspectPrivateKey(keys['rsa-3072']).algorithm).toBe('rsa-3072');
    expect(keyMatchesCertificate(keys.ed25519, der(cas['ecdsa-p384'].certPem))).toBe(false);
    expect(inspectPrivateKey(keys.ed25519).algorithm).toBe('ed25519');
  });

  it('throws DER_MALFORMED for a broken certificate and KEY_MALFORMED for a broken key', () => {
    expect(codeOf(() => keyMatchesCertificate(keys.ed25519, new Uint8Array([0x30, 0x00])))).toBe(
      'DER_MALFORMED',
    );
    expect(codeOf(() => keyMatchesCertificate('nope', der(cas.ed25519.certPem)))).toBe('KEY_MALFORMED');
  });
});
