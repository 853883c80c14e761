/**
 * A CA Secret that cert-rotator itself renews (`is-ca: "true"`). When the Secret is the CA of a
 * `ca` issuer whose rollover is enabled, a renewal must not replace the CA that signs: the new CA
 * goes to a staged Secret (`NAME-next`) and `next-ca` on the CA Secret starts the rollover
 * (src/rollover/), which moves it into tls.crt once every workload trusts it. Pure: no I/O.
 */
import type * as k8s from '@kubernetes/client-node';
import type { Config, IssuerConfig } from '../config/schema.ts';
import { objectNameProblem } from '../config/syntax.ts';
import { caPairProblem } from '../issuers/ca.ts';
import { Annotation, CertState, SecretKey, StatusAnnotation, TLS_SECRET_TYPE } from '../names.ts';
import type { CertSummary } from '../pki/index.ts';
import { iso } from './secret-body.ts';

/** Suffix of the staged Secret's name (the name the chart's RBAC grants for a next CA). */
export const STAGED_SUFFIX = '-next';

/**
 * Where a renewal of this CA Secret stands:
 * - `in-place`: no `ca` issuer rolls it over; renewed like any Secret.
 * - `stage`: the CA of `issuer`; a renewal is written to `stagedName` and starts a rollover.
 * - `held`: a rollover of `issuer` is under way (`why`); not renewed until it is over.
 * - `landed`: the rollover this controller started is over; the Secret's status is recorded.
 */
export type ManagedCa =
  | { kind: 'in-place' }
  | { kind: 'stage'; issuer: string; stagedName: string }
  | { kind: 'held'; issuer: string; why: string }
  | { kind: 'landed'; issuer: string };

/** The `ca` issuers whose CA is this Secret. */
export function issuersBackedBy(
  config: Pick<Config, 'issuers'>,
  namespace: string,
  name: string,
): (IssuerConfig & { kind: 'ca' })[] {
  return config.issuers.filter(
    (i): i is IssuerConfig & { kind: 'ca' } =>
      i.kind === 'ca' && i.ca.secret.namespace === namespace && i.ca.secret.name === name,
  );
}

/** Why `issuer` may not issue a CA certificate into Secret namespace/name; undefined when it may. */
export function caIssuerProblem(issuer: IssuerConfig, namespace: string, name: string): string | undefined {
  if (issuer.kind !== 'selfSigned' && issuer.kind !== 'ca') {
    return `issuer "${issuer.name}" is a ${issuer.kind} issuer and cannot issue CA certificates (${Annotation.isCa}); use a selfSigned (root) or ca (intermediate) issuer with allowCA: true`;
  }
  if (issuer.allowCA !== true) {
    return `issuer "${issuer.name}" does not issue CA certificates: set allowCA: true on it in the config, or remove ${Annotation.isCa}`;
  }
  if (issuer.kind === 'ca' && issuer.ca.secret.namespace === namespace && issuer.ca.secret.name === name) {
    return `issuer "${issuer.name}" signs with this Secret's CA and cannot issue its successor; issue it from a selfSigned issuer (a root) or a parent ca issuer (an intermediate)`;
  }
  return undefined;
}

/**
 * A managed Secret that is the CA of a `ca` issuer but not annotated `is-ca` would be renewed
 * with a leaf, and the issuer could sign nothing more: refused.
 */
export function leafIntoCaProblem(
  config: Pick<Config, 'issuers'>,
  namespace: string,
  name: string,
): string | undefined {
  const backed = issuersBackedBy(config, namespace, name)[0];
  if (backed === undefined) return undefined;
  return `this Secret is the CA of issuer "${backed.name}": renewing it needs ${Annotation.isCa}: "true" (and an issuer with allowCA), or remove ${Annotation.enabled}`;
}

/** Where a renewal of a CA Secret (policy `is-ca`) stands; see ManagedCa. */
export function managedCa(
  config: Pick<Config, 'issuers'>,
  namespace: string,
  name: string,
  annotations: Record<string, string>,
): ManagedCa {
  const issuer = issuersBackedBy(config, namespace, name).find((i) => i.ca.rollover.enabled);
  if (issuer === undefined) return { kind: 'in-place' };
  const next = annotations[Annotation.nextCa];
  const phase = annotations[StatusAnnotation.caRolloverPhase];
  if (phase !== undefined) {
    return {
      kind: 'held',
      issuer: issuer.name,
      why: `the CA rollover of issuer "${issuer.name}" is in ${phase}`,
    };
  }
  if (next !== undefined && next !== '') {
    return {
      kind: 'held',
      issuer: issuer.name,
      why: `the next CA is staged in Secret ${next} for issuer "${issuer.name}"; its rollover has not begun`,
    };
  }
  if (annotations[StatusAnnotation.state] === CertState.issuing)
    return { kind: 'landed', issuer: issuer.name };
  return { kind: 'stage', issuer: issuer.name, stagedName: stagedNameOf(name) };
}

