import type { AcmeSolverConfig } from '../../config/schema.ts';

/**
 * The solver for one identifier, cert-manager's way: a solver whose `dnsNames` lists the name
 * beats one whose `dnsZones` contains it (the longest zone wins), which beats one without a
 * selector; the first of equals wins. A solver with a selector that does not match is never
 * used. Wildcard names can only be validated by DNS-01.
 */
export function chooseSolver(
  solvers: readonly AcmeSolverConfig[],
  name: string,
  wildcard: boolean,
): AcmeSolverConfig | undefined {
  const bare = name.toLowerCase().replace(/^\*\./, '');
  const full = wildcard ? `*.${bare}` : bare;
  let best: AcmeSolverConfig | undefined;
  let bestScore = -1;
  for (const solver of solvers) {
    if (wildcard && solver.kind !== 'dns01') continue;
    const score = matchScore(solver, bare, full);
    if (score > bestScore) {
      best = solver;
      bestScore = score;
    }
  }
  return best;
}

function matchScore(solver: AcmeSolverConfig, bare: string, full: string): number {
  const sel = solver.selector;
  if (!sel || (!sel.dnsNames?.length && !sel.dnsZones?.length)) return 0;
  if (sel.dnsNames?.some((n) => n === full || n === bare)) return 10_000;
  let best = -1;
  for (const zone of sel.dnsZones ?? []) {
    if (bare === zone || bare.endsWith(`.${zone}`)) best = Math.max(best, 1 + zone.split('.').length);
  }
  return best;
}
