/**
 * Allow-list matching for issuers: which namespaces may use an issuer, and for which names.
 */
import {
  checkIdentity,
  dnsGlobMatch,
  type IdentityPolicy,
  type RequestedIdentity,
} from '../policy/identity.ts';

/**
 * DNS glob, label by label: `*` matches any run within one label, `?` one character; neither
 * crosses a dot. Defined with the rest of the identity policy in policy/identity.ts.
 */
export const globMatch = dnsGlobMatch;

export type IssuerPermission = { allowed: true } | { allowed: false; reason: string };

/**
 * Whether a Secret in `namespace` asking for `identity` (or only DNS names) may use this
 * issuer, and if not, why: the whole identity is checked (see policy/identity.ts).
 */
export function issuerAllows(
  issuer: IdentityPolicy,
  namespace: string,
  identity: RequestedIdentity | readonly string[],
): IssuerPermission {
  const requested: RequestedIdentity = Array.isArray(identity)
    ? { dnsNames: identity, ipAddresses: [], uris: [] }
    : (identity as RequestedIdentity);
  const permission = checkIdentity(issuer, namespace, requested);
  return permission.allowed ? { allowed: true } : { allowed: false, reason: permission.reason };
}
