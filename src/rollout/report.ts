import type { Clock } from '../clock.ts';
import { isoSeconds as iso } from '../clock.ts';
import type { ObjectRef } from '../kube/events.ts';
import {
  Annotation,
  EventReason,
  PodTemplateAnnotation,
  type RestartKind,
  RolloutResult,
  type RolloutResultValue,
  WORKLOAD_KINDS,
} from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import type { ManagedSecret } from './managed-secrets.ts';
import type { RestartPlan } from './plan.ts';
import { type RecordEvent, SecretEventBatcher } from './secret-events.ts';
import { type WorkloadEntry, workloadKey } from './workload-index.ts';

/** What the reporter needs of the manager's dependencies. */
export interface RolloutReporterDeps {
  record: RecordEvent;
  log: Logger;
  metrics: { rollouts: { inc(labels: { kind: string; result: string }): void } };
}

type SecretName = { namespace: string; name: string };

/**
 * What the rollout side tells the world: the rollouts metric, log lines, Events on workloads and
 * (merged) Events on Secrets. Every message a rollout writes is worded here.
 */
export class RolloutReporter {
  readonly #deps: RolloutReporterDeps;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #secretEvents: SecretEventBatcher;

  constructor(deps: RolloutReporterDeps, clock: Clock, secretEventDelayMs?: number) {
    this.#deps = deps;
    this.#clock = clock;
    this.#log = deps.log;
    this.#secretEvents = new SecretEventBatcher(deps.record, clock, secretEventDelayMs);
  }

  /** Writes every pending Secret Event now. */
  flush(): Promise<void> {
    return this.#secretEvents.flush();
  }

  count(kind: RestartKind, result: RolloutResultValue): void {
    this.#deps.metrics.rollouts.inc({ kind, result });
  }

  /** The Secret says `restart: none`: a workload using it is not restarted. */
  restartDisabled(secret: SecretName, wk: string): void {
    this.count(kindOf(wk), RolloutResult.skipped);
    this.#secretEvents.add(
      secret,
      'Normal',
      EventReason.rolloutSkipped,
      `certificate changed; ${Annotation.restart} is "none", so workloads using the Secret were not restarted`,
      describe(wk),
    );
  }

  /** A workload named in the Secret's `restart` list does not exist in its namespace. */
  targetNotFound(secret: SecretName, target: { kind: RestartKind; name: string }): void {
    this.count(target.kind, RolloutResult.skipped);
    this.#secretEvents.add(
      secret,
      'Warning',
      EventReason.rolloutSkipped,
      `named in ${Annotation.restart} but not found in namespace ${secret.namespace} (only workloads in the Secret's own namespace are restarted)`,
      `${target.kind}/${target.name}`,
    );
  }

  /** A certificate replaced by hand does not work: none of its workloads is restarted. */
  unusable(secretKey: string, secret: SecretName, targets: readonly string[], problem: string): void {
    for (const wk of targets) this.count(kindOf(wk), RolloutResult.skipped);
    this.#log.warn({ secret: secretKey, problem }, 'certificate changed but unusable; not restarting');
    this.#secretEvents.add(
      secret,
      'Warning',
      EventReason.rolloutSkipped,
      `certificate changed but ${problem}; workloads not restarted`,
    );
  }

  /** The workload is not restarted for this change (opted out, or paused). */
  skipped(entry: WorkloadEntry, causes: ManagedSecret[], why: string): void {
    const { what } = changeOf(causes);
    const key = workloadKey(entry.kind, entry.namespace, entry.name);
    this.count(entry.kind, RolloutResult.skipped);
    this.#log.info({ workload: key, secrets: causes.map((s) => s.name) }, `not restarted: ${why}`);
    void this.#deps.record(
      refOf(entry),
      'Normal',
      EventReason.rolloutSkipped,
      `${what}; not restarted: ${why}`,
      this.#clock.now(),
    );
    for (const s of causes) {
      this.#secretEvents.add(s, 'Normal', EventReason.rolloutSkipped, `not restarted: ${why}`, describe(key));
    }
  }

  /** The restart waits for the maintenance window of `gate.secret`, until `gate.until`. */
  async deferred(
    entry: WorkloadEntry,
    key: string,
    causes: ManagedSecret[],
    gate: { until: number; secret: string },
    now: number,
  ): Promise<void> {
    const { secretNames, what } = changeOf(causes);
    this.count(entry.kind, RolloutResult.deferred);
    const why = `outside the maintenance window of Secret ${gate.secret}; restart deferred to ${iso(gate.until)}`;
    this.#log.info({ workload: key, secrets: secretNames, until: iso(gate.until) }, why);
    await this.#deps.record(refOf(entry), 'Normal', EventReason.rolloutSkipped, `${what}; ${why}`, now);
    for (const s of causes) {
      this.#secretEvents.add(s, 'Normal', EventReason.rolloutSkipped, why, describe(key));
    }
  }

  /** The workload's pod template now carries `plan.hash`. */
  restarted(
    entry: WorkloadEntry,
    key: string,
    plan: RestartPlan,
    generation: number,
    gateReason: 'no-window' | 'inside-window' | 'emergency',
  ): void {
    const { secretNames, what } = changeOf(plan.causes);
    this.count(entry.kind, RolloutResult.success);
    const reason = gateReason === 'emergency' ? 'emergency (outside the window)' : gateReason;
    this.#log.info(
      {
        workload: key,
        secrets: secretNames,
        hash: plan.hash,
        generation,
        window: reason,
      },
      'workload restarted',
    );
    const message = `${what}; pod template annotated ${PodTemplateAnnotation.certificateHash}=${plan.hash}`;
    // Not awaited: the recorder never throws, and the next patch should not wait for an Event.
    void this.#deps.record(refOf(entry), 'Normal', EventReason.rolloutTriggered, message, this.#clock.now());
    for (const s of plan.causes) {
      this.#secretEvents.add(
        s,
        'Normal',
        EventReason.rolloutTriggered,
        'certificate changed; restarted',
        describe(key),
      );
    }
  }
}

/** The sorted names of the Secrets behind a restart, and the phrase that says what changed. */
function changeOf(causes: ManagedSecret[]): { secretNames: string[]; what: string } {
  const secretNames = causes.map((s) => s.name).sort();
  return { secretNames, what: `certificate of Secret ${secretNames.join(', ')} changed` };
}

export function kindOf(key: string): RestartKind {
  return key.slice(0, key.indexOf('/')) as RestartKind;
}

/** "deployment/web" from "deployment/ns/web". */
function describe(key: string): string {
  const first = key.indexOf('/');
  const second = key.indexOf('/', first + 1);
  return `${key.slice(0, first)}/${key.slice(second + 1)}`;
}

function refOf(entry: WorkloadEntry): ObjectRef {
  return {
    apiVersion: 'apps/v1',
    kind: WORKLOAD_KINDS[entry.kind],
    namespace: entry.namespace,
    name: entry.name,
    ...(entry.uid ? { uid: entry.uid } : {}),
  };
}
