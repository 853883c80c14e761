import { createHash } from 'node:crypto';
import type { SecretRef } from '../config/schema.ts';
import { Annotation, CaSecretKey, RolloverPhase, SecretKey, StatusAnnotation } from '../names.ts';
import {
  assertSigningCa,
  certificatesFromPem,
  isPkiError,
  issueCertificate,
  keyMatchesCertificate,
  pathLengthProblem,
  readCertificateSummary,
  trustAnchors,
} from '../pki/index.ts';
import {
  caNotAllowed,
  type IssueInput,
  type IssueResult,
  type Issuer,
  IssuerError,
  type SecretReader,
  validityWindow,
} from './types.ts';

const DEFAULT_DURATION_MS = 90 * 86_400_000;
/** How long a validated CA is reused before its Secret is read again. */
const CA_CACHE_MS = 5_000;

interface LoadedCA {
  resourceVersion: string;
  /** Lowercase hex SHA-256 of the CA certificate's DER: which CA signed a leaf. */
  sha256: string;
  commonName?: string | undefined;
  certPem: string;
  keyPem: string;
  notAfter: number;
  /** The CA's own pathLenConstraint (undefined: none): an intermediate it signs must fit under it. */
  pathLen: number | undefined;
  loadedAt: number;
  /** What ca.crt gets: this CA, and during a rollover the next or the previous CA as well. */
  trustPem: string;
  /** The CA was overwritten in place and its trust has not propagated yet: renewals wait. */
  holdRenewals: boolean;
}

/** Less than this share of a leaf's lifetime left (or a day, whichever is less): renew even when held. */
const EMERGENCY_FRACTION = 0.1;
const DAY_MS = 86_400_000;
/** When a held renewal is looked at again. */
const HOLD_RETRY_MS = 30_000;

/** Why a certificate and key cannot serve as a signing CA now (not a CA, key mismatch, expired). */
export interface CaPairProblem {
  code: 'NOT_A_CERTIFICATE' | 'NOT_A_CA' | 'BAD_KEY' | 'KEY_MISMATCH' | 'EXPIRED';
  message: string;
}

/**
 * Is this pair a CA that may sign now? The same rules for the active CA and for a staged next
 * one: a certificate both readers accept, basicConstraints cA and keyCertSign, the key belongs
 * to it, and it has not expired.
 */
export function caPairProblem(certPem: string, keyPem: string, now: number): CaPairProblem | undefined {
  let der: Uint8Array;
  let summary: ReturnType<typeof readCertificateSummary>;
  try {
    der = certificatesFromPem(certPem)[0] as Uint8Array;
    summary = readCertificateSummary(der);
  } catch (err) {
    const what = isPkiError(err) ? err.message : String(err);
    return { code: 'NOT_A_CERTIFICATE', message: `tls.crt is not a certificate (${what})` };
  }
  try {
    assertSigningCa(der, summary);
  } catch (err) {
    const what = isPkiError(err) ? err.message : String(err);
    return { code: 'NOT_A_CA', message: `tls.crt is not a usable CA certificate (${what})` };
  }
  let matches = false;
  try {
    matches = keyMatchesCertificate(keyPem, der);
  } catch (err) {
    const what = isPkiError(err) ? err.message : 'unreadable key';
    return { code: 'BAD_KEY', message: `tls.key is not a usable private key (${what})` };
  }
  if (!matches) return { code: 'KEY_MISMATCH', message: 'tls.key does not match tls.crt' };
  if (summary.notAfter <= now) return { code: 'EXPIRED', message: 'the CA certificate has expired' };
  return undefined;
}

/**
 * The trust set of a CA Secret's data: the root of its own CA first, then that of the staged
 * next CA (Trust, Propagate) or of the replaced one (Reissue, Retire) when a rollover put it
 * there (pki/trust-anchor.ts: an intermediate's root, found in tls.crt's chain or ca.crt).
 */
