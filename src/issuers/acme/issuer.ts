/**
 * The `acme` issuer: one ACME account per issuer (key in a Secret), an order per renewal with
 * HTTP-01 or DNS-01 challenges chosen per name, finalize with the Secret's key, download.
 * Errors become IssuerErrors that name the issuer, the Secret, the failing challenge and the CA's
 * problem detail; "come back later" carries `retryAfterMs` for the controller to reschedule.
 */
import type * as acme from 'acme-client';
import type { AcmeIssuerConfig, AcmeSolverConfig } from '../../config/schema.ts';
import { crashPoint } from '../../fault-injection.ts';
import {
  acmeCertId,
  certificatesFromPem,
  inspectPrivateKey,
  readCertificateSummary,
  toPem,
} from '../../pki/index.ts';
import {
  type IssueInput,
  type IssueResult,
  type Issuer,
  IssuerError,
  type SuggestedRenewal,
  type SuggestionInput,
} from '../types.ts';
import { getRenewalInfo, pointInWindow } from './ari.ts';
import { type AcmeConnection, AcmeProblem, connect } from './client.ts';
import { createCsrPem } from './csr.ts';
import { Dns01Presenter } from './dns01.ts';
import { CHALLENGE_PREFIX, DEFAULT_HTTP01_ADDRESS, http01Listener, http01RouteName } from './http01.ts';
import { OrderBudget } from './order-budget.ts';
import { PENDING_MAX_AGE_MS, PendingOrders } from './pending.ts';
import type { AcmeKube } from './ports.ts';
import { chooseSolver } from './select.ts';
import { AcmeRetryLater, parseRetryAfter, problemDetail } from './transport.ts';

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
}

const DEFAULT_ISSUE_TIMEOUT_MS = 5 * 60_000;
const FIRST_POLL_MS = 25;
const MAX_POLL_MS = 1_000;
/** A Retry-After on a pending object is honoured from this poll on (the first polls are quick). */
const POLLS_BEFORE_RETRY_AFTER = 4;
const MAX_POLL_RETRY_AFTER_MS = 10_000;

const quiet: AcmeLog = { debug: () => undefined, info: () => undefined, warn: () => undefined };

interface Work {
  authz: acme.Authorization;
  name: string;
  challenge: { type: string; url: string; token: string };
  keyAuthorization: string;
  solver: AcmeSolverConfig;
}

export class AcmeIssuer implements Issuer {
  readonly kind = 'acme' as const;
  readonly name: string;
  private readonly config: AcmeIssuerConfig;
  private readonly deps: AcmeIssuerDeps;
  private readonly log: AcmeLog;
  private connection: Promise<AcmeConnection> | undefined;
  private readonly dns: Dns01Presenter;
  private readonly pending: PendingOrders;
  private readonly budget: OrderBudget;
  /** certIDs the CA's renewalInfo answered for: safe to name in `replaces`. */
  private readonly knownCertIds = new Set<string>();

  constructor(name: string, config: AcmeIssuerConfig, deps: AcmeIssuerDeps) {
    this.name = name;
    this.config = config;
    this.deps = deps;
    this.log = deps.log ?? quiet;
    this.dns = new Dns01Presenter(deps.kube);
    this.pending = new PendingOrders(deps.kube);
    this.budget = new OrderBudget(config.maxOrdersPerHour ?? 5);
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
    try {
      const names = identifiers(input);
      const conn = await this.connect();
      const deadline = Date.now() + (this.deps.issueTimeoutMs ?? DEFAULT_ISSUE_TIMEOUT_MS);
      const resumed = await this.resume(conn, input, names, deadline);
      if (resumed) return resumed;
      const now = Date.now();
      const allowed = this.budget.take(`${input.namespace}/${input.secretName}`, now);
      if (!allowed.ok) {
        const e = new IssuerError(
          'CA_UNAVAILABLE',
          `${this.config.maxOrdersPerHour} orders in the last hour reached the cap (acme.maxOrdersPerHour); next order allowed in ${Math.ceil(allowed.retryAfterMs / 1000)}s`,
          true,
        );
        e.retryAfterMs = allowed.retryAfterMs;
        throw e;
      }
      return await this.order(conn, input, names, deadline);
    } catch (err) {
      throw toIssuerError(where, err);
    }
  }

