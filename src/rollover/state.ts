/**
 * A CA rollover's state as the CA Secret records it (pure: no I/O). Everything a restarted or
 * newly elected controller needs to continue is on that Secret: the phase and when it began in
 * status annotations, the next or previous CA certificate (and the previous key) in its data.
 */
import { isoSeconds } from '../clock.ts';
import { Annotation, RolloverPhase, type RolloverPhaseValue, StatusAnnotation } from '../names.ts';

export const PHASES: readonly RolloverPhaseValue[] = [
  RolloverPhase.trust,
  RolloverPhase.propagate,
  RolloverPhase.reissue,
  RolloverPhase.retire,
];

export interface RolloverState {
  phase: RolloverPhaseValue | undefined;
  /** When the phase began (ms); undefined without a phase or with an unreadable time. */
  since: number | undefined;
  /** When the rollover began, as written: also the renew token of its Reissue. */
  started: string | undefined;
  /** Started because the CA was overwritten in place (no staged CA, no old key). */
  unsafe: boolean;
  /** Retire has taken the old CA out of the trust (its key is gone). */
  retired: boolean;
  paused: boolean;
  /** The Secret a person staged as the next CA (annotation `next-ca`). */
  next: string | undefined;
}

export function readState(annotations: Record<string, string> | undefined): RolloverState {
  const a = annotations ?? {};
  const raw = a[StatusAnnotation.caRolloverPhase];
  const phase = PHASES.find((p) => p === raw);
  const since = Date.parse(a[StatusAnnotation.caRolloverPhaseSince] ?? '');
  const next = a[Annotation.nextCa]?.trim();
  return {
    phase,
    since: phase !== undefined && Number.isFinite(since) ? since : undefined,
    started: a[StatusAnnotation.caRolloverStarted],
    retired: a[StatusAnnotation.caRolloverRetired] !== undefined,
    unsafe: a[StatusAnnotation.caRolloverUnsafe] !== undefined,
    paused: a[Annotation.rolloverPaused] === 'true',
    next: next === '' ? undefined : next,
  };
}

/** The metric's value: 0 none, then 1..4 in phase order. */
export function phaseNumber(phase: RolloverPhaseValue | undefined): number {
  return phase === undefined ? 0 : PHASES.indexOf(phase) + 1;
}

/** Annotations that move the CA Secret into `phase` (or out of any, with undefined). */
export function enterPhase(
  annotations: Record<string, string>,
  phase: RolloverPhaseValue | undefined,
  now: number,
): Record<string, string> {
  const out = { ...annotations };
  delete out[StatusAnnotation.caRolloverRetired];
  // Renewals are held only from Trust to Propagate of a rollover started by an overwrite.
  if (phase !== RolloverPhase.propagate) delete out[StatusAnnotation.caRolloverUnsafe];
  if (phase === undefined) {
    delete out[StatusAnnotation.caRolloverPhase];
    delete out[StatusAnnotation.caRolloverPhaseSince];
    delete out[StatusAnnotation.caRolloverStarted];
    return out;
  }
  out[StatusAnnotation.caRolloverPhase] = phase;
  out[StatusAnnotation.caRolloverPhaseSince] = isoSeconds(now);
  if (phase === RolloverPhase.trust) out[StatusAnnotation.caRolloverStarted] = isoSeconds(now);
  return out;
}
