/**
 * The `acme` issuer: one ACME account per issuer (key in a Secret), an order per renewal with
 * HTTP-01 or DNS-01 challenges chosen per name, finalize with the Secret's key, download.
 * Errors become IssuerErrors that name the issuer, the Secret, the failing challenge and the CA's
 * problem detail; "come back later" carries `retryAfterMs` for the controller to reschedule.
 */
import { systemClock } from '../../clock.ts';
import type { AcmeIssuerConfig } from '../../config/schema.ts';
import {
  type IssueInput,
  type IssueResult,
  type Issuer,
  IssuerError,
  type SuggestedRenewal,
  type SuggestionInput,
} from '../types.ts';
import { renewalSuggestion } from './ari-suggestion.ts';
import { type AcmeConnection, AcmeProblem, connect } from './client.ts';
import type { AcmeContext, AcmeIssuerDeps, AcmeLog } from './context.ts';
import { Dns01Presenter } from './dns01.ts';
import { placeOrder } from './order.ts';
import { OrderBudget } from './order-budget.ts';
import { PendingOrders } from './pending.ts';
import { NOT_OURS } from './ports.ts';
import { resumePendingOrder } from './resume.ts';
import { AcmeRetryLater } from './transport.ts';

export type { AcmeIssuerDeps, AcmeLog } from './context.ts';

const DEFAULT_ISSUE_TIMEOUT_MS = 5 * 60_000;

const quiet: AcmeLog = { debug: () => undefined, info: () => undefined, warn: () => undefined };

export class AcmeIssuer implements Issuer {
  readonly kind = 'acme' as const;
  readonly name: string;
  private readonly config: AcmeIssuerConfig;
  private readonly deps: AcmeIssuerDeps;
  private readonly log: AcmeLog;
  private connection: Promise<AcmeConnection> | undefined;
  private readonly budget: OrderBudget;
  /** What the order, challenge and ARI steps share. */
  private readonly ctx: AcmeContext;

  constructor(name: string, config: AcmeIssuerConfig, deps: AcmeIssuerDeps) {
    this.name = name;
    this.config = config;
    this.deps = deps;
    this.log = deps.log ?? quiet;
    this.budget = new OrderBudget(config.maxOrdersPerHour);
    const clock = deps.clock ?? systemClock;
    this.ctx = {
      name,
      config,
      deps,
      log: this.log,
      clock,
      dns: new Dns01Presenter(deps.kube, clock),
      pending: new PendingOrders(deps.kube),
      knownCertIds: new Set<string>(),
    };
  }

  /** The account, registered once per process (the key Secret makes it the same account every run). */
  private connect(): Promise<AcmeConnection> {
    if (!this.connection) {
      const c = this.open();
      this.connection = c;
      c.catch(() => {
        if (this.connection === c) this.connection = undefined;
      });
    }
    return this.connection;
  }

  private async open(): Promise<AcmeConnection> {
    const cfg = this.config;
    let eab: { keyId: string; hmacKey: string } | undefined;
    if (cfg.externalAccountBinding) {
      const ref = cfg.externalAccountBinding.hmacKeySecret;
      const s = await this.deps.kube.readSecret(ref.namespace, ref.name);
      const hmacKey = s?.data[ref.key]?.trim();
      if (!hmacKey) {
        throw new IssuerError(
          'CA_INVALID',
          `issuer "${this.name}": external account binding HMAC key ${ref.namespace}/${ref.name} key ${ref.key} is missing`,
          true,
        );
      }
      eab = { keyId: cfg.externalAccountBinding.keyId, hmacKey };
    }
    const onRequest = this.deps.onRequest;
    const conn = await connect({
      directoryUrl: cfg.server,
      accountKeySecret: cfg.accountKeySecret,
      kube: this.deps.kube,
      ...(cfg.email ? { email: cfg.email } : {}),
      ...(cfg.caBundle ? { caBundle: cfg.caBundle } : {}),
      ...(eab ? { externalAccountBinding: eab } : {}),
      ...(onRequest
        ? { onRequest: (action, status) => onRequest({ issuer: this.name, action, status }) }
        : {}),
      ...(this.deps.requestTimeoutMs !== undefined ? { timeoutMs: this.deps.requestTimeoutMs } : {}),
    });
    this.log.info(
      { issuer: this.name, account: conn.accountUrl, accountKeyCreated: conn.accountKeyCreated },
      'ACME account ready',
    );
    return conn;
  }

