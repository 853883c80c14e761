/**
 * The order flow: place a new order (naming the replaced certificate when ARI allows),
 * authorize it, persist the key and order URL before finalizing (crash safety), finalize with the
 * Secret's key, download the chain.
 */
import type * as acme from 'acme-client';
import type { Clock } from '../../clock.ts';
import { crashPoint } from '../../fault-injection.ts';
import { certificatesFromPem, toPem } from '../../pki/index.ts';
import type { IssueInput, IssueResult } from '../types.ts';
import { replacesFor } from './ari-suggestion.ts';
import { authorize } from './challenges.ts';
import { type AcmeConnection, AcmeProblem } from './client.ts';
import type { AcmeContext } from './context.ts';
import { createCsrPem } from './csr.ts';
import { PollFailed, poll } from './poll.ts';

/** A new order for `names`, authorized, finalized with the Secret's key and downloaded. */
export async function placeOrder(
  ctx: AcmeContext,
  conn: AcmeConnection,
  input: IssueInput,
  names: string[],
  deadline: number,
): Promise<IssueResult> {
  const newOrder = await conn.resource('newOrder');
  if (!newOrder) throw new Error('the ACME directory has no newOrder');
  const identifiers = names.map((value) => ({ type: 'dns', value }));
  const replaces = await replacesFor(ctx, conn, input);
  let created: Awaited<ReturnType<AcmeConnection['post']>>;
  try {
    created = await conn.post(
      'newOrder',
      newOrder,
      { identifiers, ...(replaces ? { replaces } : {}) },
      [201],
    );
  } catch (err) {
    // A CA that will not take this certificate as replaced (already replaced, other account)
    // still issues a plain new order.
    if (!replaces || !(err instanceof AcmeProblem)) throw err;
    ctx.log.info({ issuer: ctx.name, replaces, error: err.message }, 'order without ARI replaces');
    created = await conn.post('newOrder', newOrder, { identifiers }, [201]);
  }
  const orderUrl = created.headers.location;
  if (!orderUrl) throw new Error('newOrder returned no order URL');
  let order = created.data as acme.Order;
  if (order.status === 'pending') await authorize(ctx, conn, input, order, names, deadline);

  order = await poll(conn, 'order', orderUrl, deadline, ctx.clock, (o: acme.Order) =>
    o.status === 'ready' || o.status === 'valid' ? 'done' : o.status === 'invalid' ? 'failed' : 'pending',
  );
  let persisted = false;
  if (order.status === 'ready') {
    // Crash safety: the key and order URL are stored before the CA may issue for this key.
    await ctx.pending.save(input.namespace, input.secretName, {
      orderUrl,
      keyPem: input.keyPem,
      issuer: ctx.name,
      server: ctx.config.server,
      names: [...names].sort(),
      created: ctx.clock.now(),
    });
    persisted = true;
    try {
      order = await finalize(conn, orderUrl, order, input.keyPem, names, deadline, ctx.clock);
    } catch (err) {
      // An order that became invalid cannot be resumed; anything else (timeout) may be.
      if (err instanceof PollFailed || err instanceof AcmeProblem) {
        await ctx.pending.delete(input.namespace, input.secretName).catch(() => undefined);
      }
      throw err;
    }
  }
  if (!order.certificate) throw new Error(`order ${orderUrl} is valid but names no certificate`);
  const result = await download(conn, order.certificate);
  return persisted
    ? { ...result, afterWrite: () => ctx.pending.delete(input.namespace, input.secretName) }
    : result;
}

export async function finalize(
  conn: AcmeConnection,
  orderUrl: string,
  order: acme.Order,
  keyPem: string,
  names: string[],
  deadline: number,
  clock: Clock,
): Promise<acme.Order> {
  const csr = await createCsrPem(keyPem, names);
  const fin = await conn.post('finalize', order.finalize, { csr: csrToB64u(csr) }, [200]);
  crashPoint('finalize');
  const finalized = fin.data as acme.Order;
  return finalized.status === 'valid' ? finalized : await waitValid(conn, orderUrl, deadline, clock);
}

export function waitValid(
  conn: AcmeConnection,
  orderUrl: string,
  deadline: number,
  clock: Clock,
): Promise<acme.Order> {
  return poll(conn, 'order', orderUrl, deadline, clock, (o: acme.Order) =>
    o.status === 'valid' ? 'done' : o.status === 'invalid' ? 'failed' : 'pending',
  );
}

export async function download(conn: AcmeConnection, url: string): Promise<IssueResult> {
  const cert = await conn.post('certificate', url, null, [200]);
  return chainResult(String(cert.data));
}

function csrToB64u(csrPem: string): string {
  const der = certificatesFromPemLike(csrPem);
  return Buffer.from(der).toString('base64url');
}

function certificatesFromPemLike(pem: string): Uint8Array {
  const body = pem.replace(/-----(BEGIN|END)[^-]+-----/g, '').replace(/\s+/g, '');
  return Buffer.from(body, 'base64');
}

function chainResult(chainPem: string): IssueResult {
  const ders = certificatesFromPem(chainPem);
  if (ders.length === 0) throw new Error('the CA returned no certificate');
  const pems = ders.map((d) => toPem('CERTIFICATE', d));
  return { chainPem: pems.join(''), caPem: pems[pems.length - 1] ?? '' };
}