  /**
   * Resumes the order persisted before a crash, if it still fits: a valid order's certificate is
   * downloaded, a ready one finalized, a processing one polled, all with the persisted key.
   * Pending state that does not fit (other issuer or names, too old, order gone, invalid or
   * still pending) is deleted and undefined returned: a new order is placed.
   */
  private async resume(
    conn: AcmeConnection,
    input: IssueInput,
    names: string[],
    deadline: number,
  ): Promise<IssueResult | undefined> {
    const { namespace, secretName } = input;
    const saved = await this.pending.load(namespace, secretName);
    if (saved === undefined) return undefined;
    const drop = async (why: string) => {
      this.log.info(
        { issuer: this.name, secret: `${namespace}/${secretName}`, why },
        'discarding pending ACME order state',
      );
      await this.pending.delete(namespace, secretName);
      return undefined;
    };
    if (saved === 'unreadable') return drop('companion Secret is incomplete');
    if (saved.issuer !== this.name || saved.server !== this.config.server) return drop('other issuer');
    if (saved.names.join(',') !== [...names].sort().join(',')) return drop('names changed');
    if (Date.now() - saved.created > PENDING_MAX_AGE_MS) return drop('older than 24h');
    let spki: string;
    try {
      spki = inspectPrivateKey(saved.keyPem).spkiSha256;
    } catch {
      return drop('persisted key is unusable');
    }
    let order: acme.Order;
    try {
      order = (await conn.post('order', saved.orderUrl, null, [200])).data as acme.Order;
    } catch (err) {
      if (err instanceof AcmeProblem) return drop(`order answered ${err.message}`);
      throw err;
    }
    if (order.status === 'ready') {
      order = await this.finalize(conn, saved.orderUrl, order, saved.keyPem, names, deadline);
    } else if (order.status === 'processing') {
      order = await this.waitValid(conn, saved.orderUrl, deadline);
    } else if (order.status !== 'valid') {
      return drop(`order is ${order.status}`);
    }
    if (!order.certificate) return drop('valid order names no certificate');
    const result = await this.download(conn, order.certificate);
    const leaf = certificatesFromPem(result.chainPem)[0];
    if (!leaf || readCertificateSummary(leaf).spkiSha256 !== spki) {
      return drop('certificate does not certify the persisted key');
    }
    this.log.info(
      { issuer: this.name, secret: `${namespace}/${secretName}`, order: saved.orderUrl },
      'resumed the ACME order persisted before a restart',
    );
    return {
      ...result,
      keyPem: saved.keyPem,
      afterWrite: () => this.pending.delete(namespace, secretName),
    };
  }

  private async order(
    conn: AcmeConnection,
    input: IssueInput,
    names: string[],
    deadline: number,
  ): Promise<IssueResult> {
    const newOrder = await conn.resource('newOrder');
    if (!newOrder) throw new Error('the ACME directory has no newOrder');
    const identifiers = names.map((value) => ({ type: 'dns', value }));
    const replaces = await this.replacesFor(conn, input);
    let created: Awaited<ReturnType<AcmeConnection['post']>>;
    try {
      created = await conn.post(
        'newOrder',
        newOrder,
        { identifiers, ...(replaces ? { replaces } : {}) },
        [201],
      );
    } catch (err) {
      // A CA that will not take this certificate as replaced (already replaced, other account)
      // still issues a plain new order.
      if (!replaces || !(err instanceof AcmeProblem)) throw err;
      this.log.info({ issuer: this.name, replaces, error: err.message }, 'order without ARI replaces');
      created = await conn.post('newOrder', newOrder, { identifiers }, [201]);
    }
    const orderUrl = created.headers.location;
    if (!orderUrl) throw new Error('newOrder returned no order URL');
    let order = created.data as acme.Order;
    if (order.status === 'pending') await this.authorize(conn, input, order, deadline);

    order = await this.poll(conn, 'order', orderUrl, deadline, (o: acme.Order) =>
      o.status === 'ready' || o.status === 'valid' ? 'done' : o.status === 'invalid' ? 'failed' : 'pending',
    );
    let persisted = false;
    if (order.status === 'ready') {
      // Crash safety: the key and order URL are stored before the CA may issue for this key.
      await this.pending.save(input.namespace, input.secretName, {
        orderUrl,
        keyPem: input.keyPem,
        issuer: this.name,
        server: this.config.server,
        names: [...names].sort(),
        created: Date.now(),
      });
      persisted = true;
      try {
        order = await this.finalize(conn, orderUrl, order, input.keyPem, names, deadline);
      } catch (err) {
        // An order that became invalid cannot be resumed; anything else (timeout) may be.
        if (err instanceof PollFailed || err instanceof AcmeProblem) {
          await this.pending.delete(input.namespace, input.secretName).catch(() => undefined);
        }
        throw err;
      }
    }
    if (!order.certificate) throw new Error(`order ${orderUrl} is valid but names no certificate`);
    const result = await this.download(conn, order.certificate);
    return persisted
      ? { ...result, afterWrite: () => this.pending.delete(input.namespace, input.secretName) }
      : result;
  }

