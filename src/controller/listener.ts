import type { Config } from '../config/schema.ts';
import { Annotation, StatusAnnotation } from '../names.ts';
import type { CertificateChange } from '../rollout/listener.ts';
import { type Evaluation, evaluate } from './evaluate.ts';
import type { SecretRecord } from './record.ts';

export type { CertificateChange, CertificateListener } from '../rollout/listener.ts';

export function fingerprintOf(cert: { serialHex: string; spkiSha256: string }): string {
  return `${cert.serialHex}:${cert.spkiSha256}`;
}

/**
 * What workloads are rolled to: the leaf's fingerprint, and — only when `ca.crt` differs from the
 * trust it was written with (`trust-baseline`) — the digest of `ca.crt`. A Secret whose `ca.crt`
 * is as written keeps exactly the fingerprint (and so the hash) earlier versions computed, so an
 * upgrade rolls nothing; a change of `ca.crt` alone changes it, so it rolls once.
 */
export function rolloutFingerprint(
  record: Pick<SecretRecord, 'annotations' | 'caDigest'>,
  leaf: string,
): string {
  const baseline = record.annotations[StatusAnnotation.trustBaseline];
  if (baseline === undefined || baseline === (record.caDigest ?? '')) return leaf;
  return `${leaf}/ca:${record.caDigest ?? 'none'}`;
}

const ROLLOUT_ANNOTATIONS = [
  Annotation.restart,
  Annotation.window,
  Annotation.windowDuration,
  Annotation.windowTimezone,
  Annotation.enabled,
];

/**
 * What to tell the listener about a Secret that was upserted, if anything: a managed Secret with
 * a valid policy whose certificate changed, or whose certificate stayed the same while what the
 * listener acts on changed (the Secret became managed or valid, or its restart/window
 * annotations changed) — then previousFingerprint equals fingerprint, so the listener knows the
 * certificate itself did not change.
 */
export function describeChange(
  previous: SecretRecord | undefined,
  record: SecretRecord,
  ev: Evaluation,
  config: Config,
  writtenByUs: string | undefined,
): CertificateChange | undefined {
  if (!record.managed || !record.cert || ev.kind !== 'planned') return undefined;
  const fingerprint = rolloutFingerprint(record, fingerprintOf(record.cert));
  const before = previous?.cert ? rolloutFingerprint(previous, fingerprintOf(previous.cert)) : undefined;
  if (before === fingerprint && previous && !rolloutPolicyChanged(previous, record, config)) return undefined;
  return {
    namespace: record.namespace,
    name: record.name,
    fingerprint,
    ...(before !== undefined ? { previousFingerprint: before } : {}),
    policy: ev.policy,
    notBefore: record.cert.notBefore,
    notAfter: record.cert.notAfter,
    byController: writtenByUs === fingerprint,
    ...(record.annotations[StatusAnnotation.restartOwed] === fingerprint ? { restartOwed: true } : {}),
  };
}

/** True when a Secret's change matters to rollouts although its certificate stayed the same. */
function rolloutPolicyChanged(previous: SecretRecord, record: SecretRecord, config: Config): boolean {
  if (ROLLOUT_ANNOTATIONS.some((a) => previous.annotations[a] !== record.annotations[a])) return true;
  // A Secret whose annotations were invalid before was never reported: report it now.
  return evaluate(previous, config, 0).kind !== 'planned';
}
