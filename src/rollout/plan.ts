import { Annotation } from '../names.ts';
import { type GateDecision, rolloutGate } from './gate.ts';
import { certificateHash } from './hash.ts';
import type { ManagedSecret, ManagedSecrets } from './managed-secrets.ts';
import type { WorkloadEntry } from './workload-index.ts';

/** The hash a workload's pod template should carry, and the Secrets whose change calls for it. */
export interface RestartPlan {
  hash: string;
  causes: ManagedSecret[];
}

/**
 * What the workload needs: nothing, or the hash to write and the Secrets that caused it.
 * `triggers`: Secrets whose live certificate change the workload has yet to roll out.
 */
export function planRestart(
  entry: WorkloadEntry,
  key: string,
  secrets: ManagedSecrets,
  triggers: ReadonlySet<string> | undefined,
): RestartPlan | undefined {
  const inputs = secrets.hashSecrets(entry, key);
  if (inputs.length === 0) return undefined;
  const hash = certificateHash(inputs);
  if (entry.hash === hash) return undefined;
  const live = [...(triggers ?? [])]
    .map((sk) => secrets.get(sk))
    .filter((s): s is ManagedSecret => s !== undefined && inputs.includes(s));
  // Never patched by cert-rotator and nothing changed while we watched: leave it alone.
  if (live.length === 0 && entry.hash === undefined) return undefined;
  return { hash, causes: live.length > 0 ? live : inputs };
}

/**
 * What to do about a planned restart now: `skip` (opted out), `hold` (paused: the restart stays
 * owed until resumed), `wait` for a maintenance window, or restart `now`.
 */
export type RestartDecision =
  | { action: 'skip'; why: string }
  | { action: 'hold'; why: string }
  | GateDecision;

/** Guards first (opted out, paused), then the maintenance windows of the Secrets that caused it. */
export function decideRestart(entry: WorkloadEntry, plan: RestartPlan, now: number): RestartDecision {
  if (entry.optedOut) return { action: 'skip', why: `annotated ${Annotation.restart}: "false"` };
  if (entry.paused) {
    return { action: 'hold', why: 'the Deployment is paused; it will be restarted when resumed' };
  }
  return rolloutGate(
    plan.causes.map((s) => ({ name: s.name, window: s.window, previous: s.previous })),
    now,
  );
}
