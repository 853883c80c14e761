import type * as k8s from '@kubernetes/client-node';
import type { Config, IssuerConfig } from '../config/schema.ts';
import { evaluate } from '../controller/evaluate.ts';
import { recordFromSecret } from '../controller/record.ts';
import { Annotation, SecretKey, StatusAnnotation } from '../names.ts';
import { type CertSummary, certificatesFromPem, isPkiError, keyMatchesCertificate } from '../pki/index.ts';

/**
 * What `scan` reports of one certificate (or of one thing that should have been one): a Secret's
 * leaf, a PEM block of a file, a kubeconfig's embedded certificate. The JSON output is exactly
 * these fields.
 */
export interface ScanRow {
  kind:
    | 'Secret'
    | 'File'
    | 'ConfigMap'
    | 'ValidatingWebhookConfiguration'
    | 'MutatingWebhookConfiguration'
    | 'APIService'
    | 'CustomResourceDefinition';
  /** Secret: its namespace; File: null. */
  namespace: string | null;
  /** Secret: its name; File: the path, with `#N` for the Nth certificate of a bundle. */
  name: string;
  /**
   * File rows: what in the file this is (`certificate`, `kubeconfig user admin: client certificate`);
   * rows of the monitoring sources: the source, key and position (`keystore keystore.p12 2 of 3`).
   */
  source: string | null;
  /** Opted in with `cert-rotator.io/enabled: "true"`. */
  managed: boolean;
  /** Secret: the cert-rotator issuer that renews it; File: the certificate's issuer CN. */
  issuer: string | null;
  serial: string | null;
  commonName: string | null;
  dnsNames: string[];
  notBefore: string | null;
  notAfter: string | null;
  /** Seconds until notAfter (negative once expired). */
  timeLeftSeconds: number | null;
  /** When the renewal is due by policy (notAfter − renew-before), for a managed Secret. */
  renewalTime: string | null;
  /** When the controller would act: an RFC 3339 time, "now", or null (nothing renews it). */
  plannedRenewal: string | null;
  /** valid, due (renewal due now), window-wait, expired, or invalid (no readable certificate). */
  state: 'valid' | 'due' | 'window-wait' | 'expired' | 'invalid';
  /** The controller's `cert-rotator.io/state` annotation (Ready, Issuing, Failed), if any. */
  controllerState: string | null;
  /** Every problem found: unparseable, key mismatch, bad annotation, issuer not allowed, expired. */
  problems: string[];
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * What is wrong with a certificate that is still readable for its expiry: each part not
 * acceptable to act on (its names are not shown), and a flagged serial (reported only: never a
 * reason to renew).
 */
export function certificateProblems(cert: CertSummary | null): string[] {
  if (!cert) return [];
  const out = cert.problems.map(
    (p) => `certificate ${p.field} is not acceptable to act on (${p.reason}); names from it are not used`,
  );
  if (cert.serialFlag === 'negative')
    out.push('serial number is negative (RFC 5280 requires a positive one)');
  if (cert.serialFlag === 'non-minimal') out.push('serial number is not minimally encoded');
  return out;
}

/** The certificate fields of a row, from the leaf's summary. */
export function certFields(
  cert: CertSummary | null,
  now: number,
): Pick<ScanRow, 'serial' | 'commonName' | 'dnsNames' | 'notBefore' | 'notAfter' | 'timeLeftSeconds'> {
  return {
    serial: cert?.serialHex ?? null,
    commonName: cert?.subjectCommonName ?? null,
    dnsNames: cert?.dnsNames ?? [],
    notBefore: cert ? iso(cert.notBefore) : null,
    notAfter: cert ? iso(cert.notAfter) : null,
    timeLeftSeconds: cert ? Math.floor((cert.notAfter - now) / 1000) : null,
  };
}

/**
 * A stand-in issuer for a Secret when no `--config` was given: any issuer name it carries is
 * taken to exist, so only the Secret's own annotations are judged (issuer problems need the config).
 */
function assumedIssuer(name: string): IssuerConfig {
  return { name, kind: 'selfSigned', allowedNamespaces: ['*'] };
}

const ASSUMED_DEFAULT_ISSUER = '(default)';

/** The config to judge one Secret with: the user's, or the built-in defaults with its issuer assumed. */
function configFor(secret: k8s.V1Secret, config: Config, fromFile: boolean): Config {
  if (fromFile) return config;
  const named = secret.metadata?.annotations?.[Annotation.issuer]?.trim();
  const issuer = named || ASSUMED_DEFAULT_ISSUER;
  return {
    ...config,
    defaults: { ...config.defaults, issuer: config.defaults.issuer ?? ASSUMED_DEFAULT_ISSUER },
    issuers: [...config.issuers, assumedIssuer(issuer), assumedIssuer(ASSUMED_DEFAULT_ISSUER)],
  };
}

/**
 * One row for a TLS Secret: the controller's own evaluation (src/controller/evaluate.ts) of the
 * Secret's annotations under `config`, plus what the controller would trip over (key mismatch).
 */
export function rowFromSecret(secret: k8s.V1Secret, config: Config, fromFile: boolean, now: number): ScanRow {
  const record = recordFromSecret(secret);
  const annotations = secret.metadata?.annotations ?? {};
  const problems: string[] = [];
  if (record.certProblem) problems.push(record.certProblem);
  const cert = record.cert;
  problems.push(...certificateProblems(cert));
  if (cert) problems.push(...keyProblems(secret));
  const ev = evaluate(record, configFor(secret, config, fromFile), now);
  // A Secret that is not opted in is renewed by nobody: only an issuer it names itself is shown.
  let issuer: string | null =
    annotations[Annotation.issuer] ?? (fromFile && record.managed ? (config.defaults.issuer ?? null) : null);
  let renewalTime: string | null = null;
  let plannedRenewal: string | null = null;
  let due = false;
  let windowWait = false;
  switch (ev.kind) {
    case 'unmanaged':
      break;
    case 'invalid':
      for (const e of ev.errors) problems.push(`bad annotation ${e.annotation}: ${e.message}`);
      break;
    case 'not-allowed':
      issuer = ev.issuer;
      problems.push(`issuer "${ev.issuer}" does not allow this Secret: ${ev.reason}`);
      break;
    case 'planned':
      if (fromFile || ev.issuer.name !== ASSUMED_DEFAULT_ISSUER) issuer = ev.issuer.name;
      if (ev.renewalTime !== undefined) renewalTime = iso(ev.renewalTime);
      due = ev.decision.action === 'renew-now';
      windowWait = ev.decision.reason === 'window-wait';
      plannedRenewal = due ? 'now' : iso(ev.decision.at);
      break;
  }
  if (cert && cert.notAfter <= now) problems.push(`expired ${new Date(cert.notAfter).toISOString()}`);
  const state: ScanRow['state'] = !cert
    ? 'invalid'
    : cert.notAfter <= now
      ? 'expired'
      : due
        ? 'due'
        : windowWait
          ? 'window-wait'
          : 'valid';
  return {
    kind: 'Secret',
    namespace: record.namespace,
    name: record.name,
    source: null,
    managed: record.managed,
    issuer,
    ...certFields(cert, now),
    renewalTime,
    plannedRenewal,
    state,
    controllerState: controllerStateOf(annotations),
    problems,
  };
}

/** The controller's state annotation; for a CA Secret in a rollover, its phase (`CARollover/Propagate`). */
function controllerStateOf(annotations: Record<string, string>): string | null {
  const phase = annotations[StatusAnnotation.caRolloverPhase];
  const paused = annotations[Annotation.rolloverPaused] === 'true' ? ' (paused)' : '';
  if (phase !== undefined) return `CARollover/${phase}${paused}`;
  return annotations[StatusAnnotation.state] ?? null;
}

/** Does tls.key belong to tls.crt? (What the controller's rollout check and a TLS server need.) */
function keyProblems(secret: k8s.V1Secret): string[] {
  const keyB64 = secret.data?.[SecretKey.privateKey];
  if (!keyB64) return [`${SecretKey.privateKey} is missing or empty`];
  try {
    const pem = Buffer.from(secret.data?.[SecretKey.certificate] ?? '', 'base64').toString('latin1');
    const leaf = certificatesFromPem(pem)[0];
    if (!leaf) return [];
    const keyPem = Buffer.from(keyB64, 'base64').toString('latin1');
    return keyMatchesCertificate(keyPem, leaf)
      ? []
      : [`${SecretKey.privateKey} does not match ${SecretKey.certificate}`];
  } catch (err) {
    return [`${SecretKey.privateKey} cannot be read: ${isPkiError(err) ? err.message : 'unreadable'}`];
  }
}

/** Rows by expiry, soonest first; rows without a certificate (the most urgent) first of all. */
export function sortRows(rows: ScanRow[]): ScanRow[] {
  const at = (r: ScanRow) => (r.notAfter === null ? Number.NEGATIVE_INFINITY : Date.parse(r.notAfter));
  return rows.sort(
    (a, b) =>
      at(a) - at(b) ||
      (a.namespace ?? '').localeCompare(b.namespace ?? '') ||
      a.name.localeCompare(b.name, 'en'),
  );
}
