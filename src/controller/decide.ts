/**
 * What should happen to this Secret now? From its record (as just read), the config, the issuers'
 * suggestions and the retry state: nothing, a problem to report, wait until a time, or renew with
 * a given issuer. No I/O.
 */
import type { Config } from '../config/schema.ts';
import type { Issuer } from '../issuers/types.ts';
import { EventReason, type EventReasonValue, SecretKey } from '../names.ts';
import { type Evaluation, evaluate } from './evaluate.ts';
import { chooseIssuer, type IssuerChoice } from './fallback.ts';
import type { Current } from './read.ts';
import type { SecretRecord } from './record.ts';
import { RenewFailure, type RenewInput } from './renew.ts';
import type { RetryStates } from './retry.ts';
import { decodeData, recordedOrders } from './secret-body.ts';
import type { SuggestedRenewals } from './suggestions.ts';

export interface DecideContext {
  config: Config;
  issuers: Map<string, Issuer>;
  /** Issuers named in the config that this build cannot run, with the reason. */
  unsupportedIssuers?: Map<string, string> | undefined;
  suggestions: SuggestedRenewals;
  retry: RetryStates;
  /** key → "resourceVersion|kind" of the last problem reported. */
  reported: Map<string, string>;
}

export type Planned = Extract<Evaluation, { kind: 'planned' }>;

export type Step =
  | { kind: 'nothing' }
  /** Needs a person; reported once per resourceVersion (`marker`). */
  | { kind: 'problem'; reason: EventReasonValue; marker: string; message: string }
  /** Not now: look again at `at` (undefined: only when the Secret changes). */
  | { kind: 'wait'; at: number | undefined }
  /** The chosen issuer is not available in this build or config: a failed attempt. */
  | { kind: 'fail'; issuer: string; failure: RenewFailure; ev: Planned }
  | { kind: 'renew'; ev: Planned; choice: IssuerChoice; input: RenewInput }
  /** A CA Secret's renewal went through a CA rollover that is now over: record the CA in tls.crt. */
  | { kind: 'ca-landed'; ev: Planned };

/** evaluate(), with the issuer's suggested renewal time (ACME ARI) once it is known. */
export function evaluateNow(
  ctx: Pick<DecideContext, 'config' | 'issuers' | 'suggestions'>,
  key: string,
  record: SecretRecord,
  now: number,
): Evaluation {
  const ev = evaluate(record, ctx.config, now);
  if (ev.kind !== 'planned') {
    ctx.suggestions.forget(key);
    return ev;
  }
  const at = ctx.suggestions.lookup(key, record, ctx.issuers.get(ev.issuer.name));
  return at === undefined ? ev : evaluate(record, ctx.config, now, at);
}

/**
 * When to look at the Secret next, from its evaluation: now, a time, or never (undefined: until
 * it changes). A renewal waits for the retry state; a suggestion lookup may call for a look sooner.
 */
export function nextLook(
  ev: Evaluation,
  problemReported: boolean,
  notBefore: number,
  refreshAt: number | undefined,
  now: number,
): number | undefined {
  switch (ev.kind) {
    case 'unmanaged':
      return undefined;
    case 'invalid':
    case 'not-allowed':
      return problemReported ? undefined : now;
    case 'planned': {
      const at = Math.max(ev.decision.action === 'renew-now' ? now : ev.decision.at, notBefore);
      return refreshAt !== undefined && refreshAt < at ? refreshAt : at;
    }
  }
}

/** The step for a Secret as it was just read. */
export function decide(ctx: DecideContext, key: string, current: Current, now: number): Step {
  const record = current.record;
  const ev = evaluateNow(ctx, key, record, now);
  if (ev.kind === 'unmanaged') return { kind: 'nothing' };
  if (ev.kind === 'invalid') {
    return problem(ctx, key, record, 'invalid', EventReason.invalidAnnotation, invalidMessage(ev));
  }
  if (ev.kind === 'not-allowed') {
    const message = `${ev.reason}; Secret left untouched`;
    return problem(ctx, key, record, 'not-allowed', EventReason.issuerNotAllowed, message);
  }
  if (ev.managedCa?.kind === 'landed') return { kind: 'ca-landed', ev };
  if (ev.decision.action === 'wait' || !ctx.retry.renewalAllowed(key, now)) {
    return { kind: 'wait', at: nextLook(ev, false, ctx.retry.notBefore(key), undefined, now) };
  }
  // After `fallbackAfter` consecutive failures the issuer's `fallback` issues for this Secret.
  const choice = chooseIssuer(ev.issuer, ctx.retry.failures(key), ctx.config, record.namespace, ev.identity);
  const issuer = ctx.issuers.get(choice.name);
  if (!issuer) {
    const why = ctx.unsupportedIssuers?.get(choice.name) ?? `issuer "${choice.name}" is not available`;
    return { kind: 'fail', issuer: choice.name, failure: new RenewFailure('ISSUER_FAILED', why), ev };
  }
  return {
    kind: 'renew',
    ev,
    choice,
    input: {
      namespace: record.namespace,
      name: record.name,
      currentKeyPem: decodeData(current.secret.data?.[SecretKey.privateKey]),
      currentCert: record.cert,
      ...(record.certProblem !== undefined ? { certProblem: record.certProblem } : {}),
      policy: ev.policy,
      issuer,
      now,
      recentOrders: recordedOrders(record.annotations, now),
    },
  };
}

function problem(
  ctx: DecideContext,
  key: string,
  record: SecretRecord,
  kind: string,
  reason: EventReasonValue,
  message: string,
): Step {
  const marker = `${record.resourceVersion}|${kind}`;
  if (ctx.reported.get(key) === marker) return { kind: 'wait', at: undefined };
  return { kind: 'problem', reason, marker, message };
}

function invalidMessage(ev: Extract<Evaluation, { kind: 'invalid' }>): string {
  return `invalid annotations, Secret left untouched: ${ev.errors.map((e) => `${e.annotation}: ${e.message}`).join('; ')}`;
}
