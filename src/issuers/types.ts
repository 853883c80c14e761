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
}

export interface IssueResult {
  /** Leaf first, then intermediates. */
  chainPem: string;
  /** The CA to trust for this certificate (written to ca.crt). */
  caPem: string;
}

export type IssuerErrorCode = 'CA_UNAVAILABLE' | 'CA_INVALID' | 'ISSUE_FAILED';

/** A failure to issue that names what is wrong and whether retrying can help. */
export class IssuerError extends Error {
  readonly code: IssuerErrorCode;
  readonly retryable: boolean;
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
}

/** Reads a Secret's decoded data; undefined when it does not exist. Injected by the controller. */
export type SecretReader = (
  namespace: string,
  name: string,
) => Promise<{ resourceVersion: string; data: Record<string, string> } | undefined>;

/** Leaves are backdated a little so a verifier whose clock lags still accepts them. */
export function validityWindow(now: number, durationMs: number): { notBefore: number; notAfter: number } {
  const backdate = Math.min(60_000, Math.floor(durationMs / 10));
  return { notBefore: now - backdate, notAfter: now + durationMs };
}
