import { X509Certificate } from 'node:crypto';
import { type CertSummary, certificateParts, readCertificateSummary } from './der.ts';
import { PkiError } from './errors.ts';
import { canonicalIp } from './ip.ts';
import { keyMatchesCertificate } from './keys.ts';
import { certificatesFromPem } from './pem.ts';
import type { Identity } from './sign.ts';

export interface VerifyIssuedInput {
  /** The certificate PEM; the first CERTIFICATE block is the leaf, the rest is ignored here. */
  certPem: string;
  keyPem: string;
  identity: Identity;
  /** ms since the epoch. */
  now: number;
  /** When given, the leaf must be issued by (name) and signed by the first certificate in it. */
  issuerCertPem?: string;
}

/** Names requested but absent from the certificate, in request order, as "dns:x", "ip:y", ... */
export function missingNames(identity: Identity, s: CertSummary): string[] {
  const missing: string[] = [];
  if (identity.commonName !== undefined && identity.commonName !== s.subjectCommonName) {
    missing.push(`cn:${identity.commonName}`);
  }
  const dns = new Set(s.dnsNames.map((n) => n.toLowerCase()));
  for (const n of identity.dnsNames) if (!dns.has(n.toLowerCase())) missing.push(`dns:${n}`);
  const ips = new Set(s.ipAddresses);
  for (const ip of identity.ipAddresses) if (!ips.has(canonicalIp(ip) ?? ip)) missing.push(`ip:${ip}`);
  const uris = new Set(s.uris);
  for (const u of identity.uris) if (!uris.has(u)) missing.push(`uri:${u}`);
  return missing;
}

function nodeCert(der: Uint8Array, what: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch {
    throw new PkiError('DER_MALFORMED', `${what} certificate cannot be decoded`);
  }
}

/**
 * Checks that a freshly issued (or stored) certificate is usable for `identity` with `keyPem` at
 * `now`, and returns its summary. Checks run in this order, each with its own code: parse
 * (PEM_MALFORMED / NO_CERTIFICATE / DER_MALFORMED), key (KEY_MALFORMED / UNSUPPORTED_KEY /
 * KEY_MISMATCH), names (NAMES_NOT_COVERED), validity window notBefore <= now < notAfter
 * (NOT_VALID_NOW), issuer (ISSUER_MISMATCH). DNS names compare case-insensitively and literally
 * (a requested "*.x" needs "*.x" in the certificate); IPs compare in canonical form.
 */
export function verifyIssued(input: VerifyIssuedInput): CertSummary {
  const leaf = certificatesFromPem(input.certPem)[0]!;
  const summary = readCertificateSummary(leaf);
  if (!keyMatchesCertificate(input.keyPem, leaf)) {
    throw new PkiError('KEY_MISMATCH', 'private key does not belong to the certificate');
  }
  const missing = missingNames(input.identity, summary);
  if (missing.length > 0) {
    throw new PkiError('NAMES_NOT_COVERED', `certificate does not cover ${missing.join(', ')}`);
  }
  if (!(summary.notBefore <= input.now && input.now < summary.notAfter)) {
    const when = input.now < summary.notBefore ? 'not valid before' : 'expired at';
    const at = input.now < summary.notBefore ? summary.notBefore : summary.notAfter;
    throw new PkiError('NOT_VALID_NOW', `certificate is ${when} ${new Date(at).toISOString()}`);
  }
  if (input.issuerCertPem !== undefined) {
    const issuerDer = certificatesFromPem(input.issuerCertPem)[0]!;
    // Names are compared as DER here rather than with X509Certificate.checkIssued(), which also
    // applies OpenSSL's keyUsage policy and so rejects a self-signed leaf as its own issuer.
    const namesMatch = Buffer.from(certificateParts(leaf).issuer).equals(certificateParts(issuerDer).subject);
    const issuer = nodeCert(issuerDer, 'issuer');
    const cert = nodeCert(leaf, 'leaf');
    let signed = false;
    try {
      signed = namesMatch && cert.verify(issuer.publicKey);
    } catch {
      signed = false;
    }
    if (!signed) {
      throw new PkiError('ISSUER_MISMATCH', 'certificate was not issued by the given issuer certificate');
    }
  }
  return summary;
}
