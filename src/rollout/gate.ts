import { emergencyPoint, type Validity, type Window, windowDecision } from '../policy/renewal.ts';

/** What the window gate needs of one Secret whose change a workload is waiting to roll out. */
export interface GateInput {
  /** Secret name, for messages. */
  name: string;
  window?: Window | undefined;
  /** Validity of the certificate the pods run with now (the one replaced), when known. */
  previous?: Validity | undefined;
}

export type GateDecision =
  | { action: 'now'; reason: 'no-window' | 'inside-window' | 'emergency' }
  | { action: 'wait'; until: number; secret: string };

/**
 * May a restart happen now? Each Secret with a maintenance window must be inside it, unless the
 * certificate the pods still hold is past its emergency point (1/10 of its lifetime or 24 h
 * before notAfter, whichever is smaller — the same rule that lets a renewal skip the window).
 * Otherwise: wait for the soonest window start, never beyond an emergency point.
 */
export function rolloutGate(secrets: readonly GateInput[], now: number): GateDecision {
  const windowed = secrets.filter((s) => s.window !== undefined);
  if (windowed.length === 0) return { action: 'now', reason: 'no-window' };
  if (windowed.some((s) => s.previous !== undefined && now >= emergencyPoint(s.previous))) {
    return { action: 'now', reason: 'emergency' };
  }
  let wait: { until: number; secret: string } | undefined;
  for (const s of windowed) {
    const state = windowDecision(s.window as Window, now);
    if (state.inside) continue;
    const emergency = s.previous ? emergencyPoint(s.previous) : Number.POSITIVE_INFINITY;
    // A window that never opens again must not hold the restart forever.
    const until = Math.min(state.nextStart ?? now, emergency);
    if (until <= now) continue;
    if (!wait || until < wait.until) wait = { until, secret: s.name };
  }
  return wait ? { action: 'wait', ...wait } : { action: 'now', reason: 'inside-window' };
}
