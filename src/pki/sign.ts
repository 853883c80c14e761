import { randomBytes, webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';
import { type CertSummary, certificateParts, keyAlgorithmOfSpki, readCertificateSummary } from './der.ts';
import { PkiError } from './errors.ts';
import { parseIp } from './ip.ts';
import { type KeyAlgorithm, type LoadedPrivateKey, loadPrivateKey, spkiMatchesKey } from './keys.ts';
import { certificatesFromPem, toPem } from './pem.ts';
import { x509 as loadX509 } from './x509-lazy.ts';

/** The names a certificate is for. */
export interface Identity {
  commonName?: string;
  dnsNames: string[];
  /** IPv4 or IPv6 literals, any valid text form. */
  ipAddresses: string[];
  uris: string[];
}

export interface IssueRequest {
  /** Private key (any supported PEM form) whose public half the certificate certifies. */
  subjectKeyPem?: string;
  /** Or only the public key (DER SubjectPublicKeyInfo), e.g. from a CSR; needs a CA `issuer`. */
  subjectSpki?: Uint8Array;
  /** Subject O attributes after the CN (a CSR signer copies the allowed ones). */
  organizations?: readonly string[];
  /**
   * Exact key usages in Kubernetes' names (`digital signature`, `key encipherment`,
   * `server auth`, `client auth`); absent: the defaults described at issueCertificate.
   */
  usages?: readonly string[];
  identity: Identity;
  /** ms since the epoch; certificates carry whole seconds, so both are truncated to seconds. */
  notBefore: number;
  notAfter: number;
  /** The CA that signs (its first certificate is the issuer; the rest is chain), or 'self'. */
  issuer: { certPem: string; keyPem: string } | 'self';
  /** Issue a CA certificate (root when self-signed, intermediate otherwise). Default false. */
  isCA?: boolean;
}

export interface IssuedCertificate {
  certPem: string;
  /** Leaf followed by the issuer's certificate(s) when CA-issued; the leaf alone when self-signed. */
  chainPem: string;
  /** The issuing CA certificate, or the certificate itself when self-signed. */
  caPem: string;
}

// WebCrypto provider for @peculiar/x509, passed per call so the library's global stays untouched.
const crypto = webcrypto;

/** WebCrypto import and signature parameters for a key of `alg` (RSA keys sign with PKCS#1 v1.5, SHA-256). */
export function signingParams(alg: KeyAlgorithm): {
  importAlg: webcrypto.Algorithm & Record<string, unknown>;
  sign: webcrypto.Algorithm;
} {
  switch (alg) {
    case 'ecdsa-p256':
      return {
        importAlg: { name: 'ECDSA', namedCurve: 'P-256' },
        sign: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.Algorithm,
      };
    case 'ecdsa-p384':
      return {
        importAlg: { name: 'ECDSA', namedCurve: 'P-384' },
        sign: { name: 'ECDSA', hash: 'SHA-384' } as webcrypto.Algorithm,
      };
    case 'ed25519':
      return { importAlg: { name: 'Ed25519' }, sign: { name: 'Ed25519' } };
    default:
      return {
        importAlg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
        sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as webcrypto.Algorithm,
      };
  }
}

function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return [0x80 | out.length, ...out];
}

