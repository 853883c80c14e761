import type { Identity } from '../pki/sign.ts';
import type { SidecarLogger } from './log.ts';
import type { Material, VerifiedMaterial } from './material.ts';

/** What a source may do: offer material (verified and installed by the sidecar), see what is on disk. */
export interface SourceContext {
  /**
   * Verifies `m` against the required identity and installs it unless it is what is already on
   * disk. Resolves true when the files hold it afterwards, false when it was refused (logged).
   */
  offer(m: Material, origin: string): Promise<boolean>;
  /** The verified material on disk now, if any. */
  current(): VerifiedMaterial | undefined;
  /** Records why the source cannot deliver right now (shown by --once on timeout and in /readyz). */
  problem(message: string): void;
  required: Identity;
  log: SidecarLogger;
  now(): number;
  signal: AbortSignal;
}

/** Where certificates come from: a Secret, the CSR API, or a local issuer. */
export interface Source {
  /** For logs: "secret ns/name", "self-signed", ... */
  readonly description: string;
  /** Delivers material through ctx until ctx.signal aborts; rejects only on a fatal error. */
  run(ctx: SourceContext): Promise<void>;
}

/** Resolves after `ms` or when `signal` aborts (never rejects). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    // Node caps timers at 2^31-1 ms; callers loop on the remaining time.
    const t = setTimeout(done, Math.min(Math.max(0, ms), 2 ** 31 - 1));
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
