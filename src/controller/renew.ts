import { type Issuer, IssuerError } from '../issuers/types.ts';
import { SecretKey } from '../names.ts';
import {
  type CertSummary,
  generateKey,
  type Identity,
  inspectPrivateKey,
  isPkiError,
  type KeyAlgorithm,
} from '../pki/index.ts';
import type { SecretPolicy } from './annotations.ts';

export type RenewFailureCode =
  | 'NO_IDENTITY'
  | 'KEY_UNUSABLE'
  | 'KEY_MISMATCH'
  | 'ISSUER_FAILED'
  | 'VERIFY_FAILED';

/** Why a renewal could not produce a certificate; the message says what to do. */
export class RenewFailure extends Error {
  readonly code: RenewFailureCode;
  /** The issuer's Retry-After: the next attempt must not come sooner. */
  retryAfterMs?: number;
  /** Order times the issuer counted (ACME's cap), to record on the Secret with the failure. */
  recentOrders?: number[];
  constructor(code: RenewFailureCode, message: string) {
    super(message);
    this.name = 'RenewFailure';
    this.code = code;
  }

  /** `err` as a RenewFailure: itself, or an issuer failure with its message. */
  static from(err: unknown): RenewFailure {
    return err instanceof RenewFailure
      ? err
      : new RenewFailure('ISSUER_FAILED', err instanceof Error ? err.message : String(err));
  }
}

/**
 * Not a failure: the issuer is waiting on someone else (a CSR nobody has approved yet) and gave
 * its worker back. The controller keeps `state: Issuing` and looks again after `retryAfterMs`.
 */
export class RenewPending extends Error {
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number) {
    super(message);
    this.name = 'RenewPending';
    this.retryAfterMs = retryAfterMs;
  }
}

export interface RenewInput {
  namespace: string;
  name: string;
  /** Decoded tls.key of the Secret as read just now ('' if absent). */
  currentKeyPem: string;
  /** Summary of the current leaf, null if missing or unparseable. */
  currentCert: CertSummary | null;
  /** Why `currentCert` is null (missing, or why tls.crt does not parse), for messages. */
  certProblem?: string;
  policy: SecretPolicy;
  issuer: Issuer;
  now: number;
  /** Order times recorded on the Secret (`status.cert-rotator.io/acme-orders`), ms. */
  recentOrders?: number[];
}

export interface RenewOutput {
  /** New values for tls.crt, tls.key and ca.crt (PEM text). */
  data: Record<string, string>;
  summary: CertSummary;
  keyRotated: boolean;
  /** The issuer's hook to run once the Secret holds `data` (e.g. delete persisted order state). */
  afterWrite?: () => Promise<void>;
  /** Order times to record on the Secret (ACME's cap), when the issuer counted one. */
  recentOrders?: number[];
}

/**
 * The identity to issue for: annotations first, the rest copied from the current certificate,
 * but only from one acceptable to act on (no problems, OpenSSL reads the same names).
 */
export function targetIdentity(policy: SecretPolicy, cert: CertSummary | null): Identity {
  const current = cert && cert.problems.length === 0 ? cert : null;
  const o = policy.identityOverride;
  const commonName = o.commonName ?? current?.subjectCommonName;
  return {
    ...(commonName !== undefined ? { commonName } : {}),
    dnsNames: o.dnsNames ?? current?.dnsNames ?? [],
    ipAddresses: o.ipAddresses ?? current?.ipAddresses ?? [],
    uris: o.uris ?? current?.uris ?? [],
  };
}

/** Why the current certificate gives no identity to copy, for a NO_IDENTITY message. */
function unusableCertificate(cert: CertSummary | null): string {
  const problem = cert?.problems[0];
  if (problem === undefined) return `${SecretKey.certificate} has no usable certificate`;
  return `${SecretKey.certificate} is readable but not acceptable to act on (${problem.field}: ${problem.reason})`;
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
    // The canonical public key: an RSA certificate without the NULL parameters, or with a
    // compressed EC point, still matches its key (keyMatchesCertificate agrees).
    if (currentCert && currentCert.publicKeySha256 !== current.spkiSha256) {
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

/** What the issuer handed back, with the key it certifies; not yet verified. */
export interface Issued {
  identity: Identity;
  keyPem: string;
  keyRotated: boolean;
  chainPem: string;
  /** Absent (a CSR signer without a configured CA bundle): ca.crt is left as it is. */
  caPem?: string;
  /** When the certificate arrived, if later than the renewal's start (a CSR that waited). */
  issuedAt?: number;
  afterWrite?: () => Promise<void>;
  recentOrders?: number[];
}

/**
 * Which key, and what certificate does the issuer give for it? Chooses (or keeps) the key and asks
 * the issuer; a key the issuer substitutes gets the checks a kept key gets. Pure of Kubernetes.
 */
export async function issue(input: RenewInput): Promise<Issued> {
  const identity = targetIdentity(input.policy, input.currentCert);
  if (
    identity.dnsNames.length + identity.ipAddresses.length + identity.uris.length === 0 &&
    !identity.commonName
  ) {
    throw new RenewFailure(
      'NO_IDENTITY',
      `nothing to issue for: ${input.certProblem ?? unusableCertificate(input.currentCert)}, and no dns-names, ip-addresses, uris or common-name annotation names one`,
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
      ...(input.recentOrders ? { recentOrders: input.recentOrders } : {}),
      ...(input.policy.ca ? { ca: input.policy.ca } : {}),
      ...(input.currentCert
        ? {
            currentValidity: { notBefore: input.currentCert.notBefore, notAfter: input.currentCert.notAfter },
          }
        : {}),
    });
  } catch (err) {
    if (err instanceof IssuerError && err.code === 'PENDING') {
      throw new RenewPending(err.message, err.retryAfterMs ?? 0);
    }
    const failure = new RenewFailure('ISSUER_FAILED', err instanceof Error ? err.message : String(err));
    if (err instanceof IssuerError && err.retryAfterMs !== undefined) failure.retryAfterMs = err.retryAfterMs;
    if (err instanceof IssuerError && err.recentOrders) failure.recentOrders = err.recentOrders;
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
  return {
    identity,
    keyPem,
    keyRotated: rotated,
    chainPem: issued.chainPem,
    ...(issued.caPem !== undefined ? { caPem: issued.caPem } : {}),
    ...(issued.issuedAt !== undefined ? { issuedAt: issued.issuedAt } : {}),
    ...(issued.afterWrite ? { afterWrite: issued.afterWrite } : {}),
    ...(issued.recentOrders ? { recentOrders: issued.recentOrders } : {}),
  };
}