  private async finalize(
    conn: AcmeConnection,
    orderUrl: string,
    order: acme.Order,
    keyPem: string,
    names: string[],
    deadline: number,
  ): Promise<acme.Order> {
    const csr = await createCsrPem(keyPem, names);
    const fin = await conn.post('finalize', order.finalize, { csr: csrToB64u(csr) }, [200]);
    crashPoint('finalize');
    const finalized = fin.data as acme.Order;
    return finalized.status === 'valid' ? finalized : await this.waitValid(conn, orderUrl, deadline);
  }

  private waitValid(conn: AcmeConnection, orderUrl: string, deadline: number): Promise<acme.Order> {
    return this.poll(conn, 'order', orderUrl, deadline, (o: acme.Order) =>
      o.status === 'valid' ? 'done' : o.status === 'invalid' ? 'failed' : 'pending',
    );
  }

  private async download(conn: AcmeConnection, url: string): Promise<IssueResult> {
    const cert = await conn.post('certificate', url, null, [200]);
    return chainResult(String(cert.data));
  }

  /** The managed Secret's current leaf (DER), read now; undefined when absent or unreadable. */
  private async currentLeaf(namespace: string, secretName: string): Promise<Uint8Array | undefined> {
    const s = await this.deps.kube.readSecret(namespace, secretName);
    const pem = s?.data['tls.crt'];
    if (!pem) return undefined;
    try {
      return certificatesFromPem(pem)[0];
    } catch {
      return undefined;
    }
  }

  /** certID of the certificate this order replaces (ARI), when the CA knows it; else undefined. */
  private async replacesFor(conn: AcmeConnection, input: IssueInput): Promise<string | undefined> {
    if (this.config.ari === false) return undefined;
    try {
      const base = await conn.resource('renewalInfo');
      if (!base) return undefined;
      const leaf = await this.currentLeaf(input.namespace, input.secretName);
      const certId = leaf ? acmeCertId(leaf) : undefined;
      if (!certId) return undefined;
      if (this.knownCertIds.has(certId)) return certId;
      // Only a certificate this CA issued may be named; its renewalInfo answering says it is one.
      const info = await getRenewalInfo(conn, base, certId);
      if (!info) return undefined;
      this.knownCertIds.add(certId);
      return certId;
    } catch (err) {
      this.log.debug({ issuer: this.name, error: String(err) }, 'no ARI replaces for this order');
      return undefined;
    }
  }

  /** ARI (RFC 9773): a point inside the CA's suggested window for the Secret's current leaf. */
  async suggestedRenewalTime(input: SuggestionInput): Promise<SuggestedRenewal | undefined> {
    if (this.config.ari === false) return undefined;
    const conn = await this.connect();
    const base = await conn.resource('renewalInfo');
    if (!base) return undefined;
    const leaf = await this.currentLeaf(input.namespace, input.secretName);
    if (!leaf || readCertificateSummary(leaf).serialHex !== input.serialHex) return undefined;
    const certId = acmeCertId(leaf);
    if (!certId) return undefined;
    const info = await getRenewalInfo(conn, base, certId);
    if (!info) return undefined;
    this.knownCertIds.add(certId);
    const at = pointInWindow(info.start, info.end, certId);
    this.log.debug(
      {
        issuer: this.name,
        secret: `${input.namespace}/${input.secretName}`,
        windowStart: new Date(info.start).toISOString(),
        windowEnd: new Date(info.end).toISOString(),
        at: new Date(at).toISOString(),
        retryAfterMs: info.retryAfterMs,
      },
      'ARI renewal window',
    );
    return { at, windowStart: info.start, windowEnd: info.end, refreshAfterMs: info.retryAfterMs };
  }

