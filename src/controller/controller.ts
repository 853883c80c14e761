import type * as k8s from '@kubernetes/client-node';
import { type Clock, systemClock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { Issuer } from '../issuers/types.ts';
import { describeApiError, type KubeClients } from '../kube/client.ts';
import { kubeSecretApi } from '../kube/secret-api.ts';
import { SecretWatch } from '../kube/secret-watch.ts';
import { WorkQueue } from '../kube/workqueue.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { computeRenewalTime } from '../policy/renewal.ts';
import type { ActivityView, CertificateView } from '../ui/status-page.ts';
import { CertificateMetrics } from './certificate-metrics.ts';
import { type DecideContext, decide, evaluateNow, nextLook, type Planned, type Step } from './decide.ts';
import type { Evaluation } from './evaluate.ts';
import { type CertificateListener, describeChange, fingerprintOf } from './listener.ts';
import { caSecretLanded, issuedCaProblem } from './managed-ca.ts';
import type { NoticeCandidate } from './notices.ts';
import type { EventSink, SecretApi } from './ports.ts';
import { type Current, readCurrent } from './read.ts';
import { recordFromSecret, type SecretRecord, secretKey } from './record.ts';
import { issue, RenewFailure, type RenewOutput, RenewPending } from './renew.ts';
import { Reporter } from './report.ts';
import { RetryStates } from './retry.ts';
import { LookSchedule } from './schedule.ts';
import { stageRenewedCa } from './stage.ts';
import { type ControllerState, noticeCandidates as candidatesOf, statusRows } from './status-view.ts';
import { SuggestedRenewals } from './suggestions.ts';
import { verifyIssued } from './verify.ts';
import { markIssuing, writeFailure, writeRenewal } from './write.ts';

export type { CertificateChange, CertificateListener } from './listener.ts';
export { fingerprintOf } from './listener.ts';

export interface ControllerDeps {
  config: Config;
  clients: KubeClients;
  issuers: Map<string, Issuer>;
  /** Issuers named in the config that this build cannot run, with the reason. */
  unsupportedIssuers?: Map<string, string>;
  events: EventSink;
  log: Logger;
  metrics: Metrics;
  clock?: Clock;
  listener?: CertificateListener;
  /** With leader election: only the leader writes. Absent = always write. */
  isLeader?: () => boolean;
  /** The Secret port; default: the API server behind `clients`. Unit tests pass a fake. */
  secrets?: SecretApi;
  /** Jitter of the short retry after an API error; injectable for tests. */
  random?: () => number;
}

/** Bounds on an issuer's "look again" hint, whatever it says. */
const MIN_PENDING_RELOOK_MS = 1_000;
const MAX_PENDING_RELOOK_MS = 10 * 60_000;

/**
 * The Secret reconciler. Watch events update a compact record per Secret and its one due time
 * ("when to look next": renewal time, window, retry); a Secret whose time has come goes through
 * the work queue to `reconcile`: read → decide → issue → verify → write → record → schedule.
 */
export class SecretController {
  private readonly deps: ControllerDeps;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly api: SecretApi;
  private readonly records = new Map<string, SecretRecord>();
  private readonly certMetrics: CertificateMetrics;
  private readonly report: Reporter;
  private readonly retry: RetryStates;
  private readonly context: DecideContext;
  private readonly schedule: LookSchedule;
  private readonly queue: WorkQueue<string>;
  private readonly watch: SecretWatch;
  /** key → "resourceVersion|kind" of the last problem reported, so each is reported once. */
  private readonly reported = new Map<string, string>();
  /** Fingerprint of the last certificate this process wrote (or is writing) to each Secret. */
  private readonly written = new Map<string, string>();
  /**
   * Secrets read at a newer version than the watch has shown: when to look next, decided on that
   * version. Kept beside the records, never in them, and dropped at the Secret's next watch event.
   */
  private readonly ahead = new Map<string, { at: number | undefined }>();
  /** Secrets whose last attempt ended pending (a CSR not approved yet): woken by `wakePending`. */
  private readonly pending = new Set<string>();
  private resyncTimer: unknown;
  private running: Promise<void> | undefined;
  private synced = false;

  constructor(deps: ControllerDeps) {
    this.deps = deps;
    this.clock = deps.clock ?? systemClock;
    this.log = deps.log;
    this.api = deps.secrets ?? kubeSecretApi(deps.clients.core);
    this.certMetrics = new CertificateMetrics(deps.metrics);
    this.report = new Reporter({
      events: deps.events,
      log: deps.log,
      metrics: deps.metrics,
      clock: this.clock,
    });
    this.retry = new RetryStates(deps.config.renewalBackoff, deps.random);
    this.context = {
      config: deps.config,
      issuers: deps.issuers,
      unsupportedIssuers: deps.unsupportedIssuers,
      suggestions: new SuggestedRenewals({ clock: this.clock, log: this.log, onChange: (k) => this.plan(k) }),
      retry: this.retry,
      reported: this.reported,
    };
    this.schedule = new LookSchedule((key) => this.plan(key), this.clock);
    this.queue = new WorkQueue<string>({ clock: this.clock });
    const ns = deps.config.namespaces;
    this.watch = new SecretWatch(
      deps.clients.config,
      {
        upsert: (s) => this.upsert(s),
        remove: (namespace, name) => this.remove(namespace, name),
        synced: () => this.listed(),
        error: (err, retryInMs) =>
          this.log.warn({ retryInMs, error: describeApiError(err) }, 'Secret list/watch failed; retrying'),
      },
      { namespaces: ns === 'all' ? [] : ns },
    );
  }

  ready(): boolean {
    return this.synced;
  }

  /** Depth and oldest wait of the work queue, for the metrics. */
  queueStats(): { depth: number; oldestWaitMs: number } {
    return { depth: this.queue.depth, oldestWaitMs: this.queue.oldestWaitMs() };
  }

  /** Every TLS Secret known, as the status page shows it: planned renewal and why. */
  statusView(lastEvent: (object: string) => ActivityView | undefined): CertificateView[] {
    return statusRows(this.readOnlyState(), lastEvent);
  }

  /** Every Secret with a certificate, as the expiry notices look at it. */
  noticeCandidates(): Iterable<[string, NoticeCandidate]> {
    return candidatesOf(this.readOnlyState());
  }

  private readOnlyState(): ControllerState {
    return {
      records: this.records,
      context: this.context,
      retry: this.retry,
      pending: this.pending,
      now: this.clock.now(),
    };
  }

  /** Number of Secrets known (managed or only monitored). */
  get size(): number {
    return this.records.size;
  }

  start(): void {
    this.watch.start();
    this.running = this.queue.run((key) => this.reconcile(key), this.deps.config.concurrency);
    const resync = () => {
      this.replanAll();
      this.resyncTimer = this.clock.setTimeout(resync, this.deps.config.resyncIntervalMs);
    };
    this.resyncTimer = this.clock.setTimeout(resync, this.deps.config.resyncIntervalMs);
  }

  async stop(): Promise<void> {
    this.watch.stop();
    if (this.resyncTimer !== undefined) this.clock.clearTimeout(this.resyncTimer);
    this.schedule.clear();
    this.context.suggestions.stop();
    await this.queue.shutDown();
    await this.running;
  }

  /** A watch event: the Secret appeared or changed. */
  upsert(secret: k8s.V1Secret): void {
    const record = recordFromSecret(secret);
    const key = secretKey(record.namespace, record.name);
    this.log.debug(
      { secret: key, resourceVersion: record.resourceVersion, managed: record.managed },
      'Secret seen',
    );
    const previous = this.records.get(key);
    this.records.set(key, record);
    this.ahead.delete(key);
    const ev = this.plan(key);
    if (ev) this.notifyChange(key, previous, record, ev);
  }

  /** A watch event: the Secret is gone. */
  remove(namespace: string, name: string): void {
    const key = secretKey(namespace, name);
    this.written.delete(key);
    this.deps.listener?.secretRemoved(namespace, name);
    this.records.delete(key);
    this.pending.delete(key);
    this.reported.delete(key);
    this.ahead.delete(key);
    this.retry.forget(key);
    this.schedule.cancel(key);
    this.context.suggestions.forget(key);
    this.certMetrics.remove(key);
  }

  /** When the controller will next look at a Secret (undefined: not scheduled, or queued now). */
  nextLookAt(key: string): number | undefined {
    return this.schedule.dueAt(key);
  }

  /**
   * What a pending attempt waits for has happened (its CSR was issued, denied or failed): look
   * at the Secrets in `namespace` whose name `matches` now instead of at the look-again time.
   */
  wakePending(namespace: string, matches: (name: string) => boolean): void {
    for (const key of this.pending) {
      const record = this.records.get(key);
      if (!record || record.namespace !== namespace || !matches(record.name)) continue;
      this.pending.delete(key);
      this.retry.pendingOver(key);
      this.ahead.delete(key);
      this.plan(key);
    }
  }

  /** Plans every known Secret again (on gaining leadership, and on resync). */
  replanAll(): void {
    for (const key of this.records.keys()) this.plan(key);
  }

  private listed(): void {
    this.synced = true;
    const m = process.memoryUsage();
    const mib = (n: number) => Math.round(n / 1048576);
    this.log.info(
      {
        secrets: this.records.size,
        rssMiB: mib(m.rss),
        heapUsedMiB: mib(m.heapUsed),
        heapTotalMiB: mib(m.heapTotal),
      },
      'initial list processed',
    );
  }

  private notifyChange(
    key: string,
    previous: SecretRecord | undefined,
    record: SecretRecord,
    ev: Evaluation,
  ) {
    const listener = this.deps.listener;
    if (!listener) return;
    const change = describeChange(previous, record, ev, this.deps.config, this.written.get(key));
    if (change) listener.certificateChanged(change);
  }

  /** Re-evaluates one Secret from its record: metrics, and when to look at it next. */
  private plan(key: string): Evaluation | undefined {
    const record = this.records.get(key);
    if (!record) return undefined;
    const now = this.clock.now();
    this.retry.restore(key, record.uid, record.annotations);
    const ev = evaluateNow(this.context, key, record, now);
    this.certMetrics.update(key, record, ev);
    const ahead = this.ahead.get(key);
    const reported = this.reported.get(key) === `${record.resourceVersion}|${ev.kind}`;
    const at = ahead
      ? ahead.at
      : nextLook(ev, reported, this.retry.notBefore(key), this.context.suggestions.refreshAt(key), now);
    if (at !== undefined && at <= now) {
      this.schedule.cancel(key);
      this.queue.add(key);
    } else {
      this.schedule.set(key, at);
    }
    return ev;
  }

  /** Looks at one Secret: read → decide → issue → verify → write → record → schedule. */
  async reconcile(key: string): Promise<undefined> {
    // A follower watches and exports metrics but never writes; it plans again when it leads.
    if (this.deps.isLeader && !this.deps.isLeader()) return;
    const cached = this.records.get(key);
    if (!cached) return;
    const now = this.clock.now();
    try {
      let current = await readCurrent(this.api, cached); // read
      this.retry.reachedApi(key, now);
      if (!current) return; // deleted: its watch event cleans up
      const step = decide(this.context, key, current, now); // decide
      if (step.kind !== 'renew') return await this.settle(key, current, step);
      const marked = await markIssuing(this.api, current.secret, step.input.issuer.kind);
      if (!marked) return this.changedMeanwhile(key);
      current = { ...current, secret: marked };
      let output: RenewOutput;
      try {
        output = verifyIssued(step.input, await issue(step.input)); // issue, verify
        const ca = step.ev.policy.ca;
        const caProblem = ca === undefined ? undefined : issuedCaProblem(output, ca, this.clock.now());
        if (caProblem !== undefined) {
          throw new RenewFailure('VERIFY_FAILED', `issuer "${step.choice.name}": ${caProblem}`);
        }
      } catch (err) {
        if (err instanceof RenewPending) return this.stillPending(key, current, step.choice.name, err);
        return await this.failed(key, current, step.choice.name, RenewFailure.from(err));
      }
      const target = step.ev.managedCa;
      if (target?.kind === 'stage') return await this.stage(key, current, step, target, output, now);
      const { renewBefore } = step.ev.policy;
      const renewalTime = computeRenewalTime({ ...output.summary, renewBefore });
      const written = await this.write(key, current, step.ev, output, renewalTime, now); // write
      if (written === undefined) return;
      const timing = { started: now, renewalTime };
      await this.report.renewed(current.record, step.ev, step.choice, output, timing); // record
      this.lookAgain(key, written, renewalTime); // schedule
    } catch (err) {
      const retryInMs = this.retry.transientError(key, this.clock.now());
      this.log.warn({ secret: key, retryInMs, error: describeApiError(err) }, 'reconcile failed; will retry');
      this.plan(key);
    }
  }

  /** Outcomes that issue nothing: report a problem once, fail for a missing issuer, or wait. */
  private async settle(
    key: string,
    current: Current,
    step: Exclude<Step, { kind: 'renew' }>,
  ): Promise<undefined> {
    if (step.kind === 'nothing') return;
    if (step.kind === 'ca-landed') return await this.caLanded(key, current, step.ev);
    if (step.kind === 'fail') return await this.failed(key, current, step.issuer, step.failure);
    if (step.kind === 'problem') {
      this.reported.set(key, step.marker);
      await this.report.problem(current.record, step.reason, step.message);
      this.lookAgain(key, current.record.resourceVersion, undefined);
      return;
    }
    if (step.at !== undefined) this.reported.delete(key);
    this.lookAgain(key, current.record.resourceVersion, step.at);
  }

  /**
   * The guarded replace. The certificate is marked as ours before the await, so the watch event of
   * our own write (which may arrive first) is never taken for someone else's change.
   */
  private async write(
    key: string,
    current: Current,
    ev: Planned,
    output: RenewOutput,
    renewalTime: number,
    now: number,
  ): Promise<string | undefined> {
    const before = this.written.get(key);
    const fingerprint = fingerprintOf(output.summary);
    this.written.set(key, fingerprint);
    const listener = this.deps.listener;
    const rolls =
      listener !== undefined &&
      ev.policy.restart.mode !== 'none' &&
      (listener.restartsWorkloads?.(current.record.namespace, current.record.name, ev.policy.restart) ??
        true);
    const result = await writeRenewal(this.api, current.secret, output, {
      renewalTime,
      now,
      requestHandled: ev.policy.renewRequest,
      restartOwed: rolls ? fingerprint : undefined,
    }).catch((err: unknown) => {
      this.restoreWritten(key, before);
      throw err;
    });
    if (!result.ok) {
      this.restoreWritten(key, before);
      if (result.why === 'conflict') this.changedMeanwhile(key);
      return undefined;
    }
    this.retry.succeeded(key);
    this.pending.delete(key);
    this.reported.delete(key);
    await output
      .afterWrite?.()
      .catch((err: unknown) =>
        this.log.warn(
          { secret: key, error: err instanceof Error ? err.message : String(err) },
          'clean-up after writing the Secret failed',
        ),
      );
    return result.resourceVersion;
  }

  /**
   * A renewed CA whose Secret backs a `ca` issuer: staged beside it with `next-ca` set, so the CA
   * rollover replaces the active CA only once every workload trusts the new one.
   */
  private async stage(
    key: string,
    current: Current,
    step: Extract<Step, { kind: 'renew' }>,
    target: { issuer: string; stagedName: string },
    output: RenewOutput,
    started: number,
  ): Promise<undefined> {
    let result: Awaited<ReturnType<typeof stageRenewedCa>>;
    try {
      result = await stageRenewedCa(
        this.api,
        current.secret,
        target.stagedName,
        output,
        step.ev.policy.renewRequest,
      );
    } catch (err) {
      if (err instanceof RenewFailure) return await this.failed(key, current, step.choice.name, err);
      throw err;
    }
    if (!result.ok) {
      if (result.why === 'conflict') this.changedMeanwhile(key);
      return;
    }
    this.retry.succeeded(key);
    this.pending.delete(key);
    this.reported.delete(key);
    await this.report.staged(current.record, step.choice, target, output, started);
    this.lookAgain(key, result.resourceVersion, undefined);
  }

  /** The rollover a CA renewal started is over: record the CA now in tls.crt as the renewal. */
  private async caLanded(key: string, current: Current, ev: Planned): Promise<undefined> {
    // Without a readable certificate the state is still cleared: the next look renews it anew.
    const cert = current.record.cert ?? undefined;
    const now = this.clock.now();
    const result = await this.api.replace(caSecretLanded(current.secret, cert, ev.renewalTime, now));
    if (!result.ok) {
      if (result.why === 'conflict') this.changedMeanwhile(key);
      return;
    }
    const issuer = ev.managedCa?.kind === 'landed' ? ev.managedCa.issuer : ev.issuer.name;
    if (cert) await this.report.caLanded(current.record, issuer, cert.notAfter, ev.renewalTime);
    this.lookAgain(key, result.resourceVersion, undefined);
  }

  /** Someone wrote the Secret after we read it: never overwrite that; decide again on theirs. */
  private changedMeanwhile(key: string): undefined {
    this.log.info(
      { secret: key },
      'Secret changed while renewing; discarding the new certificate and re-reading',
    );
    this.queue.add(key);
    return undefined;
  }

  private restoreWritten(key: string, before: string | undefined): void {
    if (before === undefined) this.written.delete(key);
    else this.written.set(key, before);
  }

  /** A failed attempt: backoff, Event/metric/log, status annotations (data untouched), next look. */
  private async failed(
    key: string,
    current: Current,
    issuer: string,
    failure: RenewFailure,
  ): Promise<undefined> {
    const now = this.clock.now();
    this.pending.delete(key);
    const retry = this.retry.renewalFailed(key, current.record.uid, now, failure.retryAfterMs);
    await this.report.failed(current.record, issuer, failure, retry);
    const written = await writeFailure(this.api, current.secret, {
      message: failure.message,
      failures: retry.failures,
      now,
      nextAttempt: now + retry.delayMs,
      recentOrders: failure.recentOrders,
    }).catch((err: unknown) => ({ ok: false as const, why: describeApiError(err) }));
    if (!written.ok)
      this.log.info({ secret: key, error: written.why }, 'could not record the failure on the Secret');
    this.lookAgain(
      key,
      written.ok ? written.resourceVersion : current.record.resourceVersion,
      now + retry.delayMs,
    );
  }

  /**
   * The issuer gave its worker back while waiting on someone else (a CSR not approved yet): the
   * Secret stays `Issuing`, no failure is counted, no Event; the next look resumes the attempt.
   */
  private stillPending(key: string, current: Current, issuer: string, pending: RenewPending): undefined {
    const now = this.clock.now();
    const afterMs = Math.min(MAX_PENDING_RELOOK_MS, Math.max(MIN_PENDING_RELOOK_MS, pending.retryAfterMs));
    const at = this.retry.pending(key, now, afterMs);
    this.pending.add(key);
    this.log.info({ secret: key, issuer, retryInMs: afterMs }, pending.message);
    this.lookAgain(key, current.secret.metadata?.resourceVersion ?? current.record.resourceVersion, at);
  }

  /** Schedules the next look, decided on `resourceVersion` (which the watch may not have shown yet). */
  private lookAgain(key: string, resourceVersion: string, at: number | undefined): void {
    if (this.records.get(key)?.resourceVersion !== resourceVersion) this.ahead.set(key, { at });
    this.plan(key);
  }
}
