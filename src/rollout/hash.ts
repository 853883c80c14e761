import { createHash } from 'node:crypto';

/** One managed Secret's contribution to a workload's certificate hash. */
export interface HashInput {
  /** Secret name (the workload's namespace is implied). */
  name: string;
  /** The leaf certificate's fingerprint as the controller reports it. */
  fingerprint: string;
}

/**
 * The value of the pod-template annotation: SHA-256 over the sorted `name=fingerprint` lines of
 * every managed Secret that restarts the workload, as 32 hex characters. It depends only on the
 * certificates, not on the order they were seen or the process that saw them, so a restarted
 * controller computes the same value and patches nothing.
 */
export function certificateHash(inputs: readonly HashInput[]): string {
  const lines = inputs.map((i) => `${i.name}=${i.fingerprint}`).sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 32);
}