function derTlv(tag: number, content: Uint8Array): Uint8Array {
  const head = [tag, ...derLength(content.length)];
  const out = new Uint8Array(head.length + content.length);
  out.set(head, 0);
  out.set(content, head.length);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const ASCII_NAME = /^[\x21-\x7e]+$/;

/** Checks an identity and returns the SAN GeneralNames DER, or undefined when there are no names. */
export function sanDer(identity: Identity): Uint8Array | undefined {
  const ascii = new TextEncoder();
  const names: Uint8Array[] = [];
  for (const dns of identity.dnsNames) {
    if (!ASCII_NAME.test(dns)) {
      throw new PkiError(
        'INVALID_IDENTITY',
        `DNS name ${JSON.stringify(dns)} is empty or not printable ASCII`,
      );
    }
    names.push(derTlv(0x82, ascii.encode(dns)));
  }
  for (const ip of identity.ipAddresses) {
    const bytes = parseIp(ip);
    if (bytes === undefined) {
      throw new PkiError('INVALID_IDENTITY', `${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
    }
    names.push(derTlv(0x87, bytes));
  }
  for (const uri of identity.uris) {
    if (!ASCII_NAME.test(uri) || !URL.canParse(uri)) {
      throw new PkiError('INVALID_IDENTITY', `URI ${JSON.stringify(uri)} is not an absolute ASCII URI`);
    }
    names.push(derTlv(0x86, ascii.encode(uri)));
  }
  return names.length === 0 ? undefined : derTlv(0x30, concat(names));
}

function randomSerialHex(): string {
  // 128 random bits; a zero first octet is redrawn so the INTEGER stays 16 octets (plus a sign
  // octet when the top bit is set, which the generator adds) and minimally encoded.
  let bytes = randomBytes(16);
  while (bytes[0] === 0) bytes = randomBytes(16);
  return bytes.toString('hex');
}

function toArrayBuffer(u: Uint8Array): ArrayBuffer {
  return u.slice().buffer as ArrayBuffer;
}

interface Issuer {
  key: LoadedPrivateKey;
  /** DER of the issuer's subject Name (becomes the new certificate's issuer). */
  name: Uint8Array;
  /** Key identifier for authorityKeyIdentifier, hex. */
  keyIdHex?: string;
  certs: Uint8Array[];
}

function loadIssuer(issuer: { certPem: string; keyPem: string }): Issuer {
  const x509 = loadX509();
  const certs = certificatesFromPem(issuer.certPem);
  const caDer = certs[0]!;
  const summary = readCertificateSummary(caDer);
  if (!summary.isCA) {
    throw new PkiError(
      'ISSUER_NOT_CA',
      `issuer certificate${summary.subjectCommonName ? ` "${summary.subjectCommonName}"` : ''} is not a CA (basicConstraints cA is not set)`,
    );
  }
  const key = loadPrivateKey(issuer.keyPem);
  const parts = certificateParts(caDer);
  if (!spkiMatchesKey(key, parts.spki)) {
    throw new PkiError('KEY_MISMATCH', 'issuer private key does not belong to the issuer certificate');
  }
  let keyIdHex: string | undefined;
  try {
    const ski = new x509.X509Certificate(toArrayBuffer(caDer)).getExtension(
      x509.SubjectKeyIdentifierExtension,
    );
    keyIdHex = ski?.keyId;
  } catch {
    keyIdHex = undefined; // fall back to deriving the identifier from the key below
  }
  return { key, name: parts.subject, certs, ...(keyIdHex ? { keyIdHex } : {}) };
}

/**
 * Issues a certificate for `req.subjectKeyPem`, signed by `req.issuer` (or by the subject key
 * itself). Leaves get keyUsage digitalSignature (+keyEncipherment for RSA) and extKeyUsage
 * serverAuth+clientAuth; CAs get keyCertSign+cRLSign. SAN is critical when there is no CN.
 */
export async function issueCertificate(req: IssueRequest): Promise<IssuedCertificate> {
  const { identity } = req;
  const isCA = req.isCA === true;
  if (!Number.isFinite(req.notBefore) || !Number.isFinite(req.notAfter) || req.notAfter <= req.notBefore) {
    throw new PkiError('INVALID_VALIDITY', 'notBefore and notAfter must be finite with notBefore < notAfter');
  }
  const cn = identity.commonName;
  if (cn !== undefined && (cn.length === 0 || cn.length > 64)) {
    throw new PkiError('INVALID_IDENTITY', 'commonName must be 1 to 64 characters');
  }
  const san = sanDer(identity);
  if (san === undefined && cn === undefined) {
    throw new PkiError('INVALID_IDENTITY', 'identity has no commonName and no subject alternative names');
  }

  const x509 = loadX509();
  const subjectKey = req.subjectKeyPem !== undefined ? loadPrivateKey(req.subjectKeyPem) : undefined;
  const spkiDer = subjectKey?.spki ?? req.subjectSpki;
  if (spkiDer === undefined) throw new PkiError('KEY_MALFORMED', 'no subject key or public key given');
  const subjectAlgorithm = subjectKey?.algorithm ?? keyAlgorithmOfSpki(spkiDer);
  if (subjectAlgorithm === 'unknown') {
    throw new PkiError('UNSUPPORTED_KEY', 'the subject public key is not ECDSA P-256/P-384, RSA or Ed25519');
  }
  const issuer = req.issuer === 'self' ? undefined : loadIssuer(req.issuer);
  const signer = issuer?.key ?? subjectKey;
  if (signer === undefined)
    throw new PkiError('KEY_MALFORMED', 'a self-signed certificate needs the subject private key');
  const params = signingParams(signer.algorithm);

  const rdns: Array<Record<string, Array<{ utf8String: string }>>> = [];
  if (cn !== undefined) rdns.push({ CN: [{ utf8String: cn }] });
  for (const o of req.organizations ?? []) rdns.push({ O: [{ utf8String: o }] });
  const subjectName = new x509.Name(rdns);
  const issuerName = issuer === undefined ? subjectName : new x509.Name(toArrayBuffer(issuer.name));
  const subjectSpki = toArrayBuffer(spkiDer);

  const rsa = subjectAlgorithm.startsWith('rsa-');
  const wanted = req.usages;
  const usage = isCA
    ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature
    : wanted
      ? (wanted.includes('digital signature') ? x509.KeyUsageFlags.digitalSignature : 0) |
        (wanted.includes('key encipherment') ? x509.KeyUsageFlags.keyEncipherment : 0)
      : x509.KeyUsageFlags.digitalSignature | (rsa ? x509.KeyUsageFlags.keyEncipherment : 0);
  const extendedUsages = wanted
    ? [
        ...(wanted.includes('server auth') ? [x509.ExtendedKeyUsage.serverAuth] : []),
        ...(wanted.includes('client auth') ? [x509.ExtendedKeyUsage.clientAuth] : []),
      ]
    : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];

  try {
    const extensions: X509.Extension[] = [new x509.BasicConstraintsExtension(isCA, undefined, true)];
    if (usage !== 0) extensions.push(new x509.KeyUsagesExtension(usage, true));
    if (!isCA && extendedUsages.length > 0) {
      extensions.push(new x509.ExtendedKeyUsageExtension(extendedUsages));
    }
    if (san !== undefined)
      extensions.push(new x509.Extension('2.5.29.17', cn === undefined, toArrayBuffer(san)));
    extensions.push(await x509.SubjectKeyIdentifierExtension.create(subjectSpki, false, crypto));
    if (issuer?.keyIdHex !== undefined) {
      extensions.push(new x509.AuthorityKeyIdentifierExtension(issuer.keyIdHex));
    } else {
      extensions.push(
        await x509.AuthorityKeyIdentifierExtension.create(toArrayBuffer(signer.spki), false, crypto),
      );
    }

    const signingKey = signer.key.toCryptoKey(params.importAlg, false, ['sign']);
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: randomSerialHex(),
        subject: subjectName,
        issuer: issuerName,
        notBefore: new Date(Math.floor(req.notBefore / 1000) * 1000),
        notAfter: new Date(Math.floor(req.notAfter / 1000) * 1000),
        publicKey: subjectSpki,
        signingKey,
        signingAlgorithm: params.sign,
        extensions,
      },
      crypto,
    );
    const leafDer = new Uint8Array(cert.rawData);
    const certPem = toPem('CERTIFICATE', leafDer);
    if (issuer === undefined) return { certPem, chainPem: certPem, caPem: certPem };
    return {
      certPem,
      chainPem: certPem + issuer.certs.map((c) => toPem('CERTIFICATE', c)).join(''),
      caPem: toPem('CERTIFICATE', issuer.certs[0]!),
    };
  } catch (err) {
    if (err instanceof PkiError) throw err;
    throw new PkiError('SIGNING_FAILED', `could not sign certificate: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** The identity a certificate was issued for, as read back by the fast path. */
export function identityFromSummary(s: CertSummary): Identity {
  return {
    ...(s.subjectCommonName !== undefined ? { commonName: s.subjectCommonName } : {}),
    dnsNames: [...s.dnsNames],
    ipAddresses: [...s.ipAddresses],
    uris: [...s.uris],
  };
}
