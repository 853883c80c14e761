import 'reflect-metadata';
import { createPrivateKey } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import {
  type CertSummary,
  certificatesFromPem,
  generateKey,
  type Identity,
  type IssuedCertificate,
  issueCertificate,
  KEY_ALGORITHMS,
  type KeyAlgorithm,
} from '../../../src/pki/index.ts';

export const DAY = 86_400_000;

const keyCache = new Map<KeyAlgorithm, Promise<string>>();

/** One PKCS#8 key per algorithm per test file (RSA-4096 generation is slow). */
export function keyFor(alg: KeyAlgorithm): Promise<string> {
  let k = keyCache.get(alg);
  if (k === undefined) {
    k = generateKey(alg).then((g) => g.privateKeyPem);
    keyCache.set(alg, k);
  }
  return k;
}

export async function allKeys(): Promise<Record<KeyAlgorithm, string>> {
  const entries = await Promise.all(KEY_ALGORITHMS.map(async (a) => [a, await keyFor(a)] as const));
  return Object.fromEntries(entries) as Record<KeyAlgorithm, string>;
}

/** The same key re-encoded in its legacy form: PKCS#1 for RSA, SEC1 for EC; PKCS#8 stays for Ed25519. */
export function legacyPem(pkcs8Pem: string): string {
  const key = createPrivateKey(pkcs8Pem);
  if (key.asymmetricKeyType === 'rsa') return key.export({ type: 'pkcs1', format: 'pem' }).toString();
  if (key.asymmetricKeyType === 'ec') return key.export({ type: 'sec1', format: 'pem' }).toString();
  return pkcs8Pem;
}

export function identity(partial: Partial<Identity>): Identity {
  return { dnsNames: [], ipAddresses: [], uris: [], ...partial };
}

export interface Ca {
  keyPem: string;
  certPem: string;
}

export async function makeRootCa(alg: KeyAlgorithm, cn = `Test Root ${alg}`, now = Date.now()): Promise<Ca> {
  const keyPem = await keyFor(alg);
  const issued = await issueCertificate({
    subjectKeyPem: keyPem,
    identity: identity({ commonName: cn }),
    notBefore: now - DAY,
    notAfter: now + 365 * DAY,
    issuer: 'self',
    isCA: true,
  });
  return { keyPem, certPem: issued.certPem };
}

export function der(pem: string): Uint8Array {
  return certificatesFromPem(pem)[0]!;
}

export function leafDer(issued: IssuedCertificate): Uint8Array {
  return der(issued.certPem);
}

/** What @peculiar/x509 (an independent full ASN.1 parser) reads from the same DER, in CertSummary terms. */
export function peculiarSummary(d: Uint8Array, canonicalIp: (s: string) => string | undefined) {
  const c = new x509.X509Certificate(d.slice());
  const san = c.getExtension(x509.SubjectAlternativeNameExtension);
  const items = san?.names.items ?? [];
  const bc = c.getExtension(x509.BasicConstraintsExtension);
  const subjectCN = c.subjectName.getField('CN')[0];
  const issuerCN = c.issuerName.getField('CN')[0];
  return {
    notBefore: c.notBefore.getTime(),
    notAfter: c.notAfter.getTime(),
    serialHex: c.serialNumber.toLowerCase(),
    subjectCommonName: subjectCN,
    issuerCommonName: issuerCN,
    dnsNames: items.filter((i) => i.type === 'dns').map((i) => i.value),
    ipAddresses: items.filter((i) => i.type === 'ip').map((i) => canonicalIp(i.value) ?? `bad:${i.value}`),
    uris: items.filter((i) => i.type === 'url').map((i) => i.value),
    isCA: bc?.ca ?? false,
    selfIssued: Buffer.from(c.subjectName.toArrayBuffer()).equals(Buffer.from(c.issuerName.toArrayBuffer())),
    spki: new Uint8Array(c.publicKey.rawData),
  };
}

export type Comparable = Omit<CertSummary, 'spkiSha256' | 'keyAlgorithm'>;
