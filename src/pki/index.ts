export { acmeCertId } from './cert-id.ts';
export { createCsrPem, type ParsedCsr, parseCsr } from './csr.ts';
export {
  type CertificateParts,
  type CertProblem,
  type CertSummary,
  certificateParts,
  keyAlgorithmOfSpki,
  readCertificateSummary,
  unacceptableError,
} from './der.ts';
export { type CertField, isPkiError, PkiError, type PkiErrorCode } from './errors.ts';
export { canonicalIp, formatIp, parseIp } from './ip.ts';
export {
  type GeneratedKey,
  generateKey,
  inspectPrivateKey,
  isKeyAlgorithm,
  KEY_ALGORITHMS,
  type KeyAlgorithm,
  keyMatchesCertificate,
} from './keys.ts';
export { certificatesFromPem, type PemBlock, splitPem, toPem } from './pem.ts';
export {
  type Identity,
  type IssuedCertificate,
  type IssueRequest,
  identityFromSummary,
  issueCertificate,
  pathLengthProblem,
} from './sign.ts';
export { anchorOf, issuedBy, trustAnchors } from './trust-anchor.ts';
export { missingNames, type VerifyIssuedInput, verifyIssued } from './verify.ts';
export {
  assertActionable,
  assertSigningCa,
  type OpenSslReading,
  readWithOpenSsl,
  withOpenSslCheck,
} from './x509-check.ts';
