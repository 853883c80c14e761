import type { Clock } from '../clock.ts';
import type { ObjectRef } from '../kube/events.ts';

export type RecordEvent = (
  ref: ObjectRef,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
  now?: number,
) => Promise<void>;

const MAX_LISTED = 20;

interface Batch {
  ref: ObjectRef;
  type: 'Normal' | 'Warning';
  reason: string;
  summary: string;
  workloads: string[];
}

/**
 * One Event on a Secret for many workloads: a Secret used by 200 Deployments gets one
 * "RolloutTriggered … (200 workloads): deployment/a, …" instead of 200 Events. Items with the
 * same Secret, reason and summary that arrive within `delayMs` of the first are merged.
 */
export class SecretEventBatcher {
  readonly #record: RecordEvent;
  readonly #clock: Clock;
  readonly #delayMs: number;
  readonly #batches = new Map<string, Batch>();
  #timer: unknown;

  constructor(record: RecordEvent, clock: Clock, delayMs = 1_000) {
    this.#record = record;
    this.#clock = clock;
    this.#delayMs = delayMs;
  }

  add(
    secret: { namespace: string; name: string },
    type: 'Normal' | 'Warning',
    reason: string,
    summary: string,
    workload?: string,
  ): void {
    const key = `${secret.namespace}/${secret.name}|${type}|${reason}|${summary}`;
    let batch = this.#batches.get(key);
    if (!batch) {
      batch = {
        ref: { apiVersion: 'v1', kind: 'Secret', namespace: secret.namespace, name: secret.name },
        type,
        reason,
        summary,
        workloads: [],
      };
      this.#batches.set(key, batch);
    }
    if (workload !== undefined && !batch.workloads.includes(workload)) batch.workloads.push(workload);
    if (this.#timer === undefined) {
      this.#timer = this.#clock.setTimeout(() => {
        this.#timer = undefined;
        void this.flush();
      }, this.#delayMs);
    }
  }

  /** Writes every pending Event now. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const batches = [...this.#batches.values()];
    this.#batches.clear();
    await Promise.all(
      batches.map((b) => this.#record(b.ref, b.type, b.reason, messageOf(b), this.#clock.now())),
    );
  }
}

function messageOf(b: Batch): string {
  const n = b.workloads.length;
  if (n === 0) return b.summary;
  const listed = b.workloads.slice(0, MAX_LISTED).join(', ');
  const more = n > MAX_LISTED ? ` and ${n - MAX_LISTED} more` : '';
  return `${b.summary} (${n} workload${n === 1 ? '' : 's'}): ${listed}${more}`;
}
