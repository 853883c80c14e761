import { hash, randomBytes, sign } from 'node:crypto';
import {
  type CertSummary,
  certificateParts,
  keyAlgorithmOfSpki,
  readCertificateSummary,
  subjectPublicKeyBits,
} from './der.ts';
import * as der from './der-write.ts';
import { PkiError } from './errors.ts';
import { parseIp } from './ip.ts';
import { type KeyAlgorithm, type LoadedPrivateKey, loadPrivateKey, spkiMatchesKey } from './keys.ts';
import { certificatesFromPem, toPem } from './pem.ts';
import { assertSigningCa } from './x509-check.ts';

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
  /** A CA's basicConstraints pathLenConstraint (0 to 127); absent: no constraint. Only with isCA. */
  pathLength?: number;
}

export interface IssuedCertificate {
  certPem: string;
  /** Leaf followed by the issuer's certificate(s) when CA-issued; the leaf alone when self-signed. */
  chainPem: string;
  /** The issuing CA certificate, or the certificate itself when self-signed. */
  caPem: string;
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
    names.push(der.tlv(0x82, ascii.encode(dns)));
  }
  for (const ip of identity.ipAddresses) {
    const bytes = parseIp(ip);
    if (bytes === undefined) {
      throw new PkiError('INVALID_IDENTITY', `${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
    }
    names.push(der.tlv(0x87, bytes));
  }
  for (const uri of identity.uris) {
    if (!ASCII_NAME.test(uri) || !URL.canParse(uri)) {
      throw new PkiError('INVALID_IDENTITY', `URI ${JSON.stringify(uri)} is not an absolute ASCII URI`);
    }
    names.push(der.tlv(0x86, ascii.encode(uri)));
  }
  return names.length === 0 ? undefined : der.sequence(names);
}

function randomSerial(): Uint8Array {
  // 128 random bits; a zero first octet is redrawn so the INTEGER stays 16 octets (plus a sign
  // octet when the top bit is set) and minimally encoded.
  let bytes = randomBytes(16);
  while (bytes[0] === 0) bytes = randomBytes(16);
  return bytes;
}

/** The signatureAlgorithm a key of `alg` signs with, and the digest node:crypto signs over. */
export function derSignature(alg: KeyAlgorithm): { algorithmId: Uint8Array; digest: string | null } {
  switch (alg) {
    case 'ecdsa-p256':
      return { algorithmId: ECDSA_SHA256, digest: 'sha256' };
    case 'ecdsa-p384':
      return { algorithmId: ECDSA_SHA384, digest: 'sha384' };
    case 'ed25519':
      return { algorithmId: ED25519, digest: null };
    default:
      return { algorithmId: RSA_SHA256, digest: 'sha256' };
  }
}

const ECDSA_SHA256 = der.sequence([der.oid('1.2.840.10045.4.3.2')]);
const ECDSA_SHA384 = der.sequence([der.oid('1.2.840.10045.4.3.3')]);
const ED25519 = der.sequence([der.oid('1.3.101.112')]);
const RSA_SHA256 = der.sequence([der.oid('1.2.840.113549.1.1.11'), der.NULL]);
const VERSION_3 = der.tlv(0xa0, der.smallInteger(2));
const OID_CN = der.oid('2.5.4.3');
const OID_O = der.oid('2.5.4.10');
const EXT = {
  basicConstraints: der.oid('2.5.29.19'),
  keyUsage: der.oid('2.5.29.15'),
  extKeyUsage: der.oid('2.5.29.37'),
  subjectAltName: der.oid('2.5.29.17'),
  subjectKeyId: der.oid('2.5.29.14'),
  authorityKeyId: der.oid('2.5.29.35'),
};
const SERVER_AUTH = der.oid('1.3.6.1.5.5.7.3.1');
const CLIENT_AUTH = der.oid('1.3.6.1.5.5.7.3.2');
// KeyUsage named bits (RFC 5280 4.2.1.3), as bit numbers.
const DIGITAL_SIGNATURE = 1 << 0;
const KEY_ENCIPHERMENT = 1 << 2;
const KEY_CERT_SIGN = 1 << 5;
const CRL_SIGN = 1 << 6;

/** A subject Name: the CN first (when given), then one RDN per organization, all UTF8String. */
export function distinguishedName(
  commonName: string | undefined,
  organizations: readonly string[],
): Uint8Array {
  const rdns: Uint8Array[] = [];
  if (commonName !== undefined) rdns.push(der.set([der.sequence([OID_CN, der.utf8String(commonName)])]));
  for (const o of organizations) rdns.push(der.set([der.sequence([OID_O, der.utf8String(o)])]));
  return der.sequence(rdns);
}

function extension(id: Uint8Array, critical: boolean, value: Uint8Array): Uint8Array {
  return der.sequence(critical ? [id, der.TRUE, der.octetString(value)] : [id, der.octetString(value)]);
}

/** RFC 5280 key identifier (method 1): SHA-1 of the subjectPublicKey BIT STRING's bits. */
function keyIdentifier(spki: Uint8Array): Uint8Array {
  return hash('sha1', subjectPublicKeyBits(spki), 'buffer');
}

interface Issuer {
  key: LoadedPrivateKey;
  /** DER of the issuer's subject Name (becomes the new certificate's issuer). */
  name: Uint8Array;
  /** Key identifier for authorityKeyIdentifier: the CA's own subjectKeyIdentifier, or derived from its key. */
  keyId: Uint8Array;
  certs: Uint8Array[];
  /** The CA's own pathLenConstraint; undefined: none. */
  pathLen: number | undefined;
}

function loadIssuer(issuer: { certPem: string; keyPem: string }): Issuer {
  const certs = certificatesFromPem(issuer.certPem);
  const caDer = certs[0]!;
  // A CA by both readings (der.ts and OpenSSL), with keyCertSign: clients would refuse every
  // leaf signed by anything less.
  const summary = readCertificateSummary(caDer);
  assertSigningCa(caDer, summary);
  const key = loadPrivateKey(issuer.keyPem);
  const parts = certificateParts(caDer);
  if (!spkiMatchesKey(key, parts.spki)) {
    throw new PkiError('KEY_MISMATCH', 'issuer private key does not belong to the issuer certificate');
  }
  return {
    key,
    name: parts.subject,
    certs,
    keyId: parts.subjectKeyId ?? keyIdentifier(parts.spki),
    pathLen: summary.pathLen,
  };
}

/**
 * Issues a certificate for `req.subjectKeyPem`, signed by `req.issuer` (or by the subject key
 * itself). Leaves get keyUsage digitalSignature (+keyEncipherment for RSA) and extKeyUsage
 * serverAuth+clientAuth; CAs get keyCertSign+cRLSign, no extKeyUsage, and the pathLength asked for
 * (which must fit under the issuing CA's own). SAN is critical when there is no CN.
 * The certificate is encoded here (der-write.ts) and signed by node:crypto: no ASN.1 library
 * is loaded, and a renewal costs one signature and a few small buffers.
 */
export async function issueCertificate(req: IssueRequest): Promise<IssuedCertificate> {
  const { identity } = req;
  const isCA = req.isCA === true;
  if (req.pathLength !== undefined) {
    if (!isCA) throw new PkiError('INVALID_IDENTITY', 'a path length is only for a CA certificate');
    if (!Number.isInteger(req.pathLength) || req.pathLength < 0 || req.pathLength > 127) {
      throw new PkiError('INVALID_IDENTITY', 'a CA path length must be an integer from 0 to 127');
    }
  }
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

  const subjectKey = req.subjectKeyPem !== undefined ? loadPrivateKey(req.subjectKeyPem) : undefined;
  const spkiDer = subjectKey?.spki ?? req.subjectSpki;
  if (spkiDer === undefined) throw new PkiError('KEY_MALFORMED', 'no subject key or public key given');
  const subjectAlgorithm = subjectKey?.algorithm ?? keyAlgorithmOfSpki(spkiDer);
  if (subjectAlgorithm === 'unknown') {
    throw new PkiError('UNSUPPORTED_KEY', 'the subject public key is not ECDSA P-256/P-384, RSA or Ed25519');
  }
  const issuer = req.issuer === 'self' ? undefined : loadIssuer(req.issuer);
  if (isCA && issuer?.pathLen !== undefined) {
    // Verifiers refuse a chain with more CAs below a CA than its pathLenConstraint allows.
    const problem = pathLengthProblem(req.pathLength, issuer.pathLen);
    if (problem !== undefined) throw new PkiError('INVALID_IDENTITY', problem);
  }
  const signer = issuer?.key ?? subjectKey;
  if (signer === undefined)
    throw new PkiError('KEY_MALFORMED', 'a self-signed certificate needs the subject private key');
  const signature = derSignature(signer.algorithm);

  const subjectName = distinguishedName(cn, req.organizations ?? []);

  const rsa = subjectAlgorithm.startsWith('rsa-');
  const wanted = req.usages;
  // A CA signs certificates and CRLs, nothing else (RFC 5280 4.2.1.3): keyCertSign + cRLSign.
  const usage = isCA
    ? KEY_CERT_SIGN | CRL_SIGN
    : wanted
      ? (wanted.includes('digital signature') ? DIGITAL_SIGNATURE : 0) |
        (wanted.includes('key encipherment') ? KEY_ENCIPHERMENT : 0)
      : DIGITAL_SIGNATURE | (rsa ? KEY_ENCIPHERMENT : 0);
  const extendedUsages = wanted
    ? [
        ...(wanted.includes('server auth') ? [SERVER_AUTH] : []),
        ...(wanted.includes('client auth') ? [CLIENT_AUTH] : []),
      ]
    : [SERVER_AUTH, CLIENT_AUTH];

  try {
    const subjectKeyId = keyIdentifier(spkiDer);
    const constraints = isCA
      ? [der.TRUE, ...(req.pathLength !== undefined ? [der.smallInteger(req.pathLength)] : [])]
      : [];
    const extensions = [extension(EXT.basicConstraints, true, der.sequence(constraints))];
    if (usage !== 0) extensions.push(extension(EXT.keyUsage, true, der.namedBits(usage)));
    if (!isCA && extendedUsages.length > 0) {
      extensions.push(extension(EXT.extKeyUsage, false, der.sequence(extendedUsages)));
    }
    if (san !== undefined) extensions.push(extension(EXT.subjectAltName, cn === undefined, san));
    extensions.push(extension(EXT.subjectKeyId, false, der.octetString(subjectKeyId)));
    extensions.push(
      extension(EXT.authorityKeyId, false, der.sequence([der.tlv(0x80, issuer?.keyId ?? subjectKeyId)])),
    );

    const tbs = der.sequence([
      VERSION_3,
      der.unsignedInteger(randomSerial()),
      signature.algorithmId,
      issuer?.name ?? subjectName,
      der.sequence([der.time(req.notBefore), der.time(req.notAfter)]),
      subjectName,
      spkiDer,
      der.tlv(0xa3, der.sequence(extensions)),
    ]);
    const value = sign(signature.digest, tbs, signer.key);
    const leafDer = der.sequence([tbs, signature.algorithmId, der.bitString(value)]);
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

/**
 * Why a CA with path length `requested` (undefined: none) may not be signed by a CA whose own
 * pathLenConstraint is `parent` (undefined: none); undefined when it may.
 */
export function pathLengthProblem(
  requested: number | undefined,
  parent: number | undefined,
): string | undefined {
  if (parent === undefined) return undefined;
  if (parent === 0) return 'the issuing CA has path length 0: it may not sign CA certificates';
  if (requested === undefined)
    return `the issuing CA has path length ${parent}: the new CA needs a path length of at most ${parent - 1}`;
  if (requested >= parent)
    return `path length ${requested} does not fit under the issuing CA's path length ${parent} (at most ${parent - 1})`;
  return undefined;
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