export function trustSet(certPem: string, data: Record<string, string>): string {
  return trustAnchors(
    [certPem, data[CaSecretKey.nextCertificate], data[CaSecretKey.previousCertificate]],
    [data[SecretKey.caCertificate]],
  );
}

/** Signs with a CA certificate and key kept in a Secret (`tls.crt` may carry the CA's own chain). */
export class CAIssuer implements Issuer {
  readonly kind = 'ca' as const;
  readonly name: string;
  private readonly ref: SecretRef;
  private readonly readSecret: SecretReader;
  private readonly defaultDurationMs: number;
  private readonly allowCA: boolean;
  private cached: LoadedCA | undefined;

  constructor(
    name: string,
    ref: SecretRef,
    readSecret: SecretReader,
    defaultDurationMs = DEFAULT_DURATION_MS,
    allowCA = false,
  ) {
    this.name = name;
    this.ref = ref;
    this.readSecret = readSecret;
    this.defaultDurationMs = defaultDurationMs;
    this.allowCA = allowCA;
  }

  private where(): string {
    return `CA Secret ${this.ref.namespace}/${this.ref.name} of issuer "${this.name}"`;
  }

  /**
   * Drops the CA read in the last few seconds: the next signing reads the CA Secret again. A CA
   * rollover calls it once it has switched the CA, so no renewal it asks for after that can be
   * signed by the CA it replaced.
   */
  forget(): void {
    this.cached = undefined;
  }

  private async load(now: number): Promise<LoadedCA> {
    if (this.cached && now - this.cached.loadedAt < CA_CACHE_MS) return this.cached;
    let secret: Awaited<ReturnType<SecretReader>>;
    try {
      secret = await this.readSecret(this.ref.namespace, this.ref.name);
    } catch (err) {
      throw new IssuerError(
        'CA_UNAVAILABLE',
        `cannot read ${this.where()}: ${err instanceof Error ? err.message : String(err)}`,
        true,
      );
    }
    if (!secret) throw new IssuerError('CA_UNAVAILABLE', `${this.where()} does not exist`, true);
    const certPem = secret.data[SecretKey.certificate];
    const keyPem = secret.data[SecretKey.privateKey];
    if (!certPem || !keyPem) {
      throw new IssuerError('CA_INVALID', `${this.where()} lacks tls.crt or tls.key`, true);
    }
    const problem = caPairProblem(certPem, keyPem, now);
    if (problem !== undefined)
      throw new IssuerError('CA_INVALID', `${this.where()}: ${problem.message}`, true);
    const der = certificatesFromPem(certPem)[0] as Uint8Array;
    const summary = readCertificateSummary(der);
    this.cached = {
      resourceVersion: secret.resourceVersion,
      sha256: createHash('sha256').update(der).digest('hex'),
      commonName: summary.subjectCommonName,
      certPem,
      keyPem,
      notAfter: summary.notAfter,
      pathLen: summary.pathLen,
      loadedAt: now,
      trustPem: trustSet(certPem, secret.data),
      holdRenewals:
        secret.annotations?.[StatusAnnotation.caRolloverUnsafe] !== undefined &&
        (secret.annotations[StatusAnnotation.caRolloverPhase] === RolloverPhase.trust ||
          secret.annotations[StatusAnnotation.caRolloverPhase] === RolloverPhase.propagate),
    };
    return this.cached;
  }

  /** The CA certificate that signs now (reads and checks the CA Secret like a signing would). */
  async caCertificate(now: number): Promise<{ sha256: string; commonName?: string; notAfter: number }> {
    const ca = await this.load(now);
    return {
      sha256: ca.sha256,
      notAfter: ca.notAfter,
      ...(ca.commonName ? { commonName: ca.commonName } : {}),
    };
  }

