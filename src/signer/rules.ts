/**
 * The signer's rules for an approved CertificateSigningRequest (pure): what it may sign, for
 * how long and with which usages. A request that breaks a rule gets the Failed condition with
 * the rule's reason and a message that names the rule and the offending value.
 */
import type { CsrSignerConfig, IssuerConfig } from '../config/schema.ts';
import type { Identity, ParsedCsr } from '../pki/index.ts';
import { checkIdentity } from '../policy/identity.ts';
import { formatDuration } from '../policy/renewal.ts';

/** Reasons of the Failed condition, one per rule. */
export const SignerFailure = {
  badRequest: 'CertRotatorBadRequest',
  signature: 'CertRotatorInvalidSignature',
  isCA: 'CertRotatorCANotAllowed',
  usage: 'CertRotatorUsageNotAllowed',
  subject: 'CertRotatorSubjectNotAllowed',
  name: 'CertRotatorNameNotAllowed',
  noIdentity: 'CertRotatorNoIdentity',
  signing: 'CertRotatorSigningFailed',
} as const;

export type SignDecision =
  | {
      ok: true;
      identity: Identity;
      organizations: string[];
      usages: string[];
      durationMs: number;
      /** Set when the requested lifetime was capped. */
      capped?: string;
    }
  | { ok: false; reason: string; message: string };

export function checkSigningRequest(
  issuer: IssuerConfig & { kind: 'ca' },
  signer: CsrSignerConfig,
  request: { usages: readonly string[]; expirationSeconds?: number | undefined },
  parsed: ParsedCsr,
): SignDecision {
  const fail = (reason: string, rule: string, message: string): SignDecision => ({
    ok: false,
    reason,
    message: `rule "${rule}" of signer ${signer.signerName} (issuer "${issuer.name}"): ${message}`,
  });
  if (!parsed.signatureValid) {
    return fail(
      SignerFailure.signature,
      'signature',
      'the request is not signed by the key it names (no proof of possession)',
    );
  }
  if (parsed.requestsCA)
    return fail(
      SignerFailure.isCA,
      'isCA',
      'the request asks for a CA certificate (basicConstraints cA=TRUE)',
    );
  const offUsages = request.usages.filter((u) => !signer.allowedUsages.includes(u));
  if (offUsages.length > 0) {
    return fail(
      SignerFailure.usage,
      'allowedUsages',
      `usage ${offUsages.map((u) => `"${u}"`).join(', ')} is not allowed (allowedUsages: ${signer.allowedUsages.join(', ')})`,
    );
  }
  if (request.usages.length === 0)
    return fail(SignerFailure.usage, 'allowedUsages', 'the request names no usages');
  if (parsed.otherSubjectAttributes.length > 0) {
    return fail(
      SignerFailure.subject,
      'subject',
      `subject attribute ${parsed.otherSubjectAttributes.map((a) => JSON.stringify(a)).join(', ')} is not signed (only CN and O are)`,
    );
  }
  if (parsed.otherNames.length > 0) {
    return fail(
      SignerFailure.subject,
      'subjectAltNames',
      `subject alternative name ${parsed.otherNames.map((a) => JSON.stringify(a)).join(', ')} is not signed (only DNS, IP and URI names are)`,
    );
  }
  const id = parsed.identity;
  if (id.commonName === undefined && id.dnsNames.length + id.ipAddresses.length + id.uris.length === 0) {
    return fail(
      SignerFailure.noIdentity,
      'identity',
      'the request names no common name and no subject alternative names',
    );
  }
  // Namespaces are the approver's business (a CSR has none); every name is checked here.
  const permission = checkIdentity(issuer, undefined, { ...id, organizations: parsed.organizations });
  if (!permission.allowed) return fail(SignerFailure.name, allowListOf(permission.part), permission.reason);

  const requestedMs = request.expirationSeconds === undefined ? undefined : request.expirationSeconds * 1000;
  const durationMs = Math.min(requestedMs ?? signer.maxDurationMs, signer.maxDurationMs);
  const capped =
    requestedMs !== undefined && requestedMs > signer.maxDurationMs
      ? `expirationSeconds ${request.expirationSeconds} capped to maxDuration ${formatDuration(signer.maxDurationMs)}`
      : undefined;
  return {
    ok: true,
    identity: id,
    organizations: parsed.organizations,
    usages: [...request.usages],
    durationMs,
    ...(capped ? { capped } : {}),
  };
}

function allowListOf(part: string): string {
  switch (part) {
    case 'commonName':
      return 'allowedCommonNames';
    case 'dnsName':
      return 'allowedDomains';
    case 'ipAddress':
      return 'allowedIPs';
    case 'uri':
      return 'allowedURIs';
    case 'organization':
      return 'allowedOrganizations';
    default:
      return 'allowedNamespaces';
  }
}
