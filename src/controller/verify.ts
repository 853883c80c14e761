import { SecretKey } from '../names.ts';
import {
  type CertSummary,
  certificatesFromPem,
  toPem,
  verifyIssued as verifyCertificate,
} from '../pki/index.ts';
import { type Issued, RenewFailure, type RenewInput, type RenewOutput } from './renew.ts';

/** How far a new certificate's notBefore may lie after the renewal started (CA clock). */
const ISSUER_CLOCK_SKEW_MS = 60_000;

/**
 * May this certificate be written? The leaf parses, matches the key, covers every requested
 * name, is valid now, and is signed by the next certificate of the chain (or the CA).
 */
export function verifyIssued(input: Pick<RenewInput, 'issuer' | 'now'>, issued: Issued): RenewOutput {
  let summary: CertSummary;
  try {
    // The leaf must be signed by the next certificate of the chain (or by the CA for a bare leaf).
    const next = certificatesFromPem(issued.chainPem)[1];
    const issuerCertPem = next ? toPem('CERTIFICATE', next) : issued.caPem;
    summary = verifyCertificate({
      certPem: issued.chainPem,
      keyPem: issued.keyPem,
      identity: issued.identity,
      // A CA stamps notBefore with its own "now" (Pebble does not backdate): allow a little skew.
      // A CSR may be signed minutes after the renewal started: judge it when it arrived.
      now: Math.max(input.now, issued.issuedAt ?? 0) + ISSUER_CLOCK_SKEW_MS,
      ...(issuerCertPem ? { issuerCertPem } : {}),
    });
  } catch (err) {
    throw new RenewFailure(
      'VERIFY_FAILED',
      `issuer "${input.issuer.name}" returned a certificate that fails verification: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return {
    data: {
      [SecretKey.certificate]: issued.chainPem,
      [SecretKey.privateKey]: issued.keyPem,
      ...(issued.caPem !== undefined ? { [SecretKey.caCertificate]: issued.caPem } : {}),
    },
    summary,
    keyRotated: issued.keyRotated,
    ...(issued.afterWrite ? { afterWrite: issued.afterWrite } : {}),
    ...(issued.recentOrders ? { recentOrders: issued.recentOrders } : {}),
  };
}
