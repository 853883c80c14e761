/**
 * The loop of a source that issues (self-signed, local CA, CSR): issue, install, and issue again
 * at a jittered 70–90 % of the issued validity, so the sidecars of one Deployment do not all
 * renew at the same instant. Failures back off from 1 s to 5 min, never past the point where
 * the certificate on disk expires.
 */
import type { CertSummary } from '../pki/der.ts';
import { describeLeaf, type Material, type VerifiedMaterial } from './material.ts';
import { type SourceContext, sleep } from './source.ts';

/** notBefore + (0.7 … 0.9) × lifetime; `random` in [0, 1). */
export function jitteredRenewalTime(
  leaf: Pick<CertSummary, 'notBefore' | 'notAfter'>,
  random = Math.random(),
): number {
  const lifetime = leaf.notAfter - leaf.notBefore;
  return leaf.notBefore + Math.round(lifetime * (0.7 + 0.2 * Math.min(Math.max(random, 0), 1)));
}

export interface IssuingLoopOptions {
  /** Issue a fresh certificate (with a fresh key). */
  issue(signal: AbortSignal): Promise<Material>;
  /** Whether material already on disk (e.g. after a container restart) is one this source would keep. */
  keeps(current: VerifiedMaterial): boolean;
  random?: () => number;
}

export async function runIssuingLoop(ctx: SourceContext, opts: IssuingLoopOptions): Promise<void> {
  const random = opts.random ?? Math.random;
  let renewal: { serial: string; at: number } | undefined;
  let backoff = 1_000;
  while (!ctx.signal.aborted) {
    const cur = ctx.current();
    let due = ctx.now();
    if (cur !== undefined && opts.keeps(cur)) {
      if (renewal?.serial !== cur.leaf.serialHex) {
        renewal = { serial: cur.leaf.serialHex, at: jitteredRenewalTime(cur.leaf, random()) };
        ctx.log.info(
          { ...describeLeaf(cur.leaf), renewAt: new Date(renewal.at).toISOString() },
          'next renewal scheduled',
        );
      }
      due = renewal.at;
    }
    if (due > ctx.now()) {
      await sleep(due - ctx.now(), ctx.signal);
      continue; // re-check: time is up, or we were stopped
    }
    try {
      const m = await opts.issue(ctx.signal);
      if (ctx.signal.aborted) return;
      if (!(await ctx.offer(m, 'issued'))) throw new Error('the issued certificate did not verify');
      backoff = 1_000;
    } catch (err) {
      if (ctx.signal.aborted) return;
      const message = err instanceof Error ? err.message : String(err);
      ctx.problem(message);
      ctx.log.warn({ err, retryInMs: backoff }, 'could not issue a certificate; keeping the files on disk');
      await sleep(backoff, ctx.signal);
      backoff = Math.min(backoff * 2, 5 * 60_000);
    }
  }
}
