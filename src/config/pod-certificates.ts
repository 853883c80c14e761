/**
 * Reading and checking the `podCertificates` block of a `ca` issuer: cert-rotator as the signer
 * of PodCertificateRequests (KEP-4317). Pure: the templates are checked here and filled by
 * signer/pod-certificate-rules.ts.
 */
import { parseDuration } from '../policy/renewal.ts';
import { signerNameProblem } from './csr.ts';
import { join, type Reader } from './reader.ts';
import { CONFIG_DEFAULTS, type PodCertificatesConfig } from './schema.ts';

/** Placeholders a template may use: each is a field the API server fills and checks. */
export const POD_CERTIFICATE_PLACEHOLDERS = [
  'namespace',
  'podname',
  'poduid',
  'serviceaccount',
  'serviceaccountuid',
  'nodename',
] as const;
export type PodCertificatePlaceholder = (typeof POD_CERTIFICATE_PLACEHOLDERS)[number];

/** `{annotation:KEY}` names one key of the PCR's spec.unverifiedUserAnnotations. */
export const ANNOTATION_PLACEHOLDER_PREFIX = 'annotation:';

/**
 * Key types as the Kubernetes API and the pod's `podCertificate.keyType` name them, which
 * cert-rotator signs. ECDSAP521 is a type the kubelet may use that cert-rotator does not.
 */
export const POD_CERTIFICATE_KEY_TYPES = ['ECDSAP256', 'ECDSAP384', 'RSA3072', 'RSA4096', 'ED25519'] as const;

/** A `{...}` placeholder: a name, or `annotation:` and a qualified key. */
export const TEMPLATE_PLACEHOLDER = /\{([^{}]*)\}/g;

const PODCERT_KEYS = ['signerName', 'maxDuration', 'refreshAt', 'allow', 'uris', 'dnsNames', 'keyTypes'];

/** A prefixed annotation key (`example.com/name`), as the API requires of unverifiedUserAnnotations. */
const ANNOTATION_KEY =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** The annotation keys a list of templates names, in order of first use. */
export function annotationKeysOf(templates: readonly string[]): string[] {
  const keys = new Set<string>();
  for (const t of templates) {
    for (const m of t.matchAll(TEMPLATE_PLACEHOLDER)) {
      const inner = m[1] ?? '';
      if (inner.startsWith(ANNOTATION_PLACEHOLDER_PREFIX))
        keys.add(inner.slice(ANNOTATION_PLACEHOLDER_PREFIX.length));
    }
  }
  return [...keys];
}

function templateProblem(kind: 'uris' | 'dnsNames') {
  return (t: string): string | undefined => {
    if (!/^[\x21-\x7e]{1,1024}$/.test(t)) return `"${t}" must be printable ASCII without spaces`;
    const placeholders = [...t.matchAll(TEMPLATE_PLACEHOLDER)].map((m) => m[1] ?? '');
    for (const p of placeholders) {
      if (p.startsWith(ANNOTATION_PLACEHOLDER_PREFIX)) {
        const key = p.slice(ANNOTATION_PLACEHOLDER_PREFIX.length);
        if (!ANNOTATION_KEY.test(key))
          return `"${t}": {annotation:${key}} must name a prefixed annotation key such as example.com/role`;
      } else if (!(POD_CERTIFICATE_PLACEHOLDERS as readonly string[]).includes(p)) {
        return `"${t}": unknown placeholder {${p}} (${kind} may use ${POD_CERTIFICATE_PLACEHOLDERS.map((x) => `{${x}}`).join(', ')}, {annotation:KEY})`;
      }
    }
    const literal = t.replace(TEMPLATE_PLACEHOLDER, '');
    if (/[{}]/.test(literal)) return `"${t}" has an unbalanced { or }`;
    if (/[*?]/.test(literal)) return `"${t}": a template names exact values; wildcards belong in allow-lists`;
    if (kind === 'uris' && !/^[a-z][a-z0-9+.-]*:/.test(t))
      return `"${t}" must start with a scheme such as spiffe://`;
    if (kind === 'uris' && placeholders.length === 0)
      return `"${t}" has no placeholder: every pod would get the same URI`;
    if (kind === 'dnsNames' && !/^[a-z0-9{}:/._-]+$/.test(t.replace(TEMPLATE_PLACEHOLDER, 'x')))
      return `"${t}" is not a DNS name template (lowercase letters, digits, "-", "." and placeholders)`;
    return undefined;
  };
}

