/**
 * Config of the Kubernetes CSR pieces: the `kubernetesCSR` issuer (requester), and the
 * `signer` + `approve` keys that make a `ca` issuer sign CertificateSigningRequests.
 */

import { certificatesFromPem, isPkiError } from '../pki/index.ts';
import { parseDuration } from '../policy/renewal.ts';
import { join, type Mapping, type Reader } from './reader.ts';
import type { CsrApproveConfig, CsrSignerConfig, KubernetesCSRIssuerConfig } from './schema.ts';
import { CONFIG_DEFAULTS } from './schema.ts';
import { namespaceProblem, objectNameProblem, secretDataKeyProblem } from './syntax.ts';

/** kube-controller-manager's signer whose certificates log in to the API server. */
export const KUBE_APISERVER_CLIENT_SIGNER = 'kubernetes.io/kube-apiserver-client';

/** kube-controller-manager signers a Secret cannot use, and why. */
const REFUSED_SIGNERS: Record<string, string> = {
  'kubernetes.io/kubelet-serving':
    'kube-controller-manager signs only kubelet serving certificates there: the subject must be O=system:nodes, CN=system:node:<name> and the request must come from that node, which a Secret cannot be',
  'kubernetes.io/kube-apiserver-client-kubelet':
    'kube-controller-manager signs only kubelet client certificates there: the subject must be O=system:nodes, CN=system:node:<name>, which a Secret cannot ask for',
  'kubernetes.io/legacy-unknown': 'certificates.k8s.io/v1 refuses new requests for this signer',
};

/** Key usage names of certificates.k8s.io/v1 that cert-rotator's signer can put in a certificate. */
export const SIGNER_USAGES = ['digital signature', 'key encipherment', 'server auth', 'client auth'] as const;

/** Every usage name certificates.k8s.io/v1 accepts (for the requester's `usages`). */
const KUBERNETES_USAGES = new Set([
  'signing',
  'digital signature',
  'content commitment',
  'key encipherment',
  'key agreement',
  'data encipherment',
  'cert sign',
  'crl sign',
  'encipher only',
  'decipher only',
  'any',
  'server auth',
  'client auth',
  'code signing',
  'email protection',
  's/mime',
  'ipsec end system',
  'ipsec tunnel',
  'ipsec user',
  'timestamping',
  'ocsp signing',
  'microsoft sgc',
  'netscape sgc',
]);