  /** Presents every pending authorization's challenge, asks the CA to validate, waits, cleans up. */
  private async authorize(
    conn: AcmeConnection,
    input: IssueInput,
    order: acme.Order,
    deadline: number,
  ): Promise<void> {
    const authzs = await Promise.all(
      order.authorizations.map(async (url) => {
        const res = await conn.post('authorization', url, null, [200]);
        return { ...(res.data as acme.Authorization), url };
      }),
    );
    const work: Work[] = [];
    for (const authz of authzs) {
      if (authz.status === 'valid') continue;
      if (authz.status !== 'pending') {
        throw new Error(`authorization for ${authz.identifier.value} is ${authz.status}`);
      }
      const name = authz.identifier.value;
      const wildcard = authz.wildcard === true;
      const solver = chooseSolver(this.config.solvers, name, wildcard);
      if (!solver) {
        throw new IssuerError(
          'ISSUE_FAILED',
          `no solver can validate ${wildcard ? `*.${name}` : name}${wildcard ? ' (wildcards need a dns01 solver)' : ''}; check the solvers and their selectors`,
          false,
        );
      }
      const type = solver.kind === 'http01' ? 'http-01' : 'dns-01';
      const challenge = authz.challenges.find((c) => c.type === type) as Work['challenge'] | undefined;
      if (!challenge) throw new Error(`the CA offers no ${type} challenge for ${name}`);
      const keyAuthorization = await conn.client.getChallengeKeyAuthorization(
        challenge as unknown as Parameters<acme.Client['getChallengeKeyAuthorization']>[0],
      );
      work.push({ authz, name, challenge, keyAuthorization, solver });
    }
    if (work.length === 0) return;

    const cleanups: Array<() => Promise<void>> = [];
    try {
      await this.present(input, work, cleanups, deadline);
      await Promise.all(work.map((w) => conn.post('challenge', w.challenge.url, {}, [200])));
      await Promise.all(
        work.map((w) =>
          this.poll(conn, 'authorization', w.authz.url, deadline, (a: acme.Authorization) =>
            a.status === 'valid' ? 'done' : a.status === 'pending' ? 'pending' : 'failed',
          ).catch((err) => {
            throw challengeFailure(w, err);
          }),
        ),
      );
    } catch (err) {
      // Leave nothing pending behind: a failed order's other authorizations are deactivated.
      await Promise.all(
        work.map((w) =>
          conn.post('deactivate', w.authz.url, { status: 'deactivated' }, [200]).catch(() => undefined),
        ),
      );
      throw err;
    } finally {
      for (const cleanup of cleanups.reverse()) {
        await cleanup().catch((err) =>
          this.log.warn(
            { issuer: this.name, secret: `${input.namespace}/${input.secretName}`, error: String(err) },
            'ACME challenge clean-up failed',
          ),
        );
      }
    }
  }