  async issue(input: IssueInput): Promise<IssueResult> {
    const where = `issuer "${this.name}" for Secret ${input.namespace}/${input.secretName}`;
    /** The order times to record on the Secret once an order has been counted. */
    let orders: number[] | undefined;
    try {
      const names = identifiers(input);
      const conn = await this.connect();
      const deadline = this.ctx.clock.now() + (this.deps.issueTimeoutMs ?? DEFAULT_ISSUE_TIMEOUT_MS);
      const resumed = await resumePendingOrder(this.ctx, conn, input, names, deadline);
      if (resumed) return resumed;
      const now = this.ctx.clock.now();
      const budgetKey = `${input.namespace}/${input.secretName}`;
      const allowed = this.budget.take(budgetKey, now, input.recentOrders);
      orders = this.budget.orders(budgetKey);
      if (!allowed.ok) {
        const e = new IssuerError(
          'CA_UNAVAILABLE',
          `${this.config.maxOrdersPerHour} orders in the last hour reached the cap (acme.maxOrdersPerHour); next order allowed in ${Math.ceil(allowed.retryAfterMs / 1000)}s`,
          true,
        );
        e.retryAfterMs = allowed.retryAfterMs;
        throw e;
      }
      return { ...(await placeOrder(this.ctx, conn, input, names, deadline)), recentOrders: orders };
    } catch (err) {
      const e = toIssuerError(where, err);
      if (orders) e.recentOrders = orders;
      throw e;
    }
  }

  /** ARI (RFC 9773): a point inside the CA's suggested window for the Secret's current leaf. */
  async suggestedRenewalTime(input: SuggestionInput): Promise<SuggestedRenewal | undefined> {
    if (this.config.ari === false) return undefined;
    const conn = await this.connect();
    return renewalSuggestion(this.ctx, conn, input);
  }
}

function toIssuerError(where: string, err: unknown): IssuerError {
  if (err instanceof IssuerError) {
    const e = new IssuerError(err.code, `${where}: ${err.message}`, err.retryable);
    if (err.retryAfterMs !== undefined) e.retryAfterMs = err.retryAfterMs;
    return e;
  }
  if (err instanceof Error && (err as { code?: unknown }).code === NOT_OURS) {
    // Somebody else's object under a name we compute: reported, retried with backoff, untouched.
    return new IssuerError('ISSUE_FAILED', `${where}: ${err.message}`, true);
  }
  if (err instanceof AcmeRetryLater) {
    const e = new IssuerError('CA_UNAVAILABLE', `${where}: ${err.message}`, true);
    e.retryAfterMs = err.retryAfterMs;
    return e;
  }
  if (err instanceof AcmeProblem) {
    return new IssuerError('ISSUE_FAILED', `${where}: ACME ${err.message}`, true);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new IssuerError('CA_UNAVAILABLE', `${where}: ${message}`, true);
}

/** DNS identifiers: the dnsNames plus a common name that is not among them. */
function identifiers(input: IssueInput): string[] {
  const id = input.identity;
  if (id.ipAddresses.length > 0 || id.uris.length > 0) {
    throw new IssuerError(
      'ISSUE_FAILED',
      'ACME issuers issue for DNS names only; remove the ip-addresses and uris of this Secret or use another issuer',
      false,
    );
  }
  const names = id.dnsNames.map((n) => n.toLowerCase());
  const cn = id.commonName?.toLowerCase();
  if (cn && !names.includes(cn)) names.unshift(cn);
  if (names.length === 0)
    throw new IssuerError('ISSUE_FAILED', 'no DNS names to order a certificate for', false);
  return [...new Set(names)];
}
