/**
 * PKCS#10 certificate requests: made for the `kubernetesCSR` issuer, read (untrusted) by the
 * CSR signer. Parsing never throws anything but PkiError.
 */
import { sign, webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import * as der from './der-write.ts';
import { PkiError } from './errors.ts';
import { canonicalIp } from './ip.ts';
import { loadPrivateKey } from './keys.ts';
import { toPem } from './pem.ts';
import { derSignature, distinguishedName, type Identity, sanDer } from './sign.ts';
import { x509 as loadX509 } from './x509-lazy.ts';

const crypto = webcrypto;

/**
 * @peculiar/x509 (and the Reflect polyfill its registry needs) is loaded on first use, to read
 * a request: a process that never reads a CSR (most of them) does not pay for it. The same copy
 * as cert-id.ts's (x509-lazy.ts): an ESM import here and a require there would load it twice.
 */
function x509Module(): Promise<typeof X509> {
  return Promise.resolve(loadX509());
}

function toArrayBuffer(u: Uint8Array): ArrayBuffer {
  // Not u.slice(): on a Buffer that is a view into Node's shared pool, whose .buffer is the pool.
  return Uint8Array.prototype.slice.call(u).buffer as ArrayBuffer;
}

const EXTENSION_REQUEST = der.oid('1.2.840.113549.1.9.14');
const SUBJECT_ALT_NAME = der.oid('2.5.29.17');

/**
 * A PKCS#10 request (RFC 2986, PEM) for `identity`, signed with `keyPem` (proof of possession):
 * subject CN (+ O), the names in a subjectAltName extension request. Encoded by der-write.ts and
 * signed by node:crypto, so making a request loads no X.509 library (the sidecar's CSR source
 * and the kubernetesCSR issuer both use it).
 */
export async function createCsrPem(
  keyPem: string,
  identity: Identity,
  organizations: readonly string[] = [],
): Promise<string> {
  const key = loadPrivateKey(keyPem);
  const san = sanDer(identity);
  const attributes = san
    ? [
        der.sequence([
          EXTENSION_REQUEST,
          der.set([der.sequence([der.sequence([SUBJECT_ALT_NAME, der.octetString(san)])])]),
        ]),
      ]
    : [];
  const info = der.sequence([
    der.smallInteger(0),
    distinguishedName(identity.commonName, organizations),
    key.spki,
    der.tlv(0xa0, attributes),
  ]);
  const { algorithmId, digest } = derSignature(key.algorithm);
  try {
    const signature = sign(digest, info, key.key);
    return toPem('CERTIFICATE REQUEST', der.sequence([info, algorithmId, der.bitString(signature)]));
  } catch (err) {
    throw new PkiError('SIGNING_FAILED', `could not create a certificate request: ${(err as Error).message}`);
  }
}

export interface ParsedCsr {
  identity: Identity;
  organizations: string[];
  /** Subject attributes other than CN and O (a signer that does not copy them refuses them). */
  otherSubjectAttributes: string[];
  /** SAN entries of kinds other than DNS, IP, URI (e.g. email). */
  otherNames: string[];
  /** basicConstraints cA=TRUE is requested. */
  requestsCA: boolean;
  /** The request's signature verifies with its own public key (proof of possession). */
  signatureValid: boolean;
  /** DER SubjectPublicKeyInfo. */
  spki: Uint8Array;
}

const OID_CN = '2.5.4.3';
const OID_O = '2.5.4.10';

/** Reads a PEM (or DER) PKCS#10 request. PkiError('CSR_MALFORMED') for anything unreadable. */
export async function parseCsr(input: string | Uint8Array): Promise<ParsedCsr> {
  const x509 = await x509Module();
  let csr: X509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(typeof input === 'string' ? input : toArrayBuffer(input));
  } catch (err) {
    throw new PkiError('CSR_MALFORMED', `certificate request does not decode: ${(err as Error).message}`);
  }
  try {
    let commonName: string | undefined;
    const organizations: string[] = [];
    const other: string[] = [];
    for (const rdn of csr.subjectName.toJSON()) {
      for (const [type, values] of Object.entries(rdn)) {
        const oid = type === 'CN' ? OID_CN : type === 'O' ? OID_O : type;
        for (const v of values) {
          if (oid === OID_CN && commonName === undefined) commonName = v;
          else if (oid === OID_O) organizations.push(v);
          else other.push(`${type}=${v}`);
        }
      }
    }
    const identity: Identity = {
      ...(commonName !== undefined ? { commonName } : {}),
      dnsNames: [],
      ipAddresses: [],
      uris: [],
    };
    const otherNames: string[] = [];
    for (const ext of csr.extensions) {
      if (ext.type === '2.5.29.17') {
        const san = new x509.SubjectAlternativeNameExtension(ext.rawData);
        for (const n of san.names.toJSON()) {
          if (n.type === 'dns') identity.dnsNames.push(n.value);
          else if (n.type === 'ip') identity.ipAddresses.push(canonicalIp(n.value) ?? n.value);
          else if (n.type === 'url') identity.uris.push(n.value);
          else otherNames.push(`${n.type}:${n.value}`);
        }
      }
    }
    const bcExt = csr.getExtension('2.5.29.19');
    const bc = bcExt ? new x509.BasicConstraintsExtension(bcExt.rawData) : undefined;
    let signatureValid = false;
    try {
      signatureValid = await csr.verify(crypto);
    } catch {
      signatureValid = false;
    }
    return {
      identity,
      organizations,
      otherSubjectAttributes: other,
      otherNames,
      requestsCA: bc?.ca === true,
      signatureValid,
      spki: new Uint8Array(csr.publicKey.rawData),
    };
  } catch (err) {
    if (err instanceof PkiError) throw err;
    throw new PkiError('CSR_MALFORMED', `certificate request cannot be read: ${(err as Error).message}`);
  }
}
