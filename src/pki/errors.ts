/**
 * Every failure in the pki layer is a PkiError carrying a machine-readable code. Callers branch
 * on `code`; `message` is for humans and never contains key material or raw DER.
 */
export type PkiErrorCode =
  /** A PEM block is unterminated, has mismatched labels, headers, or bad base64. */
  | 'PEM_MALFORMED'
  /** Certificate DER is not a well-formed X.509 certificate (as far as the fast path reads it). */
  | 'DER_MALFORMED'
  /**
   * The certificate is readable for its expiry but not acceptable to act on: a part the policy
   * or an issuer would use (names, CA constraints, algorithms, signature) is not strict DER per
   * RFC 5280, or a TLS client (OpenSSL) reads it differently. `field` names the part.
   */
  | 'CERT_UNACCEPTABLE'
  /** PEM text contained no CERTIFICATE block. */
  | 'NO_CERTIFICATE'
  /** No private key block, or the key bytes do not decode. */
  | 'KEY_MALFORMED'
  /** A private key does not belong to the certificate it was paired with. */
  | 'KEY_MISMATCH'
  /** A key decodes but is not one of KEY_ALGORITHMS (or is encrypted). */
  | 'UNSUPPORTED_KEY'
  /** The certificate does not carry every requested name. */
  | 'NAMES_NOT_COVERED'
  /** The certificate is expired or not yet valid at the given instant. */
  | 'NOT_VALID_NOW'
  /** The certificate offered as issuer is not a CA certificate. */
  | 'ISSUER_NOT_CA'
  /** The certificate was not issued (signed) by the given issuer certificate. */
  | 'ISSUER_MISMATCH'
  /** A requested identity is unusable (empty, bad IP literal, non-ASCII DNS name, ...). */
  | 'INVALID_IDENTITY'
  /** notBefore/notAfter are not finite or not in order. */
  | 'INVALID_VALIDITY'
  /** The signing library failed; the message says which step. */
  | 'SIGNING_FAILED'
  /** A PKCS#10 certificate request does not decode. */
  | 'CSR_MALFORMED';

/**
 * The parts of a certificate a CERT_UNACCEPTABLE error can name (see docs/controller.md, "Two
 * levels of reading a certificate"). `openssl` is node:crypto's X509Certificate refusing the
 * certificate or reading its identity differently.
 */
export type CertField =
  | 'version'
  | 'serialNumber'
  | 'signatureAlgorithm'
  | 'signature'
  | 'issuer'
  | 'subject'
  | 'subjectPublicKeyInfo'
  | 'extensions'
  | 'subjectAltName'
  | 'basicConstraints'
  | 'keyUsage'
  | 'extKeyUsage'
  | 'subjectKeyIdentifier'
  | 'authorityKeyIdentifier'
  | 'openssl';

export class PkiError extends Error {
  readonly code: PkiErrorCode;
  /** For CERT_UNACCEPTABLE: the part of the certificate that failed. */
  readonly field: CertField | undefined;

  constructor(code: PkiErrorCode, message: string, options?: { cause?: unknown; field?: CertField }) {
    super(message, options);
    this.name = 'PkiError';
    this.code = code;
    this.field = options?.field;
  }
}

export function isPkiError(err: unknown, code?: PkiErrorCode): err is PkiError {
  return err instanceof PkiError && (code === undefined || err.code === code);
}
