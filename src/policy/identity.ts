/**
 * Issuer policy over the whole requested identity: namespace, common name, DNS, IP and URI SANs
 * (and subject organizations, which only a CSR sent to cert-rotator's signer can carry).
 *
 * The rule for an issuer with some lists but not others: an issuer with **no** identity list at
 * all (`allowedDomains`, `allowedIPs`, `allowedURIs`, `allowedCommonNames`,
 * `allowedOrganizations`) places no limit on names. As soon as it has **one**, it is restrictive:
 * every name must be allowed by the list of its own kind, and a kind without a list is refused
 * outright. So an issuer with only `allowedDomains: ["*.example.com"]` issues neither an IP SAN,
 * nor a URI SAN, nor a common name outside `*.example.com`. A common name is allowed by
 * `allowedCommonNames`, or (when it is a DNS name) by `allowedDomains`.
 *
 * Pure: no I/O, nothing from config/ (config/ imports policy/).
 */
import { parseIp } from '../pki/ip.ts';

export interface IdentityPolicy {
  name: string;
  /** Globs over namespace names (label-wise, as DNS globs). */
  allowedNamespaces: readonly string[];
  /** DNS globs, label by label. */
  allowedDomains?: readonly string[] | undefined;
  /** CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses. */
  allowedIPs?: readonly string[] | undefined;
  /** Globs over the whole URI; `*` and `?` do not cross `/`. */
  allowedURIs?: readonly string[] | undefined;
  /** Globs over the whole value (`:` is an ordinary character); `system:` only when listed literally. */
  allowedCommonNames?: readonly string[] | undefined;
  /** Same glob form as common names. */
  allowedOrganizations?: readonly string[] | undefined;
}

export interface RequestedIdentity {
  commonName?: string | undefined;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  uris: readonly string[];
  organizations?: readonly string[] | undefined;
}

export type IdentityPermission =
  | { allowed: true }
  | {
      allowed: false;
      /** Message for the user: names the issuer, the offending value and the list. */
      reason: string;
      /** Which part was refused. */
      part: 'namespace' | 'commonName' | 'dnsName' | 'ipAddress' | 'uri' | 'organization';
      /** The first offending value. */
      value: string;
    };

const IDENTITY_LISTS = [
  'allowedDomains',
  'allowedIPs',
  'allowedURIs',
  'allowedCommonNames',
  'allowedOrganizations',
] as const;

/** Whether the issuer limits names at all (has at least one identity list). */
export function isRestrictive(policy: IdentityPolicy): boolean {
  return IDENTITY_LISTS.some((key) => policy[key] !== undefined);
}

function listText(key: string, list: readonly string[] | undefined): string {
  return list === undefined ? `no ${key}` : `${key}: ${list.join(', ')}`;
}

function quoteAll(values: readonly string[]): string {
  return values.map((v) => JSON.stringify(v)).join(', ');
}

/** Checks namespace and every name of `identity` against the issuer's lists. */
export function checkIdentity(
  policy: IdentityPolicy,
  namespace: string | undefined,
  identity: RequestedIdentity,
): IdentityPermission {
  const who = `issuer "${policy.name}"`;
  if (namespace !== undefined && !policy.allowedNamespaces.some((p) => dnsGlobMatch(p, namespace))) {
    return {
      allowed: false,
      part: 'namespace',
      value: namespace,
      reason: `${who} does not allow namespace "${namespace}" (allowedNamespaces: ${policy.allowedNamespaces.join(', ')})`,
    };
  }
  if (!isRestrictive(policy)) return { allowed: true };
  const unlisted = (kind: string) =>
    `; an issuer with allow-lists refuses ${kind} unless its own list allows them`;

  const domains = policy.allowedDomains;
  const refusedDns = identity.dnsNames.filter((n) => !domains?.some((p) => dnsGlobMatch(p, n)));
  if (refusedDns.length > 0) {
    return {
      allowed: false,
      part: 'dnsName',
      value: refusedDns[0] as string,
      reason: `${who} does not allow ${quoteAll(refusedDns)} (${listText('allowedDomains', domains)}${domains ? '' : unlisted('DNS names')})`,
    };
  }

  const cn = identity.commonName;
  if (cn !== undefined && !commonNameAllowed(policy, cn)) {
    return {
      allowed: false,
      part: 'commonName',
      value: cn,
      reason: `${who} does not allow common name ${JSON.stringify(cn)} (${listText('allowedCommonNames', policy.allowedCommonNames)}; ${listText('allowedDomains', domains)})`,
    };
  }

  const ips = policy.allowedIPs;
  const refusedIps = identity.ipAddresses.filter((ip) => !ips?.some((cidr) => cidrContains(cidr, ip)));
  if (refusedIps.length > 0) {
    return {
      allowed: false,
      part: 'ipAddress',
      value: refusedIps[0] as string,
      reason: `${who} does not allow IP address ${quoteAll(refusedIps)} (${listText('allowedIPs', ips)}${ips ? '' : unlisted('IP SANs')})`,
    };
  }

  const uris = policy.allowedURIs;
  const refusedUris = identity.uris.filter((u) => !uris?.some((p) => uriGlobMatch(p, u)));
  if (refusedUris.length > 0) {
    return {
      allowed: false,
      part: 'uri',
      value: refusedUris[0] as string,
      reason: `${who} does not allow URI ${quoteAll(refusedUris)} (${listText('allowedURIs', uris)}${uris ? '' : unlisted('URI SANs')})`,
    };
  }

  const orgs = policy.allowedOrganizations;
  const refusedOrgs = (identity.organizations ?? []).filter(
    (o) => !orgs?.some((p) => subjectGlobMatch(p, o)),
  );
  if (refusedOrgs.length > 0) {
    return {
      allowed: false,
      part: 'organization',
      value: refusedOrgs[0] as string,
      reason: `${who} does not allow organization ${quoteAll(refusedOrgs)} (${listText('allowedOrganizations', orgs)}${orgs ? '' : unlisted('subject organizations')})`,
    };
  }
  return { allowed: true };
}

