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

  /** A CA Secret's renewal was staged for its issuer's CA rollover (tls.crt is unchanged). */
  async staged(
    record: SecretRecord,
    choice: IssuerChoice,
    target: { issuer: string; stagedName: string },
    output: RenewOutput,
    started: number,
  ): Promise<void> {
    const key = `${record.namespace}/${record.name}`;
    this.#metrics.renewals.inc({ issuer: choice.name, result: 'success' });
    this.#metrics.renewalDuration.observe({ issuer: choice.name }, (this.#clock.now() - started) / 1000);
    this.#log.info(
      {
        secret: key,
        issuer: choice.name,
        staged: target.stagedName,
        rolloverOf: target.issuer,
        serial: output.summary.serialHex,
        notAfter: iso(output.summary.notAfter),
      },
      'CA renewed into a staged Secret; the CA rollover takes it from here',
    );
    await this.#events.record(
      secretRef(record),
      'Normal',
      EventReason.renewed,
      `renewed by issuer "${choice.name}": the new CA (valid until ${iso(output.summary.notAfter)}) is staged in Secret ${target.stagedName}; the CA rollover of issuer "${target.issuer}" moves it into tls.crt once every workload trusts it (docs/ca-rollover.md)`,
      this.#clock.now(),
    );
  }

  /** The CA a renewal staged is now the active one (the rollover is over). */
  async caLanded(record: SecretRecord, issuer: string, notAfter: number, renewalTime: number | undefined) {
    const key = `${record.namespace}/${record.name}`;
    const next = renewalTime === undefined ? '' : `, next renewal ${iso(renewalTime)}`;
    this.#log.info({ secret: key, rolloverOf: issuer, notAfter: iso(notAfter) }, 'renewed CA is active');
    await this.#events.record(
      secretRef(record),
      'Normal',
      EventReason.renewed,
      `the renewed CA is active: the CA rollover of issuer "${issuer}" is over; valid until ${iso(notAfter)}${next}`,
      this.#clock.now(),
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
