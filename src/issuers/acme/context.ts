/**
 * What the parts of one ACME issuer share: its name and settings, its dependencies, and the
 * per-issuer helpers the order, challenge and ARI steps use.
 */
import type { Clock } from '../../clock.ts';
import type { AcmeIssuerConfig } from '../../config/schema.ts';
import type { Dns01Presenter } from './dns01.ts';
import type { PendingOrders } from './pending.ts';
import type { AcmeKube } from './ports.ts';

export interface AcmeLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface AcmeIssuerDeps {
  kube: AcmeKube;
  /** Counts `acme_requests_total{issuer,action,status}`. */
  onRequest?: (labels: { issuer: string; action: string; status: string }) => void;
  log?: AcmeLog;
  /** Default for http01 `podIP` (the POD_IP environment variable in the chart). */
  podIP?: string;
  /** Bound on one issuance, polling and DNS propagation included. */
  issueTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Deadlines, polling waits and order timestamps (tests drive it); default the system clock. */
  clock?: Clock;
}

export interface AcmeContext {
  readonly name: string;
  readonly config: AcmeIssuerConfig;
  readonly deps: AcmeIssuerDeps;
  readonly log: AcmeLog;
  readonly clock: Clock;
  readonly dns: Dns01Presenter;
  readonly pending: PendingOrders;
  /** certIDs the CA's renewalInfo answered for: safe to name in `replaces`. */
  readonly knownCertIds: Set<string>;
}
