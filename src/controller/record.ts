import type * as k8s from '@kubernetes/client-node';
import { ANNOTATION_PREFIX, Annotation, SecretKey, STATUS_ANNOTATION_PREFIX } from '../names.ts';
import {
  type CertSummary,
  certificatesFromPem,
  isPkiError,
  readCertificateSummary,
  withOpenSslCheck,
} from '../pki/index.ts';
import { decodeData, trustDigest } from './secret-body.ts';

/**
 * What the controller remembers of a TLS Secret between events: names, the cert-rotator
 * annotations and a summary of the leaf certificate. Never the Secret's data.
 */
export interface SecretRecord {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  /** Only the `cert-rotator.io/*` and `status.cert-rotator.io/*` annotations. */
  annotations: Record<string, string>;
  managed: boolean;
  /** Readable for expiry; `cert.problems` lists the parts not acceptable to act on. */
  cert: CertSummary | null;
  /** Why `cert` is null: missing or unparseable tls.crt. */
  certProblem?: string;
  /** `trustDigest` of ca.crt; absent when the Secret has none. Never the bytes themselves. */
  caDigest?: string;
}

export function secretKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function ourAnnotations(all: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!all) return out;
  for (const [k, v] of Object.entries(all)) {
    if (k.startsWith(ANNOTATION_PREFIX) || k.startsWith(STATUS_ANNOTATION_PREFIX)) out[k] = v;
  }
  return out;
}

/**
 * Leaf summary of a base64 `tls.crt` value, or the reason there is none. With `actOn` (a Secret
 * the controller may renew from its identity) OpenSSL must also accept the certificate and read
 * the same identity, or the summary carries an `openssl` problem (see pki/x509-check.ts).
 */
export function summarizeTlsCrt(
  b64: string | undefined,
  actOn = false,
): { cert: CertSummary | null; problem?: string } {
  if (!b64) return { cert: null, problem: `${SecretKey.certificate} is missing or empty` };
  try {
    const pem = decodeData(b64);
    const leaf = certificatesFromPem(pem)[0];
    if (!leaf) return { cert: null, problem: `${SecretKey.certificate} holds no certificate` };
    const summary = readCertificateSummary(leaf);
    return { cert: actOn ? withOpenSslCheck(leaf, summary) : summary };
  } catch (err) {
    const why = isPkiError(err) ? err.message : 'unreadable';
    return { cert: null, problem: `${SecretKey.certificate} cannot be parsed: ${why}` };
  }
}

/**
 * Why a Secret's `tls.crt` gives no certificate (missing, empty, or why it does not parse), or
 * undefined when it holds one. The controller puts this in its events; `scan` shows it too.
 */
export function certificateProblem(secret: k8s.V1Secret): string | undefined {
  return summarizeTlsCrt(secret.data?.[SecretKey.certificate]).problem;
}

/**
 * The record of a Secret. `crossCheck`: the Secret is about to be acted on (read again for a
 * renewal), so an opted-in Secret's certificate is also read by OpenSSL (about 25-35 µs; not paid
 * for every Secret at start-up and on every watch event, where only der.ts's strict reading is used).
 */
export function recordFromSecret(secret: k8s.V1Secret, crossCheck = false): SecretRecord {
  const annotations = ourAnnotations(secret.metadata?.annotations);
  const managed = annotations[Annotation.enabled] === 'true';
  const { cert, problem } = summarizeTlsCrt(secret.data?.[SecretKey.certificate], managed && crossCheck);
  const ca = secret.data?.[SecretKey.caCertificate];
  return {
    namespace: secret.metadata?.namespace ?? '',
    name: secret.metadata?.name ?? '',
    uid: secret.metadata?.uid ?? '',
    resourceVersion: secret.metadata?.resourceVersion ?? '',
    annotations,
    managed,
    cert,
    ...(problem !== undefined ? { certProblem: problem } : {}),
    ...(ca ? { caDigest: trustDigest(ca) } : {}),
  };
}
