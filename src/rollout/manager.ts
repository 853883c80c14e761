import { type Clock, systemClock } from '../clock.ts';
import { Backoff } from '../kube/backoff.ts';
import { describeApiError } from '../kube/client.ts';
import { type Result, WorkQueue } from '../kube/workqueue.ts';
import { PodTemplateAnnotation, type RestartKind, RolloutResult } from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import type { RestartPolicy } from '../policy/restart.ts';
import type { CertificateChange, CertificateListener } from './listener.ts';
import { type ManagedSecret, ManagedSecrets } from './managed-secrets.ts';
import { decideRestart, planRestart } from './plan.ts';
import { kindOf, RolloutReporter } from './report.ts';
import type { RecordEvent } from './secret-events.ts';
import { verifyTlsPair } from './verify.ts';
import { WorkloadIndex, type WorkloadObject, workloadKey } from './workload-index.ts';

/** The API calls the manager makes (kube/workload-watch.ts implements them; unit tests fake them). */
export interface RolloutApi {
  /** The workload as it is now, or undefined when it does not exist. */
  read(kind: RestartKind, namespace: string, name: string): Promise<WorkloadObject | undefined>;
  /** Strategic-merge patch of pod-template annotations, guarded by resourceVersion. */
  patch(
    target: { kind: RestartKind; namespace: string; name: string; resourceVersion: string },
    annotations: Record<string, string>,
  ): Promise<{ ok: true; generation: number } | { ok: false; status: 'conflict' | 'gone' }>;
  /** A Secret's tls.crt and tls.key as text, or undefined when it is gone. */
  readTlsPair(namespace: string, name: string): Promise<{ certPem: string; keyPem: string } | undefined>;
  /**
   * Records on the Secret (`status.cert-rotator.io/restart-owed`) that its workloads still have to
   * be rolled to the certificate `fingerprint`, or (`owed: false`) that they all have been: removes
   * the record if it still names `fingerprint`, never a newer one.
   */
  setRestartOwed(namespace: string, name: string, fingerprint: string, owed: boolean): Promise<void>;
}

export interface RolloutManagerDeps {
  api: RolloutApi;
  record: RecordEvent;
  log: Logger;
  metrics: { rollouts: { inc(labels: { kind: string; result: string }): void } };
  /** Wait this long after a certificate change before restarting, to merge changes made together. */
  debounceMs: number;
  /** True once the Secret controller has reported every managed Secret of its first list. */
  secretsSynced: () => boolean;
  clock?: Clock;
  /** Patches in flight at once. */
  concurrency?: number;
  /** Delay before merged Secret events are written. */
  secretEventDelayMs?: number;
  /** With leader election: only the leader patches. Absent = always. */
  isLeader?: () => boolean;
}

const CONFLICT_RETRY_MS = 0;
const SYNC_POLL_MS = 200;
/** How often a follower that was asked to restart something checks whether it leads now. */
const LEADER_POLL_MS = 1_000;

/**
 * Restarts the workloads that use a managed Secret after its certificate changes, by setting
 * `cert-rotator.io/certificate-hash` on their pod template to a hash of the certificates of all
 * managed Secrets they use. The cluster is the memory: a workload whose template already holds
 * the hash is never patched, so a restarted controller, a resync or a repeated notification
 * restarts nothing. A workload that never carried the hash is patched only for a change observed
 * live, never merely because the controller started.
 */
export class RolloutManager implements CertificateListener {
  readonly index = new WorkloadIndex();
  readonly #deps: RolloutManagerDeps;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #queue: WorkQueue<string>;
  readonly #report: RolloutReporter;
  readonly #secrets = new ManagedSecrets();
  /** workload key → Secrets whose live certificate change it has yet to roll out. */
  readonly #triggers = new Map<string, Set<string>>();
  /** Secrets that changed before the index was ready. */
  readonly #pendingLive = new Set<string>();
  /**
   * workload key → when the debounce of its first pending change ends. A workload queued sooner
   * (start-up check, gaining leadership, a resumed Deployment) still waits for it, so changes made
   * together are merged however the workload got into the queue.
   */
  readonly #debounceUntil = new Map<string, number>();
  /** workload key → the window start a deferral was last reported for. */
  readonly #deferred = new Map<string, number>();
  /** Workloads whose last patch met a 409: read fresh before deciding again. */
  readonly #stale = new Set<string>();
  /**
   * Secret key → fingerprint whose restarts the Secret records as owed: cleared on the Secret once
   * no workload is owed a restart for it any more, so a new process can finish what this one began.
   */
  readonly #owed = new Map<string, string>();
  #workloadsSynced = false;
  #synced = false;
  #syncTimer: unknown;
  #leaderTimer: unknown;
  #running: Promise<void> | undefined;

