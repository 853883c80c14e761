import type * as k8s from '@kubernetes/client-node';
import { type Clock, systemClock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';
import { type CoordinationV1Api, describeApiError, httpStatus } from './client.ts';
import type { CallOptions } from './http/api.ts';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  /** Unique per process: pod name plus a random suffix. */
  identity: string;
  /** How long a non-renewed lease stays valid for the others (client-go default 15 s). */
  leaseDurationMs: number;
  /** How long the leader keeps trying to renew before it gives up leadership (10 s). */
  renewDeadlineMs: number;
  /** Interval between attempts (2 s). */
  retryPeriodMs: number;
  log: Logger;
  clock?: Clock;
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

/** Per-call options that bind one API request to an AbortSignal (the light client's `signal`). */
function withSignal(signal: AbortSignal): CallOptions {
  return { signal };
}

/** Where a replica stands: `lapsed` = it led, but its last successful renew is too old to trust. */
export type LeaderState = 'candidate' | 'leading' | 'lapsed';

interface Observed {
  holder: string;
  renewTime: string;
  durationMs: number;
}

/** RFC 3339 with microseconds, the wire format of a Kubernetes MicroTime. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease with client-go's semantics: a candidate takes
 * the lease when it is absent, released, or not renewed for leaseDuration as observed on the
 * candidate's own clock (so clocks of different nodes need not agree); the leader renews every
 * retryPeriod and steps down when it could not renew for renewDeadline. `release()` hands the
 * lease over at once instead of making the successor wait for it to expire.
 *
 * One leader, always: every API call is aborted once the renew deadline passes (a renew that
 * hangs on a dead connection must not keep a leader leading), and `isLeader()` is computed at the
 * moment of asking from the start time of the last successful renew, so it turns false after
 * renewDeadline even while a call is still outstanding. Since renewDeadline < leaseDuration and
 * the others count leaseDuration from when they saw that renew, the old leader has stopped
 * claiming leadership before anyone else may take the lease.
 */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly o: LeaderElectionOptions;
  private readonly clock: Clock;
  private observed: Observed | undefined;
  private observedAt = 0;
  private leading = false;
  private lastRenew = 0;
  private timer: unknown;
  private stopped = false;

  constructor(api: CoordinationV1Api, options: LeaderElectionOptions) {
    this.api = api;
    this.o = options;
    this.clock = options.clock ?? systemClock;
  }

  /** True only while the last successful renew started less than renewDeadline ago. */
  isLeader(): boolean {
    return this.state() === 'leading';
  }

  state(): LeaderState {
    if (!this.leading) return 'candidate';
    return this.clock.now() - this.lastRenew < this.o.renewDeadlineMs ? 'leading' : 'lapsed';
  }

  start(): void {
    void this.tick();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => void this.tick(), ms);
  }

  /**
   * An AbortSignal that fires after `ms` on this elector's clock (so a test clock drives it too).
   * `dispose` clears the timer once the attempt is over.
   */
  private deadline(ms: number): { signal: AbortSignal; dispose(): void } {
    const ac = new AbortController();
    const t = this.clock.setTimeout(
      () => ac.abort(new Error(`lease call exceeded the renew deadline (${ms} ms)`)),
      Math.max(0, ms),
    );
    return { signal: ac.signal, dispose: () => this.clock.clearTimeout(t) };
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    // The time the renewTime we send is taken at: validity is counted from here, not from the
    // answer, so a slow answer never extends the leader's own view of its lease.
    const attemptStart = this.clock.now();
    // A leader's attempt may last only until its leadership would lapse; a candidate's, renewDeadline.
    const budget = this.leading
      ? Math.min(this.o.renewDeadlineMs, this.lastRenew + this.o.renewDeadlineMs - attemptStart)
      : this.o.renewDeadlineMs;
    const bound = this.deadline(budget);
    try {
      ok = await this.tryAcquireOrRenew(attemptStart, bound.signal);
    } catch (err) {
      const why = bound.signal.aborted ? `no answer within ${budget} ms` : describeApiError(err);
      this.o.log.warn({ lease: this.leaseName(), error: why }, 'lease update failed');
    } finally {
      bound.dispose();
    }
    // stop() ran while this attempt was in flight: it has released (or given up) the lease.
    if (this.stopped) return;
    const now = this.clock.now();
    // An answer that took longer than renewDeadline proves nothing about now: not a renew.
    if (ok && now - attemptStart >= this.o.renewDeadlineMs) ok = false;
    if (ok) {
      this.lastRenew = attemptStart;
      if (!this.leading) {
        this.leading = true;
        this.o.log.info({ lease: this.leaseName(), identity: this.o.identity }, 'became leader');
        this.o.onStartedLeading();
      }
      this.schedule(this.o.retryPeriodMs);
      return;
    }
    if (this.leading && now - this.lastRenew >= this.o.renewDeadlineMs) {
      this.leading = false;
      this.o.log.error(
        { lease: this.leaseName() },
        'could not renew the lease within the renew deadline; leadership lost',
      );
      this.o.onStoppedLeading();
      return;
    }
    // Candidates retry with jitter so they do not all hit the API at the same instant.
    this.schedule(this.leading ? this.o.retryPeriodMs / 2 : this.o.retryPeriodMs * (1 + Math.random() * 0.2));
  }

  private leaseName(): string {
    return `${this.o.namespace}/${this.o.name}`;
  }

  private spec(current: k8s.V1LeaseSpec | undefined, now: number): k8s.V1LeaseSpec {
    const ours = current?.holderIdentity === this.o.identity;
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
      // MicroTime travels as a string; the generated client passes unknown types through as is.
      acquireTime: (ours && current?.acquireTime ? current.acquireTime : microTime(now)) as unknown as Date,
      renewTime: microTime(now) as unknown as Date,
      leaseTransitions: (current?.leaseTransitions ?? 0) + (ours || !current?.holderIdentity ? 0 : 1),
    };
  }

  private async tryAcquireOrRenew(now: number, signal: AbortSignal): Promise<boolean> {
    const opts = withSignal(signal);
    let lease: k8s.V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ namespace: this.o.namespace, name: this.o.name }, opts);
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
      try {
        await this.api.createNamespacedLease(
          {
            namespace: this.o.namespace,
            body: {
              metadata: { name: this.o.name, namespace: this.o.namespace },
              spec: this.spec(undefined, now),
            },
          },
          opts,
        );
        return true;
      } catch (createErr) {
        if (httpStatus(createErr) === 409) return false; // another candidate created it first
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const record: Observed = {
      holder: spec.holderIdentity ?? '',
      renewTime: String(spec.renewTime ?? ''),
      durationMs: (spec.leaseDurationSeconds ?? 0) * 1000,
    };
    if (
      !this.observed ||
      this.observed.holder !== record.holder ||
      this.observed.renewTime !== record.renewTime ||
      this.observed.durationMs !== record.durationMs
    ) {
      this.observed = record;
      this.observedAt = now;
    }
    const heldByOther = record.holder !== '' && record.holder !== this.o.identity;
    if (heldByOther && this.observedAt + record.durationMs > now) return false;
    try {
      await this.api.replaceNamespacedLease(
        { namespace: this.o.namespace, name: this.o.name, body: { ...lease, spec: this.spec(spec, now) } },
        opts,
      );
    } catch (err) {
      if (httpStatus(err) === 409) return false;
      throw err;
    }
    return true;
  }

  /** Stops campaigning; if leading, releases the lease so a successor takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    // Shutdown must not hang on a dead API server either: the lease then simply expires.
    const bound = this.deadline(this.o.renewDeadlineMs);
    const opts = withSignal(bound.signal);
    try {
      const lease = await this.api.readNamespacedLease(
        { namespace: this.o.namespace, name: this.o.name },
        opts,
      );
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      const now = microTime(this.clock.now());
      await this.api.replaceNamespacedLease(
        {
          namespace: this.o.namespace,
          name: this.o.name,
          body: {
            ...lease,
            spec: {
              ...lease.spec,
              holderIdentity: '',
              leaseDurationSeconds: 1,
              renewTime: now as unknown as Date,
              acquireTime: now as unknown as Date,
            },
          },
        },
        opts,
      );
      this.o.log.info({ lease: this.leaseName() }, 'lease released');
    } catch (err) {
      this.o.log.warn(
        {
          lease: this.leaseName(),
          error: bound.signal.aborted ? 'no answer within the renew deadline' : describeApiError(err),
        },
        'could not release the lease',
      );
    } finally {
      bound.dispose();
    }
  }
}