/** `NAME-next`; a name too long for that is refused when staging (stagedNameProblem). */
export function stagedNameOf(name: string): string {
  return `${name}${STAGED_SUFFIX}`;
}

/** Why the staged Secret's name cannot be used; undefined when it can. */
export function stagedNameProblem(name: string): string | undefined {
  const problem = objectNameProblem(name);
  return problem === undefined ? undefined : `cannot stage the renewed CA: ${problem}`;
}

/**
 * Why an existing Secret of the staged name may not be overwritten: only a Secret that this
 * controller staged for the same CA Secret may (a person's staged CA, or anything else, is left).
 */
export function stagedOwnerProblem(existing: k8s.V1Secret | undefined, caName: string): string | undefined {
  if (existing === undefined) return undefined;
  if (existing.metadata?.annotations?.[StatusAnnotation.stagedFor] === caName) return undefined;
  const where = `${existing.metadata?.namespace}/${existing.metadata?.name}`;
  return `Secret ${where} exists and was not staged by cert-rotator for ${caName}; the renewed CA is not written over it (delete it, or stage the next CA by hand with ${Annotation.nextCa})`;
}

/** The staged Secret's body: the new CA (chain, key, trust), marked as staged for `caName`. */
export function stagedSecret(
  namespace: string,
  name: string,
  caName: string,
  data: Record<string, string>,
  existing: k8s.V1Secret | undefined,
): k8s.V1Secret {
  const encoded: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) encoded[k] = Buffer.from(v).toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: TLS_SECRET_TYPE,
    metadata: {
      name,
      namespace,
      ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}),
      ...(existing?.metadata?.labels ? { labels: existing.metadata.labels } : {}),
      annotations: { ...(existing?.metadata?.annotations ?? {}), [StatusAnnotation.stagedFor]: caName },
    },
    data: encoded,
  };
}

/**
 * The CA Secret once its renewal is staged: `next-ca` names the staged Secret (the rollover's
 * input), `state: Issuing` says the new CA is on its way in; tls.crt and tls.key are untouched.
 */
export function caSecretStaged(
  fresh: k8s.V1Secret,
  stagedName: string,
  requestHandled: string | undefined,
): k8s.V1Secret {
  const annotations = { ...(fresh.metadata?.annotations ?? {}) };
  annotations[Annotation.nextCa] = stagedName;
  annotations[StatusAnnotation.state] = CertState.issuing;
  delete annotations[StatusAnnotation.lastError];
  delete annotations[StatusAnnotation.failures];
  delete annotations[StatusAnnotation.lastFailureTime];
  delete annotations[StatusAnnotation.nextAttemptTime];
  delete annotations[StatusAnnotation.renewalTime];
  if (requestHandled !== undefined) annotations[StatusAnnotation.renewRequestHandled] = requestHandled;
  return { ...fresh, metadata: { ...fresh.metadata, annotations, managedFields: undefined } };
}

/** The CA Secret after the rollover it started: the CA now in tls.crt is recorded as renewed. */
export function caSecretLanded(
  fresh: k8s.V1Secret,
  cert: Pick<CertSummary, 'notAfter'> | undefined,
  renewalTime: number | undefined,
  now: number,
): k8s.V1Secret {
  const annotations = { ...(fresh.metadata?.annotations ?? {}) };
  const revision = Number.parseInt(annotations[StatusAnnotation.revision] ?? '0', 10);
  annotations[StatusAnnotation.state] = CertState.ready;
  if (cert) annotations[StatusAnnotation.notAfter] = iso(cert.notAfter);
  else delete annotations[StatusAnnotation.notAfter];
  if (renewalTime !== undefined) annotations[StatusAnnotation.renewalTime] = iso(renewalTime);
  annotations[StatusAnnotation.lastRenewed] = iso(now);
  annotations[StatusAnnotation.revision] = String((Number.isFinite(revision) ? revision : 0) + 1);
  return { ...fresh, metadata: { ...fresh.metadata, annotations, managedFields: undefined } };
}

/** The data a CA renewal stages: chain, key, and the trust its issuer gave (ca.crt). */
export function stagedData(output: { data: Record<string, string> }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of [SecretKey.certificate, SecretKey.privateKey, SecretKey.caCertificate]) {
    const value = output.data[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * Why a renewed CA may not be written: it must be a CA that may sign now (the rules the active
 * and a staged CA are held to) with the path length asked for. Undefined when it may.
 */
export function issuedCaProblem(
  output: { data: Record<string, string>; summary: Pick<CertSummary, 'pathLen'> },
  requested: { pathLength?: number },
  now: number,
): string | undefined {
  const cert = output.data[SecretKey.certificate] ?? '';
  const key = output.data[SecretKey.privateKey] ?? '';
  const problem = caPairProblem(cert, key, now);
  if (problem !== undefined) return `the issued certificate is not a usable CA: ${problem.message}`;
  if (requested.pathLength !== undefined && output.summary.pathLen !== requested.pathLength) {
    return `the issued CA has path length ${output.summary.pathLen ?? 'none'}, not ${requested.pathLength} as asked`;
  }
  return undefined;
}
