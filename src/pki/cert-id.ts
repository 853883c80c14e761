import type * as X509 from '@peculiar/x509';
import { PkiError } from './errors.ts';
import { x509 as loadX509 } from './x509-lazy.ts';

/**
 * The ACME Renewal Information certificate identifier (RFC 9773 §4.1):
 * base64url(authorityKeyIdentifier.keyIdentifier) "." base64url(serial number DER content
 * octets). Undefined when the certificate has no AKI keyIdentifier (ARI cannot name it).
 */
export function acmeCertId(der: Uint8Array): string | undefined {
  const x509 = loadX509();
  let cert: X509.X509Certificate;
  try {
    cert = new x509.X509Certificate(Buffer.from(der));
  } catch (err) {
    throw new PkiError('DER_MALFORMED', `certificate cannot be parsed: ${(err as Error).message}`);
  }
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) return undefined;
  let serial = Buffer.from(cert.serialNumber.length % 2 ? `0${cert.serialNumber}` : cert.serialNumber, 'hex');
  // The DER INTEGER content: a positive serial whose top bit is set carries a leading zero.
  if ((serial[0] ?? 0) & 0x80) serial = Buffer.concat([Buffer.of(0), serial]);
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${serial.toString('base64url')}`;
}