function commonNameAllowed(policy: IdentityPolicy, cn: string): boolean {
  if (policy.allowedCommonNames?.some((p) => subjectGlobMatch(p, cn))) return true;
  // A DNS-shaped CN may also be allowed by allowedDomains; a "system:..." name never is.
  return (
    looksLikeDnsName(cn) && (policy.allowedDomains?.some((p) => dnsGlobMatch(p, cn.toLowerCase())) ?? false)
  );
}

const DNS_SHAPE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

function looksLikeDnsName(value: string): boolean {
  return value.length <= 253 && DNS_SHAPE.test(value);
}

/**
 * DNS glob, label by label: `*` matches any run within one label, `?` one character; neither
 * crosses a dot. A wildcard name (`*.example.com`) is allowed only by a pattern whose label at
 * that position is exactly `*`. Case-insensitive.
 */
export function dnsGlobMatch(pattern: string, value: string): boolean {
  const patternLabels = pattern.toLowerCase().split('.');
  const valueLabels = value.toLowerCase().split('.');
  if (patternLabels.length !== valueLabels.length) return false;
  return patternLabels.every((label, i) => {
    const valueLabel = valueLabels[i] ?? '';
    if (valueLabel.includes('*')) return label === '*' || (label === valueLabel && !label.includes('?'));
    return wildcardMatch(label, valueLabel, undefined);
  });
}

/**
 * URI glob over the whole value: `*` any run of characters within one path segment, `?` one such
 * character; neither matches `/`, nor `?` or `#` (so a wildcard cannot reach into a query or
 * fragment), nor `%` (no percent-encoded `/` slips through). Case-sensitive.
 */
export function uriGlobMatch(pattern: string, value: string): boolean {
  return wildcardMatch(pattern, value, '/?#%');
}

/**
 * Common-name / organization glob over the whole value (`:` ordinary, `*` any run, `?` one
 * character), case-sensitive as Kubernetes user and group names are. A value starting with
 * `system:` is allowed only by a pattern that itself starts with `system:`: `*` never grants
 * a built-in Kubernetes identity such as `system:masters` or `system:kube-controller-manager`.
 */
export function subjectGlobMatch(pattern: string, value: string): boolean {
  if (value.startsWith('system:') && !pattern.startsWith('system:')) return false;
  return wildcardMatch(pattern, value, undefined);
}

/**
 * Iterative wildcard match with single-star backtracking (no regex, no ReDoS). `stop` holds the
 * characters that neither `*` nor `?` may match.
 */
function wildcardMatch(pattern: string, value: string, stop: string | undefined): boolean {
  const stops = (ch: string | undefined) => ch !== undefined && (stop?.includes(ch) ?? false);
  let p = 0;
  let v = 0;
  let starAt = -1;
  let resumeAt = 0;
  while (v < value.length) {
    const c = pattern[p];
    const ch = value[v];
    if ((c === '?' && !stops(ch)) || (c !== undefined && c !== '*' && c !== '?' && c === ch)) {
      p++;
      v++;
    } else if (c === '*') {
      starAt = p++;
      resumeAt = v;
    } else if (starAt >= 0 && !stops(value[resumeAt])) {
      p = starAt + 1;
      v = ++resumeAt;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/** A CIDR (`a.b.c.d/n`, `x::/n`) or a single address: the problem, or undefined when valid. */
export function cidrProblem(text: string): string | undefined {
  return parseCidr(text) ? undefined : `"${text}" is not a CIDR such as 10.0.0.0/8 or fd00::/8`;
}

function parseCidr(text: string): { bytes: Uint8Array; bits: number } | undefined {
  const slash = text.indexOf('/');
  const addr = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!addr) return undefined;
  const max = addr.length * 8;
  if (slash < 0) return { bytes: addr, bits: max };
  const bitsText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(bitsText)) return undefined;
  const bits = Number(bitsText);
  return bits > max ? undefined : { bytes: addr, bits };
}

/** Whether `ip` (any text form) lies in `cidr`; families never mix. */
export function cidrContains(cidr: string, ip: string): boolean {
  const net = parseCidr(cidr);
  const addr = parseIp(ip);
  if (!net || !addr || addr.length !== net.bytes.length) return false;
  let bits = net.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((addr[i] as number) & mask) !== ((net.bytes[i] as number) & mask)) return false;
  }
  return true;
}
