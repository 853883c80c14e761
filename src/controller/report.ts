/**
 * What does the world learn of an outcome? The Event on the Secret, the metrics and the log line
 * of a renewal, a failed attempt, or a problem that needs a person. Every message the reconciler
 * writes is worded here.
 */
import type { Clock } from '../clock.ts';
import { EventReason, type EventReasonValue } from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Planned } from './decide.ts';
import type { IssuerChoice } from './fallback.ts';
import type { EventSink, ObjectRef } from './ports.ts';
import type { SecretRecord } from './record.ts';
import type { RenewFailure, RenewOutput } from './renew.ts';
import { iso } from './secret-body.ts';

export function secretRef(r: { namespace: string; name: string; uid?: string }): ObjectRef {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    namespace: r.namespace,
    name: r.name,
    ...(r.uid ? { uid: r.uid } : {}),
  };
}

function why(ev: Planned, record: SecretRecord): string {
  switch (ev.decision.reason) {
    case 'requested':
      return 'renewal requested';
    case 'unparseable':
      return `unparseable: ${record.certProblem ?? 'no usable certificate'}`;
    default:
      return ev.decision.reason;
  }
}

export class Reporter {
  readonly #events: EventSink;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #clock: Clock;

  constructor(deps: { events: EventSink; log: Logger; metrics: Metrics; clock: Clock }) {
    this.#events = deps.events;
    this.#log = deps.log;
    this.#metrics = deps.metrics;
    this.#clock = deps.clock;
  }

  async renewed(
    record: SecretRecord,
    ev: Planned,
    choice: IssuerChoice,
    output: RenewOutput,
    timing: { started: number; renewalTime: number },
  ): Promise<void> {
    const key = `${record.namespace}/${record.name}`;
    const seconds = (this.#clock.now() - timing.started) / 1000;
    this.#metrics.renewals.inc({ issuer: choice.name, result: 'success' });
    this.#metrics.renewalDuration.observe({ issuer: choice.name }, seconds);
    this.#log.info(
      {
        secret: key,
        issuer: choice.name,
        serial: output.summary.serialHex,
        notAfter: iso(output.summary.notAfter),
        renewalTime: iso(timing.renewalTime),
        keyRotated: output.keyRotated,
        reason: ev.decision.reason,
        fallbackFrom: choice.fallbackFrom,
        seconds,
      },
      'certificate renewed',
    );
    const viaFallback = choice.fallbackFrom
      ? ` as fallback for issuer "${choice.fallbackFrom}" after ${choice.failures} consecutive failures`
      : '';
    await this.#events.record(
      secretRef(record),
      'Normal',
      EventReason.renewed,
      `renewed by issuer "${choice.name}"${viaFallback} (${why(ev, record)}); new certificate valid until ${iso(output.summary.notAfter)}, next renewal ${iso(timing.renewalTime)}`,
      this.#clock.now(),
    );
  }

  async failed(
    record: SecretRecord,
    issuer: string,
    failure: RenewFailure,
    retry: { failures: number; delayMs: number },
  ): Promise<void> {
    const key = `${record.namespace}/${record.name}`;
    this.#metrics.renewals.inc({ issuer, result: 'failure' });
    this.#log.warn(
      { secret: key, issuer, code: failure.code, failures: retry.failures, retryInMs: retry.delayMs },
      failure.message,
    );
    // The attempt number and the delay change every time: the same failure again is one Event
    // whose count goes up, not a new Event per attempt.
    await this.#events.record(
      secretRef(record),
      'Warning',
      EventReason.renewalFailed,
      `${failure.message} (attempt ${retry.failures}; next attempt in ${Math.round(retry.delayMs / 1000)}s)`,
      this.#clock.now(),
      { dedupKey: failure.message },
    );
  }

  /** A problem that needs a person (bad annotation, refused issuer). */
  async problem(record: SecretRecord, reason: EventReasonValue, message: string): Promise<void> {
    const key = `${record.namespace}/${record.name}`;
    this.#metrics.secretErrors.inc({ reason });
    this.#log.warn({ secret: key, reason }, message);
    await this.#events.record(secretRef(record), 'Warning', reason, message, this.#clock.now());
  }
}
