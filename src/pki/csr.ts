/**
 * PKCS#10 certificate requests: made for the `kubernetesCSR` issuer, read (untrusted) by the
 * CSR signer. Parsing never throws anything but PkiError.
 */
import { createPublicKey, webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import { PkiError } from './errors.ts';
import { canonicalIp } from './ip.ts';
import { loadPrivateKey } from './keys.ts';
import { type Identity, sanDer, signingParams } from './sign.ts';
import { x509 as loadX509 } from './x509-lazy.ts';

const crypto = webcrypto;

/**
 * @peculiar/x509 (and the Reflect polyfill its registry needs) is loaded on first use: a process
 * that never makes or reads a CSR (most of them) does not pay for it. The same copy as the
 * signer's (x509-lazy.ts): an ESM import here and a require there would load it twice.
 */
function x509Module(): Promise<typeof X509> {
  return Promise.resolve(loadX509());
}

function toArrayBuffer(u: Uint8Array): ArrayBuffer {
  return u.slice().buffer as ArrayBuffer;
}

/** A CSR (PEM) for `identity`, signed with `keyPem`: subject CN (+ O), names in a SAN extension request. */
export async function createCsrPem(
  keyPem: string,
  identity: Identity,
  organizations: readonly string[] = [],
): Promise<string> {
  const x509 = await x509Module();
  const key = loadPrivateKey(keyPem);
  const { importAlg, sign } = signingParams(key.algorithm);
  const rdns: Array<Record<string, Array<{ utf8String: string }>>> = [];
  if (identity.commonName !== undefined) rdns.push({ CN: [{ utf8String: identity.commonName }] });
  for (const o of organizations) rdns.push({ O: [{ utf8String: o }] });
  const san = sanDer(identity);
  const extensions = san ? [new x509.Extension('2.5.29.17', false, toArrayBuffer(san))] : [];
  try {
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      {
        name: new x509.Name(rdns),
        keys: {
          privateKey: key.key.toCryptoKey(importAlg, false, ['sign']),
          publicKey: createPublicKey(key.key).toCryptoKey(importAlg, true, ['verify']),
        },
        signingAlgorithm: sign,
        extensions,
      },
      crypto,
    );
    return csr.toString('pem');
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
