import type * as k8s from '@kubernetes/client-node';
import { type Clock, systemClock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';
import { type CoordinationV1Api, describeApiError, httpStatus } from './client.ts';

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

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    void this.tick();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (err) {
      this.o.log.warn({ lease: this.leaseName(), error: describeApiError(err) }, 'lease update failed');
    }
    const now = this.clock.now();
    if (ok) {
      this.lastRenew = now;
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

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.clock.now();
    let lease: k8s.V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ namespace: this.o.namespace, name: this.o.name });
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
      try {
        await this.api.createNamespacedLease({
          namespace: this.o.namespace,
          body: {
            metadata: { name: this.o.name, namespace: this.o.namespace },
            spec: this.spec(undefined, now),
          },
        });
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
      await this.api.replaceNamespacedLease({
        namespace: this.o.namespace,
        name: this.o.name,
        body: { ...lease, spec: this.spec(spec, now) },
      });
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
    try {
      const lease = await this.api.readNamespacedLease({ namespace: this.o.namespace, name: this.o.name });
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      const now = microTime(this.clock.now());
      await this.api.replaceNamespacedLease({
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
      });
      this.o.log.info({ lease: this.leaseName() }, 'lease released');
    } catch (err) {
      this.o.log.warn(
        { lease: this.leaseName(), error: describeApiError(err) },
        'could not release the lease',
      );
    }
  }
}
