import { type Issuer, IssuerError } from '../issuers/types.ts';
import { SecretKey } from '../names.ts';
import {
  type CertSummary,
  certificatesFromPem,
  generateKey,
  type Identity,
  inspectPrivateKey,
  isPkiError,
  type KeyAlgorithm,
  toPem,
  verifyIssued,
} from '../pki/index.ts';
import type { SecretPolicy } from './annotations.ts';

export type RenewFailureCode =
  | 'NO_IDENTITY'
  | 'KEY_UNUSABLE'
  | 'KEY_MISMATCH'
  | 'ISSUER_FAILED'
  | 'VERIFY_FAILED';

/** How far a new certificate's notBefore may lie after the renewal started (CA clock, seconds). */
const ISSUER_CLOCK_SKEW_MS = 60_000;

/** Why a renewal could not produce a certificate; the message says what to do. */
export class RenewFailure extends Error {
  readonly code: RenewFailureCode;
  /** The issuer's Retry-After: the next attempt must not come sooner. */
  retryAfterMs?: number;
  constructor(code: RenewFailureCode, message: string) {
    super(message);
    this.name = 'RenewFailure';
    this.code = code;
  }
}

export interface RenewInput {
  namespace: string;
  name: string;
  /** Decoded tls.key of the Secret as read just now ('' if absent). */
  currentKeyPem: string;
  /** Summary of the current leaf, null if missing or unparseable. */
  currentCert: CertSummary | null;
  policy: SecretPolicy;
  issuer: Issuer;
  now: number;
}

export interface RenewOutput {
  /** New values for tls.crt, tls.key and ca.crt (PEM text). */
  data: Record<string, string>;
  summary: CertSummary;
  keyRotated: boolean;
  /** The issuer's hook to run once the Secret holds `data` (e.g. delete persisted order state). */
  afterWrite?: () => Promise<void>;
}

/** The identity to issue for: annotations first, the rest copied from the current certificate. */
export function targetIdentity(policy: SecretPolicy, current: CertSummary | null): Identity {
  const o = policy.identityOverride;
  const commonName = o.commonName ?? current?.subjectCommonName;
  return {
    ...(commonName !== undefined ? { commonName } : {}),
    dnsNames: o.dnsNames ?? current?.dnsNames ?? [],
    ipAddresses: o.ipAddresses ?? current?.ipAddresses ?? [],
    uris: o.uris ?? current?.uris ?? [],
  };
}

async function chooseKey(input: RenewInput): Promise<{ keyPem: string; rotated: boolean }> {
  const { policy, currentCert, currentKeyPem } = input;
  let current: { algorithm: KeyAlgorithm; spkiSha256: string } | undefined;
  if (currentKeyPem) {
    try {
      current = inspectPrivateKey(currentKeyPem);
    } catch (err) {
      if (!policy.rotateKey) {
        const why = isPkiError(err) ? err.message : 'unreadable';
        throw new RenewFailure(
          'KEY_UNUSABLE',
          `${SecretKey.privateKey} cannot be kept (rotate-key is "false"): ${why}`,
        );
      }
    }
  }
  if (!policy.rotateKey) {
    if (!current) {
      throw new RenewFailure(
        'KEY_UNUSABLE',
        `rotate-key is "false" but the Secret has no ${SecretKey.privateKey} to keep`,
      );
    }
    if (currentCert && currentCert.spkiSha256 !== current.spkiSha256) {
      throw new RenewFailure(
        'KEY_MISMATCH',
        `${SecretKey.privateKey} does not match ${SecretKey.certificate}; refusing to keep a key that is not the certificate's (fix the Secret or set rotate-key "true")`,
      );
    }
    if (policy.keyAlgorithm && policy.keyAlgorithm !== current.algorithm) {
      throw new RenewFailure(
        'KEY_UNUSABLE',
        `key-algorithm is ${policy.keyAlgorithm} but the kept key is ${current.algorithm}; set rotate-key "true" to change it`,
      );
    }
    return { keyPem: currentKeyPem, rotated: false };
  }
  const algorithm =
    policy.keyAlgorithm ??
    current?.algorithm ??
    (currentCert && currentCert.keyAlgorithm !== 'unknown' ? currentCert.keyAlgorithm : undefined) ??
    policy.fallbackKeyAlgorithm;
  const key = await generateKey(algorithm);
  return { keyPem: key.privateKeyPem, rotated: true };
}

/** Key, certificate and verification for one Secret. Pure of Kubernetes: the caller writes. */
export async function renewCertificate(input: RenewInput): Promise<RenewOutput> {
  const identity = targetIdentity(input.policy, input.currentCert);
  if (
    identity.dnsNames.length + identity.ipAddresses.length + identity.uris.length === 0 &&
    !identity.commonName
  ) {
    throw new RenewFailure(
      'NO_IDENTITY',
      `nothing to issue for: ${SecretKey.certificate} has no usable certificate and no dns-names, ip-addresses, uris or common-name annotation names one`,
    );
  }
  const chosen = await chooseKey(input);
  let { keyPem, rotated } = chosen;
  let issued: Awaited<ReturnType<Issuer['issue']>>;
  try {
    issued = await input.issuer.issue({
      namespace: input.namespace,
      secretName: input.name,
      identity,
      keyPem,
      now: input.now,
      ...(input.policy.durationMs !== undefined ? { durationMs: input.policy.durationMs } : {}),
    });
  } catch (err) {
    const failure = new RenewFailure('ISSUER_FAILED', err instanceof Error ? err.message : String(err));
    if (err instanceof IssuerError && err.retryAfterMs !== undefined) failure.retryAfterMs = err.retryAfterMs;
    throw failure;
  }
  if (issued.keyPem !== undefined && issued.keyPem !== keyPem) {
    // The issuer certified another key (an ACME order resumed after a crash): write that one,
    // after the same checks a kept key gets.
    keyPem = issued.keyPem;
    let spki: string;
    try {
      spki = inspectPrivateKey(keyPem).spkiSha256;
    } catch (err) {
      throw new RenewFailure(
        'KEY_UNUSABLE',
        `issuer "${input.issuer.name}" returned a key that cannot be used: ${isPkiError(err) ? err.message : 'unreadable'}`,
      );
    }
    let currentSpki: string | undefined;
    try {
      currentSpki = input.currentKeyPem ? inspectPrivateKey(input.currentKeyPem).spkiSha256 : undefined;
    } catch {
      currentSpki = undefined;
    }
    if (!input.policy.rotateKey && spki !== currentSpki) {
      throw new RenewFailure(
        'KEY_MISMATCH',
        `issuer "${input.issuer.name}" certified a key other than the kept ${SecretKey.privateKey} (rotate-key is "false")`,
      );
    }
    rotated = spki !== currentSpki;
  }
  let summary: CertSummary;
  try {
    // The leaf must be signed by the next certificate of the chain (or by the CA for a bare leaf).
    const next = certificatesFromPem(issued.chainPem)[1];
    const issuerCertPem = next ? toPem('CERTIFICATE', next) : issued.caPem;
    summary = verifyIssued({
      certPem: issued.chainPem,
      keyPem,
      identity,
      // A CA stamps notBefore with its own "now" (Pebble does not backdate): allow a little skew.
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
      [SecretKey.privateKey]: keyPem,
      ...(issued.caPem !== undefined ? { [SecretKey.caCertificate]: issued.caPem } : {}),
    },
    summary,
    keyRotated: rotated,
    ...(issued.afterWrite ? { afterWrite: issued.afterWrite } : {}),
  };
}
