import type * as k8s from '@kubernetes/client-node';
import { type Clock, systemClock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { Issuer } from '../issuers/types.ts';
import { Backoff, RENEWAL_BACKOFF } from '../kube/backoff.ts';
import { describeApiError, httpStatus, type KubeClients } from '../kube/client.ts';
import type { EventRecorder } from '../kube/events.ts';
import { SecretWatch } from '../kube/secret-watch.ts';
import { TimerQueue } from '../kube/timer-queue.ts';
import { type Result, WorkQueue } from '../kube/workqueue.ts';
import { EventReason, FIELD_MANAGER, SecretKey } from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { computeRenewalTime } from '../policy/renewal.ts';
import { CertificateMetrics } from './certificate-metrics.ts';
import { type Evaluation, evaluate } from './evaluate.ts';
import { chooseIssuer } from './fallback.ts';
import { type CertificateListener, describeChange, fingerprintOf } from './listener.ts';
import { recordFromSecret, type SecretRecord, secretKey } from './record.ts';
import { RenewFailure, renewCertificate } from './renew.ts';
import { decodeData, failedSecret, iso, renewedSecret } from './secret-body.ts';
import { SuggestedRenewals } from './suggestions.ts';

export type { CertificateChange, CertificateListener } from './listener.ts';
export { fingerprintOf } from './listener.ts';

export interface ControllerDeps {
  config: Config;
  clients: KubeClients;
  issuers: Map<string, Issuer>;
  /** Issuers named in the config that this build cannot run, with the reason. */
  unsupportedIssuers?: Map<string, string>;
  events: EventRecorder;
  log: Logger;
  metrics: Metrics;
  clock?: Clock;
  listener?: CertificateListener;
  /** With leader election: only the leader writes. Absent = always write. */
  isLeader?: () => boolean;
}

/**
 * The Secret reconciler. Watch events update a compact record per Secret and its place in the
 * renewal schedule (one timer for all); a Secret whose time has come goes through the work
 * queue to `reconcile`, which reads the Secret, decides again, issues, verifies and writes it
 * in one replace guarded by the resourceVersion it read.
 */
export class SecretController {
  private readonly deps: ControllerDeps;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly records = new Map<string, SecretRecord>();
  private readonly certMetrics: CertificateMetrics;
  /** key → "resourceVersion|reason" of the last problem reported, so each is reported once. */
  private readonly reported = new Map<string, string>();
  /** Issuance failures: the next attempt is not before this time. */
  private readonly retryAt = new Map<string, number>();
  private readonly failureBackoff: Backoff<string>;
  /** The issuers' suggested renewal times (ACME ARI), fetched off the planning path. */
  private readonly suggestions: SuggestedRenewals;
  private readonly schedule: TimerQueue<string>;
  private readonly queue: WorkQueue<string>;
  private readonly watch: SecretWatch;
  /** Fingerprint of the last certificate this process wrote to each Secret. */
  private readonly written = new Map<string, string>();
  private resyncTimer: unknown;
  private running: Promise<void> | undefined;
  private synced = false;

  constructor(deps: ControllerDeps) {
    this.deps = deps;
    this.certMetrics = new CertificateMetrics(deps.metrics);
    this.clock = deps.clock ?? systemClock;
    this.log = deps.log;
    this.failureBackoff = new Backoff<string>({
      ...RENEWAL_BACKOFF,
      baseMs: deps.config.renewalBackoff.baseMs,
      capMs: deps.config.renewalBackoff.capMs,
    });
    this.suggestions = new SuggestedRenewals({
      clock: this.clock,
      log: this.log,
      onChange: (key) => this.plan(key),
    });
    this.schedule = new TimerQueue<string>((key) => this.queue.add(key), { clock: this.clock });
    this.queue = new WorkQueue<string>({
      clock: this.clock,
      // Unexpected errors (API unreachable, ...) retry soon; issuance failures use failureBackoff.
      backoff: new Backoff<string>({ baseMs: 1_000, capMs: 5 * 60_000, factor: 2, jitter: 'full' }),
      onError: (err, key, retryInMs) =>
        this.log.warn(
          { secret: key, retryInMs, error: describeApiError(err) },
          'reconcile failed; will retry',
        ),
    });
    const ns = deps.config.namespaces;
    this.watch = new SecretWatch(
      deps.clients.config,
      {
        upsert: (s) => this.onUpsert(s),
        remove: (namespace, name) => this.onRemove(namespace, name),
        synced: () => {
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
        },
        error: (err, retryInMs) =>
          this.log.warn({ retryInMs, error: describeApiError(err) }, 'Secret list/watch failed; retrying'),
      },
      { namespaces: ns === 'all' ? [] : ns },
    );
  }

  ready(): boolean {
    return this.synced;
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
    this.suggestions.stop();
    await this.queue.shutDown();
    await this.running;
  }

  private onUpsert(secret: k8s.V1Secret): void {
    const record = recordFromSecret(secret);
    const key = secretKey(record.namespace, record.name);
    this.log.debug(
      { secret: key, resourceVersion: record.resourceVersion, managed: record.managed },
      'Secret seen',
    );
    const previous = this.records.get(key);
    this.records.set(key, record);
    const ev = this.plan(key);
    if (ev) this.notifyChange(key, previous, record, ev);
  }

  private notifyChange(
    key: string,
    previous: SecretRecord | undefined,
    record: SecretRecord,
    ev: Evaluation,
  ): void {
    const listener = this.deps.listener;
    if (!listener) return;
    const change = describeChange(previous, record, ev, this.deps.config, this.written.get(key));
    if (change) listener.certificateChanged(change);
  }

  private onRemove(namespace: string, name: string): void {
    const key = secretKey(namespace, name);
    this.written.delete(key);
    this.deps.listener?.secretRemoved(namespace, name);
    this.records.delete(key);
    this.reported.delete(key);
    this.retryAt.delete(key);
    this.failureBackoff.reset(key);
    this.schedule.cancel(key);
    this.suggestions.forget(key);
    this.certMetrics.remove(key);
  }

  /** Re-evaluates one Secret from its record: metrics, and when it should next be reconciled. */
  private plan(key: string): Evaluation | undefined {
    const record = this.records.get(key);
    if (!record) return undefined;
    const now = this.clock.now();
    const ev = this.evaluateWithSuggestion(key, record, now);
    this.certMetrics.update(key, record, ev);
    switch (ev.kind) {
      case 'unmanaged':
        this.schedule.cancel(key);
        break;
      case 'invalid':
      case 'not-allowed':
        // Reported once per resourceVersion by reconcile; nothing to schedule.
        this.schedule.cancel(key);
        if (this.reported.get(key) !== `${record.resourceVersion}|${ev.kind}`) this.queue.add(key);
        break;
      case 'planned': {
        const retry = this.retryAt.get(key) ?? 0;
        const at = Math.max(ev.decision.action === 'renew-now' ? now : ev.decision.at, retry);
        if (at <= now) {
          this.schedule.cancel(key);
          this.queue.add(key);
        } else {
          this.schedule.schedule(key, at);
        }
      }
    }
    return ev;
  }

  private ref(r: { namespace: string; name: string; uid?: string }) {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      namespace: r.namespace,
      name: r.name,
      ...(r.uid ? { uid: r.uid } : {}),
    };
  }

  /** Reports a problem that needs a person (bad annotation, refused issuer) once per resourceVersion. */
  private async reportOnce(
    record: SecretRecord,
    kind: string,
    reason: string,
    message: string,
  ): Promise<void> {
    const key = secretKey(record.namespace, record.name);
    const marker = `${record.resourceVersion}|${kind}`;
    if (this.reported.get(key) === marker) return;
    this.reported.set(key, marker);
    this.deps.metrics.secretErrors.inc({ reason });
    this.log.warn({ secret: key, reason }, message);
    await this.deps.events.record(this.ref(record), 'Warning', reason, message, this.clock.now());
  }

  /** evaluate(), with the issuer's suggested renewal time (ACME ARI) once it is known. */
  private evaluateWithSuggestion(key: string, record: SecretRecord, now: number): Evaluation {
    const ev = evaluate(record, this.deps.config, now);
    if (ev.kind !== 'planned') {
      this.suggestions.forget(key);
      return ev;
    }
    const at = this.suggestions.lookup(key, record, this.deps.issuers.get(ev.issuer.name));
    return at === undefined ? ev : evaluate(record, this.deps.config, now, at);
  }

  /** Plans every known Secret again (on gaining leadership, and on resync). */
  replanAll(): void {
    for (const key of this.records.keys()) this.plan(key);
  }

  async reconcile(key: string): Promise<Result> {
    // A follower watches and exports metrics but never writes; it plans again when it leads.
    if (this.deps.isLeader && !this.deps.isLeader()) return undefined;
    const record = this.records.get(key);
    if (!record) return undefined;
    const now = this.clock.now();
    const ev = this.evaluateWithSuggestion(key, record, now);
    if (ev.kind === 'unmanaged') return undefined;
    if (ev.kind === 'invalid') {
      const message = `invalid annotations, Secret left untouched: ${ev.errors.map((e) => `${e.annotation}: ${e.message}`).join('; ')}`;
      await this.reportOnce(record, 'invalid', EventReason.invalidAnnotation, message);
      return undefined;
    }
    if (ev.kind === 'not-allowed') {
      await this.reportOnce(
        record,
        'not-allowed',
        EventReason.issuerNotAllowed,
        `${ev.reason}; Secret left untouched`,
      );
      return undefined;
    }
    this.reported.delete(key);
    if (ev.decision.action === 'wait' || (this.retryAt.get(key) ?? 0) > now) {
      this.plan(key);
      return undefined;
    }
    // After `fallbackAfter` consecutive failures the issuer's `fallback` issues for this Secret.
    const choice = chooseIssuer(
      ev.issuer,
      this.failureBackoff.failures(key),
      this.deps.config,
      record.namespace,
      ev.identity,
    );
    const viaFallback = choice.fallbackFrom
      ? ` as fallback for issuer "${choice.fallbackFrom}" after ${choice.failures} consecutive failures`
      : '';
    const issuer = this.deps.issuers.get(choice.name);
    if (!issuer) {
      const why =
        this.deps.unsupportedIssuers?.get(choice.name) ?? `issuer "${choice.name}" is not available`;
      await this.fail(record, undefined, choice.name, new RenewFailure('ISSUER_FAILED', why));
      return undefined;
    }

    // Act on the Secret as it is now, not as the watch last showed it.
    let fresh: k8s.V1Secret;
    try {
      fresh = await this.deps.clients.core.readNamespacedSecret({
        namespace: record.namespace,
        name: record.name,
      });
    } catch (err) {
      if (httpStatus(err) === 404) {
        this.onRemove(record.namespace, record.name);
        return undefined;
      }
      throw err;
    }
    const current = recordFromSecret(fresh);
    if (current.resourceVersion !== record.resourceVersion) {
      // The watch has not shown this version yet: everything above was decided on an older one
      // (annotations, identity, issuer). Decide again from the top on what the API server holds.
      this.records.set(key, current);
      return { requeueAfter: 0 };
    }

    const started = this.clock.now();
    const policy = ev.policy;
    this.log.debug(
      { secret: key, issuer: issuer.name, reason: ev.decision.reason, fallbackFrom: choice.fallbackFrom },
      'renewing',
    );
    let output: Awaited<ReturnType<typeof renewCertificate>>;
    try {
      output = await renewCertificate({
        namespace: record.namespace,
        name: record.name,
        currentKeyPem: decodeData(fresh.data?.[SecretKey.privateKey]),
        currentCert: current.cert,
        policy,
        issuer,
        now,
      });
    } catch (err) {
      const failure = err instanceof RenewFailure ? err : new RenewFailure('ISSUER_FAILED', String(err));
      await this.fail(current, fresh, issuer.name, failure);
      return undefined;
    }

    const renewalTime = computeRenewalTime({
      notBefore: output.summary.notBefore,
      notAfter: output.summary.notAfter,
      renewBefore: policy.renewBefore,
    });
    const body = renewedSecret(fresh, output.data, { notAfter: output.summary.notAfter, renewalTime, now });
    try {
      await this.deps.clients.core.replaceNamespacedSecret({
        namespace: record.namespace,
        name: record.name,
        body,
        fieldManager: FIELD_MANAGER,
      });
    } catch (err) {
      if (httpStatus(err) === 409) {
        // Someone wrote the Secret after we read it: never overwrite that; decide again on it.
        this.log.info(
          { secret: key },
          'Secret changed while renewing; discarding the new certificate and re-reading',
        );
        return { requeueAfter: 0 };
      }
      throw err;
    }
    if (output.afterWrite) {
      await output
        .afterWrite()
        .catch((err: unknown) =>
          this.log.warn(
            { secret: key, issuer: issuer.name, error: err instanceof Error ? err.message : String(err) },
            'clean-up after writing the Secret failed',
          ),
        );
    }
    this.written.set(key, fingerprintOf(output.summary));
    this.retryAt.delete(key);
    this.failureBackoff.reset(key);
    const seconds = (this.clock.now() - started) / 1000;
    this.deps.metrics.renewals.inc({ issuer: issuer.name, result: 'success' });
    this.deps.metrics.renewalDuration.observe({ issuer: issuer.name }, seconds);
    this.log.info(
      {
        secret: key,
        issuer: issuer.name,
        serial: output.summary.serialHex,
        notAfter: iso(output.summary.notAfter),
        renewalTime: iso(renewalTime),
        keyRotated: output.keyRotated,
        reason: ev.decision.reason,
        fallbackFrom: choice.fallbackFrom,
        seconds,
      },
      'certificate renewed',
    );
    await this.deps.events.record(
      this.ref(current),
      'Normal',
      EventReason.renewed,
      `renewed by issuer "${issuer.name}"${viaFallback} (${ev.decision.reason}); new certificate valid until ${iso(output.summary.notAfter)}, next renewal ${iso(renewalTime)}`,
      this.clock.now(),
    );
    return undefined;
  }

  /** Records a failed renewal: event, metric, log, status annotations (data untouched), backoff. */
  private async fail(
    record: SecretRecord,
    fresh: k8s.V1Secret | undefined,
    issuerName: string,
    failure: RenewFailure,
  ): Promise<void> {
    const key = secretKey(record.namespace, record.name);
    // A CA's Retry-After is a floor under the backoff: reschedule, never sleep in a worker.
    const delay = Math.max(this.failureBackoff.next(key), failure.retryAfterMs ?? 0);
    const failures = this.failureBackoff.failures(key);
    const now = this.clock.now();
    this.retryAt.set(key, now + delay);
    this.schedule.schedule(key, now + delay);
    this.deps.metrics.renewals.inc({ issuer: issuerName, result: 'failure' });
    this.log.warn(
      { secret: key, issuer: issuerName, code: failure.code, failures, retryInMs: delay },
      failure.message,
    );
    await this.deps.events.record(
      this.ref(record),
      'Warning',
      EventReason.renewalFailed,
      `${failure.message} (attempt ${failures}; next attempt in ${Math.round(delay / 1000)}s)`,
      now,
    );
    if (!fresh) return;
    try {
      await this.deps.clients.core.replaceNamespacedSecret({
        namespace: record.namespace,
        name: record.name,
        body: failedSecret(fresh, failure.message, failures),
        fieldManager: FIELD_MANAGER,
      });
    } catch (err) {
      this.log.info(
        { secret: key, error: describeApiError(err) },
        'could not record the failure on the Secret',
      );
    }
  }
}