  /**
   * Signs a public key (from a CSR the signer has checked) for `identity` with exactly `usages`;
   * the leaf never outlives the CA. Used by the CSR signer (src/signer/).
   */
  async signPublicKey(input: {
    spki: Uint8Array;
    identity: IssueInput['identity'];
    organizations: readonly string[];
    usages: readonly string[];
    durationMs: number;
    now: number;
    /** Exact validity (the pod certificate signer plans it against the API's rules). */
    validity?: { notBefore: number; notAfter: number };
  }): Promise<{ chainPem: string; notAfter: number; caSha256: string }> {
    const ca = await this.load(input.now);
    const window = input.validity ?? validityWindow(input.now, input.durationMs);
    const notAfter = Math.min(window.notAfter, ca.notAfter);
    try {
      const issued = await issueCertificate({
        subjectSpki: input.spki,
        identity: input.identity,
        organizations: input.organizations,
        usages: input.usages,
        notBefore: window.notBefore,
        notAfter,
        issuer: { certPem: ca.certPem, keyPem: ca.keyPem },
      });
      // Leaf and the CA's chain, as the CA issuer writes to tls.crt (kcm returns the leaf alone).
      return { chainPem: issued.chainPem, notAfter, caSha256: ca.sha256 };
    } catch (err) {
      this.cached = undefined;
      const what = err instanceof Error ? err.message : String(err);
      throw new IssuerError('ISSUE_FAILED', `${this.where()} could not sign: ${what}`, true);
    }
  }

  async issue(input: IssueInput): Promise<IssueResult> {
    if (input.ca && !this.allowCA) throw caNotAllowed(this.name);
    const ca = await this.load(input.now);
    // An intermediate: the path length asked for, or the most the parent allows (its own less one).
    const pathLength = input.ca
      ? (input.ca.pathLength ?? (ca.pathLen === undefined ? undefined : ca.pathLen - 1))
      : undefined;
    if (input.ca) {
      const problem = pathLengthProblem(pathLength, ca.pathLen);
      if (problem !== undefined)
        throw new IssuerError('ISSUE_FAILED', `${this.where()} cannot sign this CA: ${problem}`, false);
    }
    if (ca.holdRenewals && !aboutToExpire(input)) {
      const err = new IssuerError(
        'PENDING',
        `renewal held: ${this.where()} was overwritten in place and not every workload trusts the new CA yet; a leaf about to expire is still renewed (stage the next CA with ${Annotation.nextCa} instead, see docs/ca-rollover.md)`,
        true,
      );
      err.retryAfterMs = HOLD_RETRY_MS;
      throw err;
    }
    const window = validityWindow(input.now, input.durationMs ?? this.defaultDurationMs);
    // A leaf never outlives its CA: a verifier would reject it after the CA expires anyway.
    const notAfter = Math.min(window.notAfter, ca.notAfter);
    try {
      const issued = await issueCertificate({
        subjectKeyPem: input.keyPem,
        identity: input.identity,
        notBefore: window.notBefore,
        notAfter,
        issuer: { certPem: ca.certPem, keyPem: ca.keyPem },
        ...(input.ca ? { isCA: true } : {}),
        ...(pathLength !== undefined ? { pathLength } : {}),
      });
      // ca.crt holds the issuer's whole trust set: during a rollover, the old and the new CA.
      return { chainPem: issued.chainPem, caPem: ca.trustPem };
    } catch (err) {
      this.cached = undefined;
      const what = err instanceof Error ? err.message : String(err);
      throw new IssuerError('ISSUE_FAILED', `${this.where()} could not sign: ${what}`, true);
    }
  }
}

/** Would holding this renewal let the current leaf run out (or is there none to keep)? */
function aboutToExpire(input: IssueInput): boolean {
  const v = input.currentValidity;
  if (!v) return true;
  const margin = Math.min((v.notAfter - v.notBefore) * EMERGENCY_FRACTION, DAY_MS);
  return v.notAfter - input.now < margin;
}