  constructor(deps: RolloutManagerDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#log = deps.log;
    this.#report = new RolloutReporter(deps, this.#clock, deps.secretEventDelayMs);
    this.#queue = new WorkQueue<string>({
      clock: this.#clock,
      // A failed restart patch is an API blip, not a CA refusing: seconds, not the renewal
      // backoff's 5-minute base (the chaos suite saw pods keep an old certificate for ~8 min).
      backoff: new Backoff<string>({ baseMs: 1_000, capMs: 5 * 60_000 }),
      onError: (err, key, retryInMs) => {
        this.#report.count(kindOf(key), RolloutResult.failure);
        this.#log.warn(
          { workload: key, retryInMs, error: describeApiError(err) },
          'workload restart failed; will retry',
        );
      },
    });
  }

  /** Depth and oldest wait of the work queue, for the metrics. */
  queueStats(): { depth: number; oldestWaitMs: number } {
    return { depth: this.#queue.depth, oldestWaitMs: this.#queue.oldestWaitMs() };
  }

  /** Ready once workloads and Secrets have both been listed. */
  get synced(): boolean {
    return this.#synced;
  }

  start(): void {
    this.#running ??= this.#queue.run((key) => this.#reconcile(key), this.#deps.concurrency ?? 16);
  }

  async stop(): Promise<void> {
    if (this.#syncTimer !== undefined) this.#clock.clearTimeout(this.#syncTimer);
    if (this.#leaderTimer !== undefined) this.#clock.clearTimeout(this.#leaderTimer);
    await this.#queue.shutDown();
    await this.#running;
    await this.#report.flush();
  }

  // --- workload watch ------------------------------------------------------------------------

  workloadUpserted(kind: RestartKind, object: WorkloadObject): void {
    const r = this.index.upsert(kind, object);
    if (!r) return;
    if (r.previous === undefined || r.previous.secrets !== r.entry.secrets) {
      this.#log.debug({ workload: r.key, secrets: r.entry.secrets }, 'workload indexed');
    }
    // A paused Deployment with a restart owed gets it when resumed.
    if (r.previous?.paused && !r.entry.paused && this.#triggers.has(r.key)) this.#queue.add(r.key);
  }

  workloadRemoved(kind: RestartKind, namespace: string, name: string): void {
    this.index.remove(kind, namespace, name);
    const key = workloadKey(kind, namespace, name);
    this.#done(key);
    this.#stale.delete(key);
  }

  workloadsSynced(): void {
    this.#workloadsSynced = true;
    this.#checkSynced();
  }

  #checkSynced(): void {
    this.#syncTimer = undefined;
    if (this.#synced || !this.#workloadsSynced) return;
    if (!this.#deps.secretsSynced()) {
      this.#syncTimer = this.#clock.setTimeout(() => this.#checkSynced(), SYNC_POLL_MS);
      return;
    }
    this.#synced = true;
    let carrying = 0;
    // Workloads cert-rotator patched before: catch up on changes made while it was not running.
    // Those that hold the current hash cost nothing (no API call).
    for (const [key, entry] of this.index.entries()) {
      if (entry.hash === undefined) continue;
      carrying++;
      this.#queue.add(key);
    }
    this.#log.info(
      {
        workloads: this.index.size,
        withHash: carrying,
        secretsUsed: this.index.secretCount,
        managedSecrets: this.#secrets.size,
      },
      'rollout index ready',
    );
    for (const key of this.#pendingLive) void this.#rollOut(key);
    this.#pendingLive.clear();
  }

  // --- Secret controller ---------------------------------------------------------------------

  certificateChanged(change: CertificateChange): void {
    const key = `${change.namespace}/${change.name}`;
    const before = this.#secrets.get(key);
    const state: ManagedSecret = {
      namespace: change.namespace,
      name: change.name,
      fingerprint: change.fingerprint,
      restart: change.policy.restart,
      window: change.policy.window,
      validity: { notBefore: change.notBefore, notAfter: change.notAfter },
      previous: before?.validity,
      byController: change.byController,
      owed: change.restartOwed === true,
    };
    this.#secrets.set(key, state);
    if (state.owed) this.#owed.set(key, change.fingerprint);
    // A restart the Secret records as owed (a previous process saw the change and did not finish)
    // counts as a change seen live, once per certificate.
    const live =
      (change.previousFingerprint !== undefined && change.previousFingerprint !== change.fingerprint) ||
      (state.owed && before?.fingerprint !== change.fingerprint);
    if (!live) return;
    if (!this.#synced) {
      this.#pendingLive.add(key);
      return;
    }
    void this.#rollOut(key);
  }

  restartsWorkloads(namespace: string, name: string, restart: RestartPolicy): boolean {
    // Before the workloads are listed nothing is known: record the owed restart to be safe.
    if (!this.#workloadsSynced) return true;
    if (restart.mode === 'none') return false;
    if (restart.mode === 'auto') return this.index.usersOf(namespace, name).length > 0;
    return restart.targets.some((t) => this.index.get(workloadKey(t.kind, namespace, t.name)) !== undefined);
  }

  secretRemoved(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    this.#secrets.delete(key, namespace);
    this.#pendingLive.delete(key);
    this.#owed.delete(key);
  }

  /** A live certificate change of one Secret: find its workloads and queue them, debounced. */
  async #rollOut(secretKey: string): Promise<void> {
    const s = this.#secrets.get(secretKey);
    if (!s) return;
    const secret = { namespace: s.namespace, name: s.name };
    if (s.restart.mode === 'none') {
      for (const wk of this.index.usersOf(s.namespace, s.name)) this.#report.restartDisabled(secret, wk);
      this.#settle(secretKey);
      return;
    }
    let targets: string[];
    if (s.restart.mode === 'auto') {
      targets = this.index.usersOf(s.namespace, s.name);
    } else {
      targets = [];
      for (const t of s.restart.targets) {
        const wk = workloadKey(t.kind, s.namespace, t.name);
        if (this.index.get(wk)) {
          targets.push(wk);
          continue;
        }
        this.#report.targetNotFound(secret, t);
      }
    }
    if (targets.length === 0) {
      this.#settle(secretKey);
      return;
    }
    if (!s.byController && !s.owed) {
      // Replaced by hand: only a certificate that works may restart anything.
      const problem = await verifyTlsPair(this.#deps.api, s.namespace, s.name, this.#clock.now());
      if (problem !== undefined) {
        this.#report.unusable(secretKey, secret, targets, problem);
        return;
      }
      await this.#recordOwed(secretKey, s.fingerprint);
    }
    for (const wk of targets) {
      let set = this.#triggers.get(wk);
      if (!set) {
        set = new Set();
        this.#triggers.set(wk, set);
      }
      set.add(secretKey);
      if (!this.#debounceUntil.has(wk))
        this.#debounceUntil.set(wk, this.#clock.now() + this.#deps.debounceMs);
      this.#queue.addAfter(wk, this.#deps.debounceMs);
    }
  }

  // --- reconcile -----------------------------------------------------------------------------

  /**
   * Looks at every workload that carries a hash or is owed a restart again (call on gaining
   * leadership: a follower indexes and remembers, but never patches).
   */
  replanAll(): void {
    if (!this.#synced) return;
    for (const [key, entry] of this.index.entries()) {
      if (entry.hash !== undefined || this.#triggers.has(key)) this.#queue.add(key);
    }
  }

  #awaitLeadership(): void {
    if (this.#leaderTimer !== undefined) return;
    const poll = () => {
      this.#leaderTimer = undefined;
      if (this.#deps.isLeader?.() === false) {
        this.#leaderTimer = this.#clock.setTimeout(poll, LEADER_POLL_MS);
        return;
      }
      this.replanAll();
    };
    this.#leaderTimer = this.#clock.setTimeout(poll, LEADER_POLL_MS);
  }

  async #reconcile(key: string): Promise<Result> {
    if (this.#deps.isLeader && !this.#deps.isLeader()) {
      // A follower remembers what it owes (triggers stay) and looks again once it leads.
      this.#awaitLeadership();
      return undefined;
    }
    let entry = this.index.get(key);
    if (entry && this.#stale.delete(key)) {
      // The last patch met a newer object than the index held: decide on the workload as it is now.
      const fresh = await this.#deps.api.read(entry.kind, entry.namespace, entry.name);
      if (!fresh) {
        this.workloadRemoved(entry.kind, entry.namespace, entry.name);
        return undefined;
      }
      entry = this.index.upsert(entry.kind, fresh)?.entry ?? entry;
    }
    const now = this.#clock.now();
    const debounced = this.#debounceUntil.get(key);
    if (debounced !== undefined && debounced > now) return { requeueAfter: debounced - now };
    const plan = entry ? planRestart(entry, key, this.#secrets, this.#triggers.get(key)) : undefined;
    if (!entry || !plan) return this.#done(key);
    const decision = decideRestart(entry, plan, now);
    if (decision.action === 'skip') {
      this.#report.skipped(entry, plan.causes, decision.why);
      return this.#done(key);
    }
    if (decision.action === 'hold') {
      // Keep the restart owed: resuming the Deployment brings it.
      const owed = this.#triggers.get(key) ?? new Set<string>();
      for (const s of plan.causes) owed.add(`${s.namespace}/${s.name}`);
      this.#triggers.set(key, owed);
      this.#report.skipped(entry, plan.causes, decision.why);
      return undefined;
    }
    if (decision.action === 'wait') {
      if (this.#deferred.get(key) !== decision.until) {
        this.#deferred.set(key, decision.until);
        await this.#report.deferred(entry, key, plan.causes, decision, now);
      }
      return { requeueAfter: decision.until - now };
    }

    const outcome = await this.#deps.api.patch(
      {
        kind: entry.kind,
        namespace: entry.namespace,
        name: entry.name,
        resourceVersion: entry.resourceVersion,
      },
      { [PodTemplateAnnotation.certificateHash]: plan.hash },
    );
    if (!outcome.ok) {
      if (outcome.status === 'gone') {
        this.workloadRemoved(entry.kind, entry.namespace, entry.name);
        return undefined;
      }
      // The workload changed after the view the decision was made on: read it and decide again.
      this.#stale.add(key);
      return { requeueAfter: CONFLICT_RETRY_MS };
    }
    entry.hash = plan.hash;
    this.#done(key);
    this.#report.restarted(entry, key, plan, outcome.generation, decision.reason);
    return undefined;
  }

  #done(key: string): undefined {
    const owedFor = this.#triggers.get(key);
    this.#triggers.delete(key);
    this.#deferred.delete(key);
    this.#debounceUntil.delete(key);
    for (const secretKey of owedFor ?? []) {
      if (![...this.#triggers.values()].some((set) => set.has(secretKey))) this.#settle(secretKey);
    }
    return undefined;
  }

  /** A change made by hand: record on the Secret that its restarts are owed (the leader does). */
  async #recordOwed(secretKey: string, fingerprint: string): Promise<void> {
    if (this.#deps.isLeader?.() === false || this.#owed.get(secretKey) === fingerprint) return;
    const [namespace = '', name = ''] = secretKey.split('/');
    try {
      await this.#deps.api.setRestartOwed(namespace, name, fingerprint, true);
      this.#owed.set(secretKey, fingerprint);
    } catch (err) {
      this.#log.warn(
        { secret: secretKey, error: describeApiError(err) },
        'could not record the owed restart on the Secret',
      );
    }
  }

  /** No workload is owed a restart for this Secret any more: clear its record (the leader does). */
  #settle(secretKey: string): void {
    const fingerprint = this.#owed.get(secretKey);
    if (fingerprint === undefined || this.#deps.isLeader?.() === false) return;
    this.#owed.delete(secretKey);
    const [namespace = '', name = ''] = secretKey.split('/');
    this.#deps.api.setRestartOwed(namespace, name, fingerprint, false).catch((err: unknown) => {
      this.#log.warn(
        { secret: secretKey, error: describeApiError(err) },
        'could not clear the owed restart on the Secret; a restarted controller will check its workloads again',
      );
    });
  }
}
