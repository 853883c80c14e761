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
import { Annotation, EventReason, SecretKey, StatusAnnotation } from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { computeRenewalTime } from '../pki/policy.ts';
import type { SecretPolicy } from './annotations.ts';
import { type Evaluation, evaluate } from './evaluate.ts';
import { chooseIssuer } from './fallback.ts';
import { recordFromSecret, type SecretRecord, secretKey } from './record.ts';
import { RenewFailure, renewCertificate } from './renew.ts';
import { SuggestedRenewals } from './suggestions.ts';

/** A managed Secret now holds a different (parseable) certificate than before. */
export interface CertificateChange {
  namespace: string;
  name: string;
  /** Identifies the leaf: serial and public key hash. */
  fingerprint: string;
  /** The fingerprint seen before, if any (absent on the first sighting since start-up). */
  previousFingerprint?: string;
  policy: SecretPolicy;
  notBefore: number;
  notAfter: number;
  /** True when this process wrote the certificate (a renewal), false for a change made by others. */
  byController: boolean;
}

/** Told about certificate changes of managed Secrets (the rollout manager listens here). */
export interface CertificateListener {
  certificateChanged(change: CertificateChange): void;
  secretRemoved(namespace: string, name: string): void;
}

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

const MAX_ERROR_ANNOTATION = 512;

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
  private readonly metricLabels = new Map<
    string,
    { namespace: string; secret: string; issuer: string; managed: boolean }
  >();
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
    this.plan(key);
    this.notifyChange(key, previous, record);
  }

  private notifyChange(key: string, previous: SecretRecord | undefined, record: SecretRecord): void {
    const listener = this.deps.listener;
    const fingerprint = record.cert ? fingerprintOf(record.cert) : undefined;
    if (!listener || !record.managed || !fingerprint || !record.cert) return;
    const before = previous?.cert ? fingerprintOf(previous.cert) : undefined;
    const ev = evaluate(record, this.deps.config, this.clock.now());
    if (ev.kind !== 'planned') return;
    // Same certificate: tell the listener only when what it acts on changed (the Secret became
    // managed or valid, or its restart/window annotations changed); it sees previousFingerprint
    // equal to fingerprint and so knows the certificate itself did not change.
    if (before === fingerprint && previous && !rolloutPolicyChanged(previous, record, this.deps.config))
      return;
    listener.certificateChanged({
      namespace: record.namespace,
      name: record.name,
      fingerprint,
      ...(before !== undefined ? { previousFingerprint: before } : {}),
      policy: ev.policy,
      notBefore: record.cert.notBefore,
      notAfter: record.cert.notAfter,
      byController: this.written.get(key) === fingerprint,
    });
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
    const labels = this.metricLabels.get(key);
    if (labels) this.deps.metrics.setCertificate(labels, undefined);
    this.metricLabels.delete(key);
  }

  /** Re-evaluates one Secret from its record: metrics, and when it should next be reconciled. */
  private plan(key: string): void {
    const record = this.records.get(key);
    if (!record) return;
    const now = this.clock.now();
    const ev = this.evaluateWithSuggestion(key, record, now);
    this.exportMetrics(key, record, ev, now);
    switch (ev.kind) {
      case 'unmanaged':
        this.schedule.cancel(key);
        return;
      case 'invalid':
      case 'not-allowed':
        // Reported once per resourceVersion by reconcile; nothing to schedule.
        this.schedule.cancel(key);
        if (this.reported.get(key) !== `${record.resourceVersion}|${ev.kind}`) this.queue.add(key);
        return;
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
  }

  private exportMetrics(key: string, record: SecretRecord, ev: Evaluation, now: number): void {
    const issuer = ev.kind === 'planned' ? ev.issuer.name : ev.kind === 'not-allowed' ? ev.issuer : '';
    const labels = { namespace: record.namespace, secret: record.name, issuer, managed: record.managed };
    const previous = this.metricLabels.get(key);
    if (previous && (previous.issuer !== labels.issuer || previous.managed !== labels.managed)) {
      this.deps.metrics.setCertificate(previous, undefined);
    }
    this.metricLabels.set(key, labels);
    const cert = record.cert;
    this.deps.metrics.setCertificate(
      labels,
      cert
        ? {
            notBefore: cert.notBefore,
            notAfter: cert.notAfter,
            ready: cert.notBefore <= now && now < cert.notAfter,
            ...(ev.kind === 'planned' && ev.renewalTime !== undefined ? { renewalTime: ev.renewalTime } : {}),
          }
        : undefined,
    );
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
      ev.policy.identityOverride.dnsNames ?? record.cert?.dnsNames ?? [],
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
      this.records.set(key, current);
      const again = this.evaluateWithSuggestion(key, current, now);
      if (again.kind !== 'planned' || again.decision.action !== 'renew-now') {
        this.plan(key);
        return undefined;
      }
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
        currentKeyPem: decode(fresh.data?.[SecretKey.privateKey]),
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

    const annotations = { ...(fresh.metadata?.annotations ?? {}) };
    const revision = Number.parseInt(annotations[StatusAnnotation.revision] ?? '0', 10);
    const renewalTime = computeRenewalTime({
      notBefore: output.summary.notBefore,
      notAfter: output.summary.notAfter,
      renewBefore: policy.renewBefore,
    });
    annotations[StatusAnnotation.state] = 'Ready';
    annotations[StatusAnnotation.notAfter] = iso(output.summary.notAfter);
    annotations[StatusAnnotation.renewalTime] = iso(renewalTime);
    annotations[StatusAnnotation.lastRenewed] = iso(now);
    annotations[StatusAnnotation.revision] = String((Number.isFinite(revision) ? revision : 0) + 1);
    delete annotations[StatusAnnotation.lastError];
    delete annotations[StatusAnnotation.failures];
    const body: k8s.V1Secret = {
      ...fresh,
      metadata: { ...fresh.metadata, annotations, managedFields: undefined },
      data: { ...(fresh.data ?? {}), ...encodeAll(output.data) },
    };
    try {
      await this.deps.clients.core.replaceNamespacedSecret({
        namespace: record.namespace,
        name: record.name,
        body,
        fieldManager: 'cert-rotator',
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
    const annotations = { ...(fresh.metadata?.annotations ?? {}) };
    annotations[StatusAnnotation.state] = 'Failed';
    annotations[StatusAnnotation.lastError] = failure.message.slice(0, MAX_ERROR_ANNOTATION);
    annotations[StatusAnnotation.failures] = String(failures);
    try {
      await this.deps.clients.core.replaceNamespacedSecret({
        namespace: record.namespace,
        name: record.name,
        body: { ...fresh, metadata: { ...fresh.metadata, annotations, managedFields: undefined } },
        fieldManager: 'cert-rotator',
      });
    } catch (err) {
      this.log.info(
        { secret: key, error: describeApiError(err) },
        'could not record the failure on the Secret',
      );
    }
  }
}

const ROLLOUT_ANNOTATIONS = [
  Annotation.restart,
  Annotation.window,
  Annotation.windowDuration,
  Annotation.windowTimezone,
  Annotation.enabled,
];

/** True when a Secret's change matters to rollouts although its certificate stayed the same. */
function rolloutPolicyChanged(previous: SecretRecord, record: SecretRecord, config: Config): boolean {
  if (ROLLOUT_ANNOTATIONS.some((a) => previous.annotations[a] !== record.annotations[a])) return true;
  // A Secret whose annotations were invalid before was never reported: report it now.
  return evaluate(previous, config, 0).kind !== 'planned';
}

export function fingerprintOf(cert: { serialHex: string; spkiSha256: string }): string {
  return `${cert.serialHex}:${cert.spkiSha256}`;
}

function decode(b64: string | undefined): string {
  return b64 ? Buffer.from(b64, 'base64').toString('utf8') : '';
}

function encodeAll(data: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) out[k] = Buffer.from(v, 'utf8').toString('base64');
  return out;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
