import { hostname } from 'node:os';
import type { Logger } from '../observability/logger.ts';
import { type CoreV1Api, describeApiError } from './client.ts';

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string;
}

/** Same (object, reason, message) within this window is recorded once. */
const DEDUP_MS = 10 * 60_000;
const MAX_MESSAGE = 1024;

/**
 * Writes core/v1 Events. Recording never throws and never blocks reconciliation for long: an
 * Event that cannot be written is logged and dropped.
 */
export class EventRecorder {
  private readonly core: CoreV1Api;
  private readonly log: Logger;
  private readonly recent = new Map<string, number>();
  private readonly instance = hostname();

  constructor(core: CoreV1Api, log: Logger) {
    this.core = core;
    this.log = log;
  }

  async record(
    ref: ObjectRef,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    now = Date.now(),
  ): Promise<void> {
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message;
    const dedupKey = `${ref.kind}/${ref.namespace}/${ref.name}/${ref.uid ?? ''}|${reason}|${text}`;
    const last = this.recent.get(dedupKey);
    if (last !== undefined && now - last < DEDUP_MS) return;
    this.recent.set(dedupKey, now);
    if (this.recent.size > 10_000) this.prune(now);
    const ts = new Date(now);
    try {
      await this.core.createNamespacedEvent({
        namespace: ref.namespace,
        body: {
          metadata: { generateName: `${ref.name}.`, namespace: ref.namespace },
          involvedObject: {
            apiVersion: ref.apiVersion,
            kind: ref.kind,
            namespace: ref.namespace,
            name: ref.name,
            uid: ref.uid,
          },
          type,
          reason,
          message: text,
          source: { component: 'cert-rotator' },
          reportingComponent: 'cert-rotator.io/controller',
          reportingInstance: this.instance,
          firstTimestamp: ts,
          lastTimestamp: ts,
          count: 1,
        },
      });
    } catch (err) {
      this.log.warn(
        { reason, object: `${ref.namespace}/${ref.name}`, error: describeApiError(err) },
        'could not record event',
      );
    }
  }

  private prune(now: number): void {
    for (const [k, t] of this.recent) if (now - t >= DEDUP_MS) this.recent.delete(k);
  }
}
