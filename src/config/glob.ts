/**
 * Allow-list matching for issuers: which namespaces may use an issuer, and for which DNS names.
 */
import type { IssuerConfig } from './schema.ts';

/**
 * Matches a glob against a name, label by label (labels are separated by "."):
 * `*` matches any run of characters within one label, `?` exactly one character; neither crosses
 * a dot, so `*.example.com` matches `a.example.com` but not `a.b.example.com` or `example.com`.
 * A wildcard certificate name (`*.example.com`) is allowed only by a pattern whose label at that
 * position is exactly `*`: `?.example.com` or `a*.example.com` do not allow it.
 * Case-insensitive, as DNS is.
 */
export function globMatch(pattern: string, value: string): boolean {
  const patternLabels = pattern.toLowerCase().split('.');
  const valueLabels = value.toLowerCase().split('.');
  if (patternLabels.length !== valueLabels.length) return false;
  return patternLabels.every((label, i) => {
    const valueLabel = valueLabels[i] ?? '';
    if (valueLabel.includes('*')) return label === '*' || (label === valueLabel && !label.includes('?'));
    return labelMatch(label, valueLabel);
  });
}

/** Iterative wildcard match with single-star backtracking: linear-ish, no regex, no ReDoS. */
function labelMatch(pattern: string, value: string): boolean {
  let p = 0;
  let v = 0;
  let starAt = -1;
  let resumeAt = 0;
  while (v < value.length) {
    const c = pattern[p];
    if (c === '?' || (c !== undefined && c !== '*' && c === value[v])) {
      p++;
      v++;
    } else if (c === '*') {
      starAt = p++;
      resumeAt = v;
    } else if (starAt >= 0) {
      p = starAt + 1;
      v = ++resumeAt;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

export type IssuerPermission = { allowed: true } | { allowed: false; reason: string };

/** Whether a Secret in `namespace` asking for `dnsNames` may use this issuer, and if not, why. */
export function issuerAllows(
  issuer: Pick<IssuerConfig, 'name' | 'allowedNamespaces' | 'allowedDomains'>,
  namespace: string,
  dnsNames: readonly string[],
): IssuerPermission {
  if (!issuer.allowedNamespaces.some((pattern) => globMatch(pattern, namespace))) {
    return {
      allowed: false,
      reason: `issuer "${issuer.name}" does not allow namespace "${namespace}" (allowedNamespaces: ${issuer.allowedNamespaces.join(', ')})`,
    };
  }
  const domains = issuer.allowedDomains;
  if (domains) {
    const refused = dnsNames.filter((name) => !domains.some((pattern) => globMatch(pattern, name)));
    if (refused.length > 0) {
      return {
        allowed: false,
        reason: `issuer "${issuer.name}" does not allow ${refused.map((n) => `"${n}"`).join(', ')} (allowedDomains: ${domains.join(', ')})`,
      };
    }
  }
  return { allowed: true };
}
