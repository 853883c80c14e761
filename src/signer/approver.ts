/**
 * The approver (pure): approves a CSR for the signer when its requester is a ServiceAccount in
 * an allowed namespace and every requested name is one that ServiceAccount may have, from the
 * templates; denies anything else with a message naming the offending requester or name.
 * Placeholders are only what the request proves: {namespace} and {serviceaccount} from
 * spec.username, {podname} from the bound token's pod claim in spec.extra.
 */
import type { CsrApproveConfig } from '../config/schema.ts';
import type { ParsedCsr } from '../pki/index.ts';
import { dnsGlobMatch, uriGlobMatch } from '../policy/identity.ts';

export const APPROVED_REASON = 'CertRotatorPolicyApproved';
export const DENIED_REASON = 'CertRotatorPolicyDenied';
/** spec.extra key the API server sets from a bound ServiceAccount token's pod claim. */
export const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';

export interface Requester {
  username: string;
  groups: readonly string[];
  extra: Record<string, readonly string[]>;
}

export type ApprovalDecision = { approve: true; message: string } | { approve: false; message: string };

const SA_USER = /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;
const POD_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function decideApproval(
  signerName: string,
  policy: CsrApproveConfig,
  requester: Requester,
  parsed: ParsedCsr,
): ApprovalDecision {
  const deny = (why: string): ApprovalDecision => ({
    approve: false,
    message: `denied by cert-rotator's approver for signer ${signerName}: ${why}`,
  });
  const m = SA_USER.exec(requester.username);
  if (!m || !requester.groups.includes('system:serviceaccounts')) {
    return deny(
      `requester "${requester.username}" is not a ServiceAccount (only ServiceAccounts are approved)`,
    );
  }
  const namespace = m[1] as string;
  const serviceAccount = m[3] as string;
  const sa = policy.serviceAccounts;
  if (!sa.namespaces.some((p) => dnsGlobMatch(p, namespace))) {
    return deny(
      `ServiceAccount ${namespace}/${serviceAccount} is in namespace "${namespace}", which is not allowed (namespaces: ${sa.namespaces.join(', ')})`,
    );
  }
  const podValues = requester.extra[POD_NAME_EXTRA] ?? [];
  const podName = podValues.length === 1 && POD_NAME.test(podValues[0] as string) ? podValues[0] : undefined;
  const values: Record<string, string | undefined> = {
    namespace,
    serviceaccount: serviceAccount,
    podname: podName,
  };
  const expand = (templates: readonly string[]) =>
    templates.flatMap((t) => {
      let missing = false;
      const out = t.replace(/\{([a-z]+)\}/g, (_, key: string) => {
        const v = values[key];
        if (v === undefined) missing = true;
        return v ?? '';
      });
      return missing ? [] : [out];
    });
  const uris = expand(sa.uris);
  const dnsNames = expand(sa.dnsNames);
  const who = `ServiceAccount ${namespace}/${serviceAccount}${podName ? ` (pod ${podName})` : ''}`;
  const id = parsed.identity;

  for (const uri of id.uris) {
    if (!uris.some((p) => uriGlobMatch(p, uri))) {
      return deny(`${who} may not have URI "${uri}" (allowed: ${uris.join(', ') || 'none'})`);
    }
  }
  for (const name of id.dnsNames) {
    if (!dnsNames.some((p) => dnsGlobMatch(p, name))) {
      return deny(`${who} may not have DNS name "${name}" (allowed: ${dnsNames.join(', ') || 'none'})`);
    }
  }
  if (id.commonName !== undefined && !dnsNames.some((p) => dnsGlobMatch(p, id.commonName as string))) {
    return deny(
      `${who} may not have common name "${id.commonName}" (allowed: the dnsNames templates: ${dnsNames.join(', ') || 'none'})`,
    );
  }
  if (id.ipAddresses.length > 0) {
    return deny(
      `${who} may not have IP address "${id.ipAddresses[0]}" (nothing in the request proves an IP)`,
    );
  }
  if (parsed.organizations.length > 0) {
    return deny(`${who} may not have organization "${parsed.organizations[0]}"`);
  }
  if (id.uris.length + id.dnsNames.length === 0) return deny(`${who} asked for no URI or DNS name`);
  const names = [...id.uris, ...id.dnsNames].map((n) => `"${n}"`).join(', ');
  return { approve: true, message: `approved by cert-rotator's approver: ${who} may have ${names}` };
}