function percentProblem(text: string): number {
  const m = /^([0-9]{1,2})%$/.exec(text);
  const n = m ? Number(m[1]) : Number.NaN;
  if (!(n >= 10 && n <= 90))
    throw new Error(`"${text}" must be a percentage of the lifetime from 10% to 90%, e.g. "70%"`);
  return n / 100;
}

const NAMESPACE_GLOB = /^[a-z0-9*?-]{1,63}$/;
const SA_NAME_GLOB = /^[a-z0-9*?.-]{1,253}$/;

function serviceAccountGlobProblem(p: string): string | undefined {
  const slash = p.indexOf('/');
  const ok =
    slash < 0
      ? SA_NAME_GLOB.test(p)
      : NAMESPACE_GLOB.test(p.slice(0, slash)) && SA_NAME_GLOB.test(p.slice(slash + 1));
  return ok ? undefined : `"${p}" is not a ServiceAccount glob ("name" or "namespace/name", e.g. "web-*")`;
}

export function readPodCertificates(
  r: Reader,
  value: unknown,
  path: string,
  issuerName: string,
): PodCertificatesConfig | undefined {
  const m = r.mapping(value, path, PODCERT_KEYS);
  if (!m) return undefined;
  let ok = true;
  const signerName = r.string(m, 'signerName', path) ?? `cert-rotator.io/${issuerName}-pods`;
  const problem = signerNameProblem(signerName);
  if (problem) {
    r.report(join(path, 'signerName'), problem);
    ok = false;
  } else if (signerName.startsWith('kubernetes.io/')) {
    r.report(
      join(path, 'signerName'),
      `"${signerName}": kubernetes.io/ signers belong to Kubernetes; use e.g. cert-rotator.io/${issuerName}-pods`,
    );
    ok = false;
  }
  const maxDurationMs =
    r.parsed(m, 'maxDuration', path, (t) => {
      const ms = parseDuration(t);
      // The API's bounds for a PCR's certificate: at least 1 hour, at most 91 days.
      if (ms < 3_600_000) throw new Error(`"${t}" is too short; a pod certificate lives at least 1h`);
      if (ms > 91 * 86_400_000) throw new Error(`"${t}" is too long; the API allows at most 91 days`);
      return ms;
    }) ?? parseDuration(CONFIG_DEFAULTS.podCertificateMaxDuration);
  const refreshAtFraction =
    r.parsed(m, 'refreshAt', path, percentProblem) ?? percentProblem(CONFIG_DEFAULTS.podCertificateRefreshAt);

  const allowAt = join(path, 'allow');
  let allow: PodCertificatesConfig['allow'] | undefined;
  if (m.allow === undefined) {
    r.report(allowAt, 'required: at least allow.namespaces (globs of namespaces whose pods may ask)');
    ok = false;
  } else {
    const a = r.mapping(m.allow, allowAt, ['namespaces', 'serviceAccounts']);
    if (a) {
      const namespaces = r.stringList(a, 'namespaces', allowAt, (p) =>
        NAMESPACE_GLOB.test(p) ? undefined : `"${p}" is not a namespace glob`,
      );
      if (a.namespaces === undefined) r.report(join(allowAt, 'namespaces'), 'required');
      const serviceAccounts = r.stringList(a, 'serviceAccounts', allowAt, serviceAccountGlobProblem);
      if (namespaces && (serviceAccounts || a.serviceAccounts === undefined))
        allow = { namespaces, serviceAccounts: serviceAccounts ?? ['*'] };
    }
    if (!allow) ok = false;
  }
  const uris = r.stringList(m, 'uris', path, templateProblem('uris'));
  const dnsNames = r.stringList(m, 'dnsNames', path, templateProblem('dnsNames'));
  if ((m.uris !== undefined && !uris) || (m.dnsNames !== undefined && !dnsNames)) ok = false;
  if (m.uris === undefined && m.dnsNames === undefined) {
    r.report(path, 'needs uris or dnsNames: the templates are the whole identity of a pod certificate');
    ok = false;
  }
  const keyTypes = r.stringList(m, 'keyTypes', path, (t) =>
    (POD_CERTIFICATE_KEY_TYPES as readonly string[]).includes(t)
      ? undefined
      : `"${t}" is not a key type cert-rotator signs (one of: ${POD_CERTIFICATE_KEY_TYPES.join(', ')})`,
  );
  if (m.keyTypes !== undefined && !keyTypes) ok = false;
  if (!ok || !allow) return undefined;
  return {
    signerName,
    maxDurationMs,
    refreshAtFraction,
    allow,
    uris: uris ?? [],
    dnsNames: dnsNames ?? [],
    keyTypes: keyTypes ?? [...POD_CERTIFICATE_KEY_TYPES],
  };
}
