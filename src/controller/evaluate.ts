import { issuerAllows } from '../config/glob.ts';
import { type Config, findIssuer, type IssuerConfig } from '../config/schema.ts';
import { computeRenewalTime, decideRenewal, type RenewalDecision } from '../pki/policy.ts';
import { type AnnotationError, parseSecretPolicy, type SecretPolicy } from './annotations.ts';
import type { SecretRecord } from './record.ts';

export type Evaluation =
  | { kind: 'unmanaged' }
  | { kind: 'invalid'; errors: AnnotationError[] }
  | { kind: 'not-allowed'; issuer: string; reason: string }
  | {
      kind: 'planned';
      policy: SecretPolicy;
      issuer: IssuerConfig;
      decision: RenewalDecision;
      renewalTime?: number;
    };

/**
 * What should happen to a Secret, from its record alone (no I/O): the pure heart of the
 * controller, run on every watch event and again before acting.
 */
export function evaluate(record: SecretRecord, config: Config, now: number): Evaluation {
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
  const dnsNames = policy.identityOverride.dnsNames ?? record.cert?.dnsNames ?? [];
  const permission = issuerAllows(issuer, record.namespace, dnsNames);
  if (!permission.allowed) return { kind: 'not-allowed', issuer: issuer.name, reason: permission.reason };
  const validity = record.cert ? { notBefore: record.cert.notBefore, notAfter: record.cert.notAfter } : null;
  const decision = decideRenewal({
    cert: validity,
    renewBefore: policy.renewBefore,
    window: policy.window,
    now,
  });
  const renewalTime =
    validity && validity.notAfter > validity.notBefore
      ? computeRenewalTime({ ...validity, renewBefore: policy.renewBefore })
      : undefined;
  return { kind: 'planned', policy, issuer, decision, ...(renewalTime !== undefined ? { renewalTime } : {}) };
}