  private async present(
    input: IssueInput,
    work: Work[],
    cleanups: Array<() => Promise<void>>,
    deadline: number,
  ): Promise<void> {
    const http = work.filter((w) => w.solver.kind === 'http01');
    const first = http[0]?.solver;
    if (first && first.kind === 'http01') {
      const listener = await http01Listener(first.address ?? DEFAULT_HTTP01_ADDRESS);
      for (const w of http) listener.set(w.challenge.token, w.keyAuthorization);
      cleanups.push(async () => {
        for (const w of http) listener.delete(w.challenge.token);
      });
      const podIP = first.podIP ?? this.deps.podIP;
      if (first.ingress !== false && podIP) {
        const routeName = http01RouteName(input.secretName);
        cleanups.push(() => this.deps.kube.deleteHttp01Route(input.namespace, routeName));
        await this.deps.kube.createHttp01Route({
          namespace: input.namespace,
          name: routeName,
          owner: { name: input.secretName },
          paths: http.map((w) => ({ host: w.name, path: `${CHALLENGE_PREFIX}${w.challenge.token}` })),
          target: { ip: podIP, port: listener.port },
          ...(first.ingressClassName ? { ingressClassName: first.ingressClassName } : {}),
          ...(first.ingressAnnotations ? { ingressAnnotations: first.ingressAnnotations } : {}),
        });
      } else if (first.ingress !== false) {
        this.log.debug({ issuer: this.name }, 'no pod IP known: HTTP-01 routing objects not created');
      }
    }
    const dns = work.filter((w) => w.solver.kind === 'dns01');
    if (dns.length > 0) {
      const records = dns.map((w) => {
        const solver = w.solver as Extract<AcmeSolverConfig, { kind: 'dns01' }>;
        return { name: w.name, keyAuthorization: w.keyAuthorization, rfc2136: solver.rfc2136 };
      });
      const presented = await this.dns.present(records, deadline);
      cleanups.push(() => presented.cleanup());
    }
  }

  private async poll<T>(
    conn: AcmeConnection,
    action: string,
    url: string,
    deadline: number,
    state: (body: T) => 'done' | 'pending' | 'failed',
  ): Promise<T> {
    let delay = FIRST_POLL_MS;
    for (let polls = 1; ; polls++) {
      const res = await conn.post(action, url, null, [200]);
      const body = res.data as T;
      const s = state(body);
      if (s === 'done') return body;
      if (s === 'failed') throw new PollFailed(action, url, body);
      const retryAfter = parseRetryAfter(res.headers['retry-after']);
      const wait =
        polls >= POLLS_BEFORE_RETRY_AFTER && retryAfter !== undefined
          ? Math.max(delay, Math.min(retryAfter, MAX_POLL_RETRY_AFTER_MS))
          : delay;
      if (Date.now() + wait > deadline) throw new Error(`timed out waiting for ${action} ${url}`);
      await new Promise((r) => setTimeout(r, wait));
      delay = Math.min(MAX_POLL_MS, delay * 2);
    }
  }
}

class PollFailed extends Error {
  readonly body: unknown;
  constructor(action: string, url: string, body: unknown) {
    const err = (body as { error?: unknown } | undefined)?.error;
    super(`${action} ${url} became invalid${err ? `: ${problemDetail(err)}` : ''}`);
    this.name = 'PollFailed';
    this.body = body;
  }
}

/** "http-01 challenge for a.example.com failed: <CA problem>". */
function challengeFailure(w: Work, err: unknown): Error {
  let detail = err instanceof Error ? err.message : String(err);
  if (err instanceof PollFailed) {
    const authz = err.body as acme.Authorization | undefined;
    const ch = authz?.challenges?.find((c) => c.url === w.challenge.url) as { error?: unknown } | undefined;
    detail = problemDetail(ch?.error) || `authorization ${authz?.status ?? 'failed'}`;
  }
  const label = w.authz.wildcard ? `*.${w.name}` : w.name;
  return new IssuerError(
    'ISSUE_FAILED',
    `${w.challenge.type} challenge for ${label} failed: ${detail}`,
    true,
  );
}

function toIssuerError(where: string, err: unknown): IssuerError {
  if (err instanceof IssuerError) {
    const e = new IssuerError(err.code, `${where}: ${err.message}`, err.retryable);
    if (err.retryAfterMs !== undefined) e.retryAfterMs = err.retryAfterMs;
    return e;
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

function csrToB64u(csrPem: string): string {
  const der = certificatesFromPemLike(csrPem);
  return Buffer.from(der).toString('base64url');
}

function certificatesFromPemLike(pem: string): Uint8Array {
  const body = pem.replace(/-----(BEGIN|END)[^-]+-----/g, '').replace(/\s+/g, '');
  return Buffer.from(body, 'base64');
}

function chainResult(chainPem: string): IssueResult {
  const ders = certificatesFromPem(chainPem);
  if (ders.length === 0) throw new Error('the CA returned no certificate');
  const pems = ders.map((d) => toPem('CERTIFICATE', d));
  return { chainPem: pems.join(''), caPem: pems[pems.length - 1] ?? '' };
}
