/**
 * ARI (RFC 9773) as the issuer uses it: the CA's suggested renewal time for a Secret's current
 * leaf, and the certID a new order names in `replaces`.
 */
import { acmeCertId, certificatesFromPem, readCertificateSummary } from '../../pki/index.ts';
import type { IssueInput, SuggestedRenewal, SuggestionInput } from '../types.ts';
import { getRenewalInfo, pointInWindow } from './ari.ts';
import type { AcmeConnection } from './client.ts';
import type { AcmeContext } from './context.ts';

/** The managed Secret's current leaf (DER), read now; undefined when absent or unreadable. */
async function currentLeaf(
  ctx: AcmeContext,
  namespace: string,
  secretName: string,
): Promise<Uint8Array | undefined> {
  const s = await ctx.deps.kube.readSecret(namespace, secretName);
  const pem = s?.data['tls.crt'];
  if (!pem) return undefined;
  try {
    return certificatesFromPem(pem)[0];
  } catch {
    return undefined;
  }
}

/** certID of the certificate this order replaces (ARI), when the CA knows it; else undefined. */
export async function replacesFor(
  ctx: AcmeContext,
  conn: AcmeConnection,
  input: IssueInput,
): Promise<string | undefined> {
  if (ctx.config.ari === false) return undefined;
  try {
    const base = await conn.resource('renewalInfo');
    if (!base) return undefined;
    const leaf = await currentLeaf(ctx, input.namespace, input.secretName);
    const certId = leaf ? acmeCertId(leaf) : undefined;
    if (!certId) return undefined;
    if (ctx.knownCertIds.has(certId)) return certId;
    // Only a certificate this CA issued may be named; its renewalInfo answering says it is one.
    const info = await getRenewalInfo(conn, base, certId);
    if (!info) return undefined;
    ctx.knownCertIds.add(certId);
    return certId;
  } catch (err) {
    ctx.log.debug({ issuer: ctx.name, error: String(err) }, 'no ARI replaces for this order');
    return undefined;
  }
}

/**
 * A point inside the CA's suggested window for the Secret's current leaf, when the leaf is still
 * the certificate `input` names and the CA answers for it; else undefined.
 */
export async function renewalSuggestion(
  ctx: AcmeContext,
  conn: AcmeConnection,
  input: SuggestionInput,
): Promise<SuggestedRenewal | undefined> {
  const base = await conn.resource('renewalInfo');
  if (!base) return undefined;
  const leaf = await currentLeaf(ctx, input.namespace, input.secretName);
  if (!leaf || readCertificateSummary(leaf).serialHex !== input.serialHex) return undefined;
  const certId = acmeCertId(leaf);
  if (!certId) return undefined;
  const info = await getRenewalInfo(conn, base, certId);
  if (!info) return undefined;
  ctx.knownCertIds.add(certId);
  const at = pointInWindow(info.start, info.end, certId);
  ctx.log.debug(
    {
      issuer: ctx.name,
      secret: `${input.namespace}/${input.secretName}`,
      windowStart: new Date(info.start).toISOString(),
      windowEnd: new Date(info.end).toISOString(),
      at: new Date(at).toISOString(),
      retryAfterMs: info.retryAfterMs,
    },
    'ARI renewal window',
  );
  return { at, windowStart: info.start, windowEnd: info.end, refreshAfterMs: info.retryAfterMs };
}
