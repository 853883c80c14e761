import { hostname } from 'node:os';
import type { Logger } from '../observability/logger.ts';
import { type CoreV1Api, describeApiError, httpStatus } from './client.ts';
import { PatchType } from './http/api.ts';

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string;
}

/** Same (object, reason, key) within this window is folded into one Event: its count goes up. */
const DEDUP_MS = 10 * 60_000;
const MAX_MESSAGE = 1024;

export interface RecordOptions {
  /**
   * What makes two Events "the same" besides object and reason (default: the message). A message
   * with a part that changes every time (an attempt number, a delay) passes the stable part here.
   */
  dedupKey?: string;
}

interface Recent {
  /** The Event object written for this key. */
  name: string;
  count: number;
  firstAt: number;
}

/**
 * Writes core/v1 Events. The same Event again within 10 minutes is folded into the one written
 * before (count + 1, the latest message and lastTimestamp), as Kubernetes' own recorder does.
 * Recording never throws and never blocks reconciliation for long: an Event that cannot be
 * written is logged, and the next one is tried afresh rather than suppressed.
 */
export class EventRecorder {
  private readonly core: CoreV1Api;
  private readonly log: Logger;
  private readonly recent = new Map<string, Recent>();
  private readonly instance = hostname();
  /** Told of every Event recorded, written or not (the status page's recent activity). */
  listener:
    | ((ref: ObjectRef, type: 'Normal' | 'Warning', reason: string, message: string, at: number) => void)
    | undefined;

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
    options: RecordOptions = {},
  ): Promise<void> {
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message;
    try {
      this.listener?.(ref, type, reason, text, now);
    } catch {
      // The status page's record is a convenience: it must never stop an Event being written.
    }
    const dedupKey = `${ref.kind}/${ref.namespace}/${ref.name}/${ref.uid ?? ''}|${reason}|${options.dedupKey ?? text}`;
    const ts = new Date(now);
    try {
      const last = this.recent.get(dedupKey);
      if (last !== undefined && now - last.firstAt < DEDUP_MS) {
        if (await this.fold(ref.namespace, last, text, ts)) return;
      }
      const created = await this.core.createNamespacedEvent({
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
      const name = created.metadata?.name;
      if (name) this.recent.set(dedupKey, { name, count: 1, firstAt: now });
      if (this.recent.size > 10_000) this.prune(now);
    } catch (err) {
      // Nothing is remembered for a write that failed: the next Event is written, not skipped.
      this.recent.delete(dedupKey);
      this.log.warn(
        { reason, object: `${ref.namespace}/${ref.name}`, error: describeApiError(err) },
        'could not record event',
      );
    }
  }

  /** Counts one more occurrence on the Event written before; false when that Event is gone. */
  private async fold(namespace: string, last: Recent, message: string, ts: Date): Promise<boolean> {
    try {
      await this.core.patchNamespacedEvent(
        {
          namespace,
          name: last.name,
          body: { count: last.count + 1, message, lastTimestamp: ts },
        },
        { contentType: PatchType.merge },
      );
    } catch (err) {
      if (httpStatus(err) === 404) return false;
      throw err;
    }
    last.count++;
    return true;
  }

  private prune(now: number): void {
    for (const [k, r] of this.recent) if (now - r.firstAt >= DEDUP_MS) this.recent.delete(k);
  }
}
