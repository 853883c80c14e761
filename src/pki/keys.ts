import { createPrivateKey, createPublicKey, generateKeyPair, hash, type KeyObject } from 'node:crypto';
import { certificateParts } from './der.ts';
import { PkiError } from './errors.ts';
import type { KeyAlgorithm } from './key-algorithms.ts';
import { splitPem } from './pem.ts';

export { isKeyAlgorithm, KEY_ALGORITHMS, type KeyAlgorithm } from './key-algorithms.ts';

export interface GeneratedKey {
  /** PKCS#8 "PRIVATE KEY" PEM. */
  privateKeyPem: string;
  algorithm: KeyAlgorithm;
}

function generate(type: 'ec' | 'rsa' | 'ed25519', options: object): Promise<KeyObject> {
  return new Promise((resolve, reject) => {
    // The overloads of generateKeyPair are keyed on literal types; this wrapper keeps one call site.
    const cb = (err: Error | null, _pub: KeyObject, priv: KeyObject) => (err ? reject(err) : resolve(priv));
    if (type === 'ec') generateKeyPair('ec', options as { namedCurve: string }, cb);
    else if (type === 'rsa') generateKeyPair('rsa', options as { modulusLength: number }, cb);
    else generateKeyPair('ed25519', options, cb);
  });
}

/** Generates a fresh private key off the main thread (node:crypto's async generateKeyPair). */
export async function generateKey(algorithm: KeyAlgorithm): Promise<GeneratedKey> {
  let key: KeyObject;
  switch (algorithm) {
    case 'ecdsa-p256':
      key = await generate('ec', { namedCurve: 'P-256' });
      break;
    case 'ecdsa-p384':
      key = await generate('ec', { namedCurve: 'P-384' });
      break;
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096':
      key = await generate('rsa', { modulusLength: Number(algorithm.slice(4)), publicExponent: 0x10001 });
      break;
    case 'ed25519':
      key = await generate('ed25519', {});
      break;
    default:
      throw new PkiError('UNSUPPORTED_KEY', `unsupported key algorithm ${JSON.stringify(algorithm)}`);
  }
  return { privateKeyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm };
}

export interface LoadedPrivateKey {
  key: KeyObject;
  algorithm: KeyAlgorithm;
  /** DER SubjectPublicKeyInfo of the matching public key. */
  spki: Uint8Array;
  spkiSha256: string;
}

const KEY_LABELS: Record<string, 'pkcs8' | 'pkcs1' | 'sec1'> = {
  'PRIVATE KEY': 'pkcs8',
  'RSA PRIVATE KEY': 'pkcs1',
  'EC PRIVATE KEY': 'sec1',
};

function algorithmOf(key: KeyObject): KeyAlgorithm {
  const type = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails ?? {};
  if (type === 'ed25519') return 'ed25519';
  if (type === 'ec') {
    if (d.namedCurve === 'prime256v1') return 'ecdsa-p256';
    if (d.namedCurve === 'secp384r1') return 'ecdsa-p384';
    throw new PkiError('UNSUPPORTED_KEY', `unsupported EC curve ${d.namedCurve ?? '(unknown)'}`);
  }
  if (type === 'rsa') {
    const bits = d.modulusLength;
    if (bits === 2048 || bits === 3072 || bits === 4096) return `rsa-${bits}`;
    throw new PkiError('UNSUPPORTED_KEY', `unsupported RSA key size ${bits ?? '(unknown)'}`);
  }
  throw new PkiError('UNSUPPORTED_KEY', `unsupported private key type ${type ?? '(unknown)'}`);
}

/**
 * Decodes the first private key block of `pem` (PKCS#8, PKCS#1 RSA or SEC1 EC; other blocks such
 * as "EC PARAMETERS" are skipped). KEY_MALFORMED if there is none or it does not decode,
 * UNSUPPORTED_KEY for encrypted keys or algorithms outside KEY_ALGORITHMS.
 */
export function loadPrivateKey(pem: string): LoadedPrivateKey {
  let blocks: ReturnType<typeof splitPem>;
  try {
    blocks = splitPem(pem);
  } catch (err) {
    throw new PkiError('KEY_MALFORMED', `private key PEM is malformed: ${(err as Error).message}`);
  }
  if (blocks.some((b) => b.label === 'ENCRYPTED PRIVATE KEY')) {
    throw new PkiError('UNSUPPORTED_KEY', 'encrypted private keys are not supported');
  }
  const block = blocks.find((b) => KEY_LABELS[b.label] !== undefined);
  if (block === undefined) {
    throw new PkiError('KEY_MALFORMED', 'no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block found');
  }
  const type = KEY_LABELS[block.label]!;
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.from(block.der), format: 'der', type });
  } catch {
    // The underlying message may quote decoder internals; keep ours generic and key-free.
    throw new PkiError('KEY_MALFORMED', `${block.label} block does not decode as a ${type} private key`);
  }
  const expectedType = type === 'pkcs1' ? 'rsa' : type === 'sec1' ? 'ec' : undefined;
  if (expectedType !== undefined && key.asymmetricKeyType !== expectedType) {
    throw new PkiError(
      'KEY_MALFORMED',
      `${block.label} block holds a ${key.asymmetricKeyType ?? 'non-'} key`,
    );
  }
  const algorithm = algorithmOf(key);
  const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  return { key, algorithm, spki, spkiSha256: hash('sha256', spki, 'hex') };
}

/** Algorithm and canonical public-key fingerprint (same as CertSummary.publicKeySha256) of a private key PEM. */
export function inspectPrivateKey(pem: string): { algorithm: KeyAlgorithm; spkiSha256: string } {
  const { algorithm, spkiSha256 } = loadPrivateKey(pem);
  return { algorithm, spkiSha256 };
}

/** True when `spki` (DER, from a certificate) is the public half of `key`. */
export function spkiMatchesKey(key: LoadedPrivateKey, spki: Uint8Array): boolean {
  if (hash('sha256', spki, 'hex') === key.spkiSha256) return true;
  // Same key, different encoding (e.g. a compressed EC point): compare as key objects. Only keys
  // of the same type and curve are compared: in Node 24, KeyObject.equals() across key types
  // returns false but leaves an OpenSSL error queued, which then fails the next unrelated
  // createPrivateKey() call.
  let theirs: KeyObject;
  try {
    theirs = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch {
    return false;
  }
  const ours = createPublicKey(key.key);
  if (
    theirs.asymmetricKeyType !== ours.asymmetricKeyType ||
    theirs.asymmetricKeyDetails?.namedCurve !== ours.asymmetricKeyDetails?.namedCurve ||
    theirs.asymmetricKeyDetails?.modulusLength !== ours.asymmetricKeyDetails?.modulusLength
  ) {
    return false;
  }
  return theirs.equals(ours);
}

/**
 * Whether the private key in `keyPem` belongs to the certificate. Throws KEY_MALFORMED /
 * UNSUPPORTED_KEY for a bad key and DER_MALFORMED for a bad certificate.
 */
export function keyMatchesCertificate(keyPem: string, certDer: Uint8Array): boolean {
  const key = loadPrivateKey(keyPem);
  return spkiMatchesKey(key, certificateParts(certDer).spki);
}