const SIGNER_NAME = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?\/[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/;
const TEN_YEARS_SECONDS = 3650 * 24 * 3600;

/** What the requester asks for when `usages` is not set: what the signer accepts. */
export function defaultUsages(signerName: string): string[] {
  return signerName === KUBE_APISERVER_CLIENT_SIGNER
    ? ['digital signature', 'key encipherment', 'client auth']
    : ['digital signature', 'server auth'];
}

function usageList(r: Reader, m: Mapping, key: string, path: string, allowed: ReadonlySet<string>) {
  return r.stringList(m, key, path, (u) =>
    allowed.has(u) ? undefined : `"${u}" is not a usage here (one of: ${[...allowed].join(', ')})`,
  );
}

function durationAtLeast(text: string, minimum: string): number {
  const ms = parseDuration(text);
  if (ms < parseDuration(minimum)) throw new Error(`"${text}" is too short; the minimum is ${minimum}`);
  return ms;
}

export function signerNameProblem(name: string): string | undefined {
  return name.length <= 571 && SIGNER_NAME.test(name)
    ? undefined
    : `"${name}" must look like "example.com/serving" (domain/path)`;
}

export function readKubernetesCsr(
  r: Reader,
  value: unknown,
  path: string,
  identity: { allowedCommonNames?: string[] | undefined },
): KubernetesCSRIssuerConfig | undefined {
  const csr = r.mapping(value, path, [
    'signerName',
    'autoApprove',
    'expirationSeconds',
    'usages',
    'approvalTimeout',
    'approvalHold',
    'caBundle',
    'caBundleFrom',
  ]);
  if (!csr) return undefined;
  const signerName = r.string(csr, 'signerName', path, true);
  let ok = signerName !== undefined;
  if (signerName !== undefined) {
    const problem = signerNameProblem(signerName);
    const refused = REFUSED_SIGNERS[signerName];
    if (problem) r.report(join(path, 'signerName'), problem);
    else if (refused) r.report(join(path, 'signerName'), `"${signerName}" cannot be used: ${refused}`);
    ok = !problem && !refused;
  }
  const expirationSeconds = r.integer(
    csr,
    'expirationSeconds',
    path,
    CONFIG_DEFAULTS.minExpirationSeconds,
    TEN_YEARS_SECONDS,
  );
  const usages = usageList(r, csr, 'usages', path, KUBERNETES_USAGES);
  const effectiveUsages = usages ?? (signerName ? defaultUsages(signerName) : []);
  if (signerName === KUBE_APISERVER_CLIENT_SIGNER && usages && !usages.includes('client auth')) {
    r.report(join(path, 'usages'), `${KUBE_APISERVER_CLIENT_SIGNER} signs only requests with "client auth"`);
  }
  // A client certificate the API server trusts is a login: never for whatever name a Secret says.
  if (effectiveUsages.includes('client auth') && identity.allowedCommonNames === undefined) {
    r.report(
      join(path, 'signerName'),
      `a client-auth issuer (usages include "client auth") must list allowedCommonNames: its certificates are logins as their common name, and anyone who may annotate a Secret could otherwise mint one for any user (system: names only when listed explicitly)`,
    );
    ok = false;
  }
  const approvalTimeoutMs =
    r.parsed(csr, 'approvalTimeout', path, (t) => durationAtLeast(t, '5s')) ??
    parseDuration(CONFIG_DEFAULTS.csrApprovalTimeout);
  const approvalHoldMs =
    r.parsed(csr, 'approvalHold', path, (t) => durationAtLeast(t, '1s')) ??
    parseDuration(CONFIG_DEFAULTS.csrApprovalHold);
  const caBundle = r.string(csr, 'caBundle', path);
  if (caBundle !== undefined) {
    try {
      if (certificatesFromPem(caBundle).length === 0) throw new Error('no CERTIFICATE block');
    } catch (err) {
      r.report(
        join(path, 'caBundle'),
        `must be PEM certificates: ${isPkiError(err) ? err.message : err instanceof Error ? err.message : String(err)}`,
      );
      ok = false;
    }
  }
  let caBundleFrom: KubernetesCSRIssuerConfig['caBundleFrom'];
  if (csr.caBundleFrom !== undefined) {
    const at = join(path, 'caBundleFrom');
    const from = r.mapping(csr.caBundleFrom, at, ['configMap']);
    const cmAt = join(at, 'configMap');
    const cm = from && r.mapping(from.configMap, cmAt, ['namespace', 'name', 'key']);
    if (cm) {
      const namespace = r.string(cm, 'namespace', cmAt, true);
      const name = r.string(cm, 'name', cmAt, true);
      const key = r.string(cm, 'key', cmAt) ?? 'ca.crt';
      const problems: Array<[string, string | undefined]> = [
        ['namespace', namespace && namespaceProblem(namespace)],
        ['name', name && objectNameProblem(name)],
        ['key', secretDataKeyProblem(key)],
      ];
      for (const [k, p] of problems) if (p) r.report(join(cmAt, k), p);
      if (namespace && name && problems.every(([, p]) => !p))
        caBundleFrom = { configMap: { namespace, name, key } };
      else ok = false;
    } else ok = false;
    if (caBundle !== undefined) r.report(at, 'set either caBundle or caBundleFrom, not both');
  }
  const autoApprove = r.boolean(csr, 'autoApprove', path) ?? false;
  if (!ok || signerName === undefined) return undefined;
  return {
    signerName,
    autoApprove,
    usages: effectiveUsages,
    approvalTimeoutMs,
    approvalHoldMs,
    ...(expirationSeconds !== undefined ? { expirationSeconds } : {}),
    ...(caBundle !== undefined ? { caBundle } : {}),
    ...(caBundleFrom ? { caBundleFrom } : {}),
  };
}

export function readSigner(
  r: Reader,
  value: unknown,
  path: string,
  issuerName: string,
): CsrSignerConfig | undefined {
  const m = r.optionalMapping(value, path, ['signerName', 'maxDuration', 'allowedUsages']);
  if (!m) return undefined;
  const signerName = r.string(m, 'signerName', path) ?? `cert-rotator.io/${issuerName}`;
  const problem = signerNameProblem(signerName);
  if (problem) r.report(join(path, 'signerName'), problem);
  else if (signerName.startsWith('kubernetes.io/')) {
    r.report(
      join(path, 'signerName'),
      `"${signerName}": kubernetes.io/ signers belong to Kubernetes; use e.g. cert-rotator.io/${issuerName}`,
    );
  }
  const maxDurationMs =
    r.parsed(m, 'maxDuration', path, (t) => durationAtLeast(t, '1m')) ??
    parseDuration(CONFIG_DEFAULTS.signerMaxDuration);
  const allowedUsages = usageList(r, m, 'allowedUsages', path, new Set(SIGNER_USAGES)) ?? [...SIGNER_USAGES];
  return { signerName, maxDurationMs, allowedUsages };
}

const PLACEHOLDER = /\{([a-z]+)\}/g;
const URI_PLACEHOLDERS = new Set(['namespace', 'serviceaccount']);
const DNS_PLACEHOLDERS = new Set(['namespace', 'serviceaccount', 'podname']);

function templateProblem(allowed: ReadonlySet<string>, what: string) {
  return (t: string): string | undefined => {
    if (!/^[\x21-\x7e]+$/.test(t)) return `"${t}" must be printable ASCII without spaces`;
    for (const match of t.matchAll(PLACEHOLDER)) {
      if (!allowed.has(match[1] ?? '')) {
        return `"${t}": unknown placeholder {${match[1]}} (${what} may use ${[...allowed].map((p) => `{${p}}`).join(', ')})`;
      }
    }
    if (/[{}]/.test(t.replace(PLACEHOLDER, ''))) return `"${t}" has an unbalanced { or }`;
    return undefined;
  };
}

export function readApprove(r: Reader, value: unknown, path: string): CsrApproveConfig | undefined {
  const m = r.mapping(value, path, ['serviceAccounts']);
  if (!m) return undefined;
  const at = join(path, 'serviceAccounts');
  if (m.serviceAccounts === undefined) {
    r.report(at, 'required');
    return undefined;
  }
  const sa = r.mapping(m.serviceAccounts, at, ['namespaces', 'uris', 'dnsNames']);
  if (!sa) return undefined;
  const namespaces = r.stringList(sa, 'namespaces', at, (p) =>
    /^[a-z0-9*?-]{1,63}$/.test(p) ? undefined : `"${p}" is not a namespace glob`,
  );
  if (namespaces === undefined && sa.namespaces === undefined) r.report(join(at, 'namespaces'), 'required');
  const uris = r.stringList(sa, 'uris', at, templateProblem(URI_PLACEHOLDERS, 'uris'));
  const dnsNames = r.stringList(sa, 'dnsNames', at, templateProblem(DNS_PLACEHOLDERS, 'dnsNames'));
  if (!namespaces) return undefined;
  return { serviceAccounts: { namespaces, uris: uris ?? [], dnsNames: dnsNames ?? [] } };
}
