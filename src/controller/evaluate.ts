import { issuerKeyAlgorithmProblem } from '../config/acme.ts';
import { issuerAllows } from '../config/glob.ts';
import { type Config, findIssuer, type IssuerConfig } from '../config/schema.ts';
import { Annotation } from '../names.ts';
import type { Identity } from '../pki/index.ts';
import {
  computeRenewalTime,
  decideRenewal,
  type RenewalDecision,
  type RenewBefore,
} from '../policy/renewal.ts';
import { type AnnotationError, parseSecretPolicy, type SecretPolicy } from './annotations.ts';
import { caIssuerProblem, leafIntoCaProblem, type ManagedCa, managedCa } from './managed-ca.ts';
import type { SecretRecord } from './record.ts';
import { targetIdentity } from './renew.ts';

export type Evaluation =
  | { kind: 'unmanaged' }
  | { kind: 'invalid'; errors: AnnotationError[] }
  | { kind: 'not-allowed'; issuer: string; reason: string }
  | {
      kind: 'planned';
      policy: SecretPolicy;
      issuer: IssuerConfig;
      /** What the next certificate is for (annotations, else the current certificate). */
      identity: Identity;
      decision: RenewalDecision;
      renewalTime?: number;
      /** For a Secret annotated `is-ca`: where its renewal goes (in place, staged, held, landed). */
      managedCa?: ManagedCa;
    };

/** How often a CA Secret held by a rollover is looked at besides its watch events. */
const HELD_RECHECK_MS = 10 * 60_000;

/**
 * The renew-before that makes a CA's suggested renewal time (ACME ARI) the renewal time: the
 * suggestion wins over the Secret's renew-before, but never waits into the last 1/20 of the
 * lifetime. A suggestion at or before notBefore means "now".
 */
export function renewBeforeFromSuggestion(
  validity: { notBefore: number; notAfter: number },
  suggestedAt: number,
): RenewBefore {
  const lifetime = validity.notAfter - validity.notBefore;
  const latest = validity.notAfter - lifetime / 20;
  const at = Math.min(suggestedAt, latest);
  return { kind: 'duration', ms: Math.max(0, Math.min(validity.notAfter - at, lifetime - 1)) };
}

/**
 * What should happen to a Secret, from its record alone (no I/O): the pure heart of the
 * controller, run on every watch event and again before acting. `suggestedAt` is the issuer's
 * suggested renewal time for the current certificate (ARI), when one is known.
 */
export function evaluate(
  record: SecretRecord,
  config: Config,
  now: number,
  suggestedAt?: number,
): Evaluation {
  if (!record.managed) return { kind: 'unmanaged' };
  const parsed = parseSecretPolicy(record.annotations, config);
  if (!parsed.ok) return { kind: 'invalid', errors: parsed.errors };
  const policy = parsed.policy;
  const issuer = findIssuer(config, policy.issuer);
  if (!issuer) {
    // parseSecretPolicy already rejects unknown issuers; this guards a config without defaults.issuer.
    return {
      kind: 'invalid',
      errors: [{ annotation: 'cert-rotator.io/issuer', message: 'no issuer named or configured' }],
    };
  }
  const keyProblem = keyAlgorithmProblem(issuer, policy, record);
  if (keyProblem)
    return { kind: 'invalid', errors: [{ annotation: Annotation.keyAlgorithm, message: keyProblem }] };
  if (policy.ca === undefined) {
    const leafIntoCa = leafIntoCaProblem(config, record.namespace, record.name);
    if (leafIntoCa)
      return { kind: 'invalid', errors: [{ annotation: Annotation.isCa, message: leafIntoCa }] };
  } else {
    const refused = caIssuerProblem(issuer, record.namespace, record.name);
    if (refused) return { kind: 'not-allowed', issuer: issuer.name, reason: refused };
  }
  // The whole identity (CN, DNS, IP, URI) is checked, including what is copied from tls.crt.
  const identity = targetIdentity(policy, record.cert);
  const permission = issuerAllows(issuer, record.namespace, identity);
  if (!permission.allowed) return { kind: 'not-allowed', issuer: issuer.name, reason: permission.reason };
  const validity = record.cert ? { notBefore: record.cert.notBefore, notAfter: record.cert.notAfter } : null;
  const renewBefore =
    validity && validity.notAfter > validity.notBefore && suggestedAt !== undefined
      ? renewBeforeFromSuggestion(validity, suggestedAt)
      : policy.renewBefore;
  const ca = policy.ca ? managedCa(config, record.namespace, record.name, record.annotations) : undefined;
  const decision: RenewalDecision =
    ca?.kind === 'held'
      ? { action: 'wait', at: now + HELD_RECHECK_MS, reason: 'ca-rollover' }
      : ca?.kind === 'landed'
        ? { action: 'renew-now', at: now, reason: 'ca-rollover' }
        : policy.renewRequest !== undefined
          ? { action: 'renew-now', at: now, reason: 'requested' }
          : decideRenewal({ cert: validity, renewBefore, window: policy.window, now });
  const renewalTime =
    validity && validity.notAfter > validity.notBefore
      ? computeRenewalTime({ ...validity, renewBefore })
      : undefined;
  return {
    kind: 'planned',
    policy,
    issuer,
    identity,
    decision,
    ...(renewalTime !== undefined ? { renewalTime } : {}),
    ...(ca !== undefined ? { managedCa: ca } : {}),
  };
}

/** The key the next issuance would use, checked against what the issuer can issue for. */
function keyAlgorithmProblem(
  issuer: IssuerConfig,
  policy: SecretPolicy,
  record: SecretRecord,
): string | undefined {
  if (policy.keyAlgorithm) return issuerKeyAlgorithmProblem(issuer, policy.keyAlgorithm, 'annotation');
  const current = record.cert?.keyAlgorithm;
  if (current && current !== 'unknown') return issuerKeyAlgorithmProblem(issuer, current, 'current key');
  return issuerKeyAlgorithmProblem(issuer, policy.fallbackKeyAlgorithm, 'defaults.keyAlgorithm');
}
