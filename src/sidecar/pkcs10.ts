/**
 * A PKCS#10 certificate request (RFC 2986) built with node:crypto alone: subject (an optional
 * CN), the SubjectPublicKeyInfo, an extensionRequest carrying the subjectAltName, signed with
 * the private key. Written by hand so the `--csr-signer` sidecar does not load an X.509
 * library (~15–20 MiB of RSS) to make one small structure.
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign } from 'node:crypto';
import { parseIp } from '../pki/ip.ts';
import { toPem } from '../pki/pem.ts';
import type { Identity } from '../pki/sign.ts';

function len(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return [0x80 | out.length, ...out];
}

function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag, ...len(body.length)]), body]);
}

const seq = (...p: Uint8Array[]) => tlv(0x30, ...p);
const set = (...p: Uint8Array[]) => tlv(0x31, ...p);

function oid(dotted: string): Uint8Array {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const bytes = [40 * a + b];
  for (const n of rest) {
    const chunk = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

const ascii = (s: string) => Buffer.from(s, 'ascii');

function subjectAltNames(identity: Identity): Uint8Array {
  const names: Uint8Array[] = [];
  for (const d of identity.dnsNames) names.push(tlv(0x82, ascii(d)));
  for (const ip of identity.ipAddresses) {
    const b = parseIp(ip);
    if (b === undefined) throw new Error(`${JSON.stringify(ip)} is not an IP address`);
    names.push(tlv(0x87, b));
  }
  for (const u of identity.uris) names.push(tlv(0x86, ascii(u)));
  return seq(...names);
}

function signatureAlgorithm(key: KeyObject): { algId: Uint8Array; hash: string | null } {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const p384 = key.asymmetricKeyDetails?.namedCurve === 'secp384r1';
    return {
      algId: seq(oid(p384 ? '1.2.840.10045.4.3.3' : '1.2.840.10045.4.3.2')),
      hash: p384 ? 'sha384' : 'sha256',
    };
  }
  if (type === 'rsa')
    return { algId: seq(oid('1.2.840.113549.1.1.11'), Buffer.from([0x05, 0x00])), hash: 'sha256' };
  if (type === 'ed25519') return { algId: seq(oid('1.3.101.112')), hash: null };
  throw new Error(`cannot sign a certificate request with a ${type ?? 'unknown'} key`);
}

/** PEM "CERTIFICATE REQUEST" for `identity`, signed by `keyPem` (proof of possession). */
export function createCertificateRequest(keyPem: string, identity: Identity): string {
  const key = createPrivateKey(keyPem);
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const subject =
    identity.commonName === undefined
      ? seq()
      : seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(identity.commonName, 'utf8')))));
  const hasNames = identity.dnsNames.length + identity.ipAddresses.length + identity.uris.length > 0;
  const attributes = hasNames
    ? tlv(
        0xa0,
        seq(
          oid('1.2.840.113549.1.9.14'), // extensionRequest
          set(seq(seq(oid('2.5.29.17'), tlv(0x04, subjectAltNames(identity))))),
        ),
      )
    : tlv(0xa0);
  const info = seq(Buffer.from([0x02, 0x01, 0x00]), subject, spki, attributes);
  const { algId, hash } = signatureAlgorithm(key);
  const signature = sign(hash, info, key);
  const der = seq(info, algId, tlv(0x03, Buffer.from([0x00]), signature));
  return toPem('CERTIFICATE REQUEST', der);
}
