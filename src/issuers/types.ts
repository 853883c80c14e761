import type { IssuerKind } from '../config/schema.ts';
import type { Identity } from '../pki/index.ts';

export interface IssueInput {
  /** The managed Secret, for messages and for issuers that act per Secret (ACME, CSR). */
  namespace: string;
  secretName: string;
  identity: Identity;
  /** PEM private key the certificate must certify. */
  keyPem: string;
  /** Requested lifetime; absent = the issuer's default. */
  durationMs?: number;
  /** ms since the epoch. */
  now: number;
  /**
   * Times (ms) of the orders placed for this Secret in the last hour, as recorded on the Secret:
   * an issuer with a per-Secret order cap (ACME `maxOrdersPerHour`) counts them after a restart.
   */
  recentOrders?: readonly number[];
  /**
   * Issue a CA certificate (the Secret is annotated `is-ca`), with this path length (undefined:
   * none for a root; for an intermediate, the parent's less one). Only issuers with `allowCA` do.
   */
  ca?: { pathLength?: number };
  /** Validity of the leaf the Secret holds now, if it has a readable one (an issuer may hold a renewal that is not urgent). */
  currentValidity?: { notBefore: number; notAfter: number };
}

export interface IssueResult {
  /** Leaf first, then intermediates. */
  chainPem: string;
  /**
   * The CA to trust for this certificate (written to ca.crt). Absent (a CSR signer without a
   * configured CA bundle): ca.crt is left as it is and the issuer is not checked.
   */
  caPem?: string;
  /**
   * When the certificate arrived, if later than IssueInput.now (a CSR that waited for approval):
   * the controller checks notBefore against this instant.
   */
  issuedAt?: number;
  /**
   * The private key the certificate certifies, when it is not `IssueInput.keyPem`: an ACME order
   * resumed after a crash was finalized with the key persisted back then. The controller writes
   * (and verifies against) this key instead.
   */
  keyPem?: string;
  /** Called once the managed Secret holds the result (e.g. to delete persisted pending state). */
  afterWrite?: () => Promise<void>;
  /** The order times of the last hour, this one included: the controller records them on the Secret. */
  recentOrders?: number[];
}

/** A CA's opinion on when to renew (ACME ARI), as the controller plans with it. */
export interface SuggestedRenewal {
  /** The chosen instant inside the suggested window, ms since the epoch. */
  at: number;
  windowStart: number;
  windowEnd: number;
  /** Ask again after this long (the CA's Retry-After, clamped). */
  refreshAfterMs: number;
}

/** The certificate a suggestion is asked for: the managed Secret's current leaf. */
export interface SuggestionInput {
  namespace: string;
  secretName: string;
  /** Lowercase hex serial of the leaf the controller has seen (the issuer checks it still is). */
  serialHex: string;
  notBefore: number;
  notAfter: number;
}

/**
 * `PENDING`: not a failure — the issuer is waiting on someone else (a CSR not approved yet) and
 * frees its worker; the controller looks again after `retryAfterMs` without counting a failure.
 */
export type IssuerErrorCode = 'CA_UNAVAILABLE' | 'CA_INVALID' | 'ISSUE_FAILED' | 'PENDING';

/** A failure to issue that names what is wrong and whether retrying can help. */
export class IssuerError extends Error {
  readonly code: IssuerErrorCode;
  readonly retryable: boolean;
  /** The CA asked to come back no sooner than this (Retry-After): reschedule, never sleep. */
  retryAfterMs?: number;
  /** The order times of the last hour (an order was counted): the controller records them. */
  recentOrders?: number[];
  constructor(code: IssuerErrorCode, message: string, retryable: boolean) {
    super(message);
    this.name = 'IssuerError';
    this.code = code;
    this.retryable = retryable;
  }
}

export interface Issuer {
  readonly name: string;
  readonly kind: IssuerKind;
  issue(input: IssueInput): Promise<IssueResult>;
  /**
   * When the CA would like this certificate renewed, e.g. from ACME ARI; undefined when it has
   * no opinion. Optional: most issuers have none. Called off the planning path (I/O).
   */
  suggestedRenewalTime?(cert: SuggestionInput): Promise<SuggestedRenewal | undefined>;
}

/** Reads a Secret's decoded data; undefined when it does not exist. Injected by the controller. */
export type SecretReader = (
  namespace: string,
  name: string,
) => Promise<
  { resourceVersion: string; data: Record<string, string>; annotations?: Record<string, string> } | undefined
>;

/** The refusal of an issuer without `allowCA` asked for a CA certificate (never retried as is). */
export function caNotAllowed(issuer: string): IssuerError {
  return new IssuerError(
    'ISSUE_FAILED',
    `issuer "${issuer}" does not issue CA certificates (set allowCA: true on it, or remove the is-ca annotation)`,
    false,
  );
}

/** Leaves are backdated a little so a verifier whose clock lags still accepts them. */
export function validityWindow(now: number, durationMs: number): { notBefore: number; notAfter: number } {
  const backdate = Math.min(60_000, Math.floor(durationMs / 10));
  return { notBefore: now - backdate, notAfter: now + durationMs };
}
