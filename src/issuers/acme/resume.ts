/** Recovery of the ACME order persisted before a crash (see pending.ts). */
import type * as acme from 'acme-client';
import { certificatesFromPem, inspectPrivateKey, readCertificateSummary } from '../../pki/index.ts';
import type { IssueInput, IssueResult } from '../types.ts';
import { type AcmeConnection, AcmeProblem } from './client.ts';
import type { AcmeContext } from './context.ts';
import { download, finalize, waitValid } from './order.ts';
import { PENDING_MAX_AGE_MS } from './pending.ts';

/**
 * Resumes the order persisted before a crash, if it still fits: a valid order's certificate is
 * downloaded, a ready one finalized, a processing one polled, all with the persisted key.
 * Pending state that does not fit (other issuer or names, too old, order gone, invalid or
 * still pending) is deleted and undefined returned: a new order is placed.
 */
export async function resumePendingOrder(
  ctx: AcmeContext,
  conn: AcmeConnection,
  input: IssueInput,
  names: string[],
  deadline: number,
): Promise<IssueResult | undefined> {
  const { namespace, secretName } = input;
  const saved = await ctx.pending.load(namespace, secretName);
  if (saved === undefined) return undefined;
  const drop = async (why: string) => {
    ctx.log.info(
      { issuer: ctx.name, secret: `${namespace}/${secretName}`, why },
      'discarding pending ACME order state',
    );
    await ctx.pending.delete(namespace, secretName);
    return undefined;
  };
  if (saved === 'unreadable') return drop('companion Secret is incomplete');
  if (saved.issuer !== ctx.name || saved.server !== ctx.config.server) return drop('other issuer');
  if (saved.names.join(',') !== [...names].sort().join(',')) return drop('names changed');
  if (ctx.clock.now() - saved.created > PENDING_MAX_AGE_MS) return drop('older than 24h');
  let spki: string;
  try {
    spki = inspectPrivateKey(saved.keyPem).spkiSha256;
  } catch {
    return drop('persisted key is unusable');
  }
  let order: acme.Order;
  try {
    order = (await conn.post('order', saved.orderUrl, null, [200])).data as acme.Order;
  } catch (err) {
    if (err instanceof AcmeProblem) return drop(`order answered ${err.message}`);
    throw err;
  }
  if (order.status === 'ready') {
    order = await finalize(conn, saved.orderUrl, order, saved.keyPem, names, deadline, ctx.clock);
  } else if (order.status === 'processing') {
    order = await waitValid(conn, saved.orderUrl, deadline, ctx.clock);
  } else if (order.status !== 'valid') {
    return drop(`order is ${order.status}`);
  }
  if (!order.certificate) return drop('valid order names no certificate');
  const result = await download(conn, order.certificate);
  const leaf = certificatesFromPem(result.chainPem)[0];
  if (!leaf || readCertificateSummary(leaf).publicKeySha256 !== spki) {
    return drop('certificate does not certify the persisted key');
  }
  ctx.log.info(
    { issuer: ctx.name, secret: `${namespace}/${secretName}`, order: saved.orderUrl },
    'resumed the ACME order persisted before a restart',
  );
  return {
    ...result,
    keyPem: saved.keyPem,
    afterWrite: () => ctx.pending.delete(namespace, secretName),
  };
}
