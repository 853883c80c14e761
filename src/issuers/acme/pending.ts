/**
 * Crash safety for ACME orders: before an order is finalized, the private key and the order URL
 * are persisted in a companion Secret owned by the managed Secret (garbage-collected with it).
 * After a crash the next issuance resumes that order (downloads a valid order's certificate,
 * finalizes a ready one) instead of placing a new one; the companion is deleted once the managed
 * Secret holds the result, and pending state that no longer fits is deleted.
 */
import { createHash } from 'node:crypto';
import type { AcmeKube, OwnedBy } from './ports.ts';

export const PENDING_SUFFIX = '-cert-rotator-pending';
/** Label on companion Secrets, so they can be found (`kubectl get secret -l ...`). */
export const PENDING_LABEL = 'cert-rotator.io/acme-pending-order';
/** Pending state older than this is not resumed: the order would be a stale surprise. */
export const PENDING_MAX_AGE_MS = 24 * 3_600_000;

export interface PendingOrder {
  orderUrl: string;
  keyPem: string;
  /** Issuer name and directory URL: state of another issuer is never resumed. */
  issuer: string;
  server: string;
  /** Sorted DNS identifiers of the order. */
  names: string[];
  /** ms since the epoch. */
  created: number;
}

/** `<secret>-cert-rotator-pending`, shortened with a hash when it would exceed 253 characters. */
export function pendingSecretName(secretName: string): string {
  const name = `${secretName}${PENDING_SUFFIX}`;
  if (name.length <= 253) return name;
  const hash = createHash('sha256').update(secretName).digest('hex').slice(0, 10);
  return `${secretName.slice(0, 253 - PENDING_SUFFIX.length - 11)}-${hash}${PENDING_SUFFIX}`;
}

/** A companion Secret is ours only with our labels and an owner reference to the managed Secret. */
function ownedBy(secretName: string): OwnedBy {
  return { owner: secretName, label: PENDING_LABEL };
}

export class PendingOrders {
  private readonly kube: AcmeKube;

  constructor(kube: AcmeKube) {
    this.kube = kube;
  }

  async load(namespace: string, secretName: string): Promise<PendingOrder | 'unreadable' | undefined> {
    const s = await this.kube.readSecret(namespace, pendingSecretName(secretName), ownedBy(secretName));
    if (!s) return undefined;
    const d = s.data;
    const created = Date.parse(d.created ?? '');
    if (!d['order-url'] || !d['tls.key'] || !d.issuer || !d.server || Number.isNaN(created)) {
      return 'unreadable';
    }
    return {
      orderUrl: d['order-url'],
      keyPem: d['tls.key'],
      issuer: d.issuer,
      server: d.server,
      names: (d.names ?? '').split(',').filter((n) => n !== ''),
      created,
    };
  }

  async save(namespace: string, secretName: string, order: PendingOrder): Promise<void> {
    const name = pendingSecretName(secretName);
    const data = {
      'tls.key': order.keyPem,
      'order-url': order.orderUrl,
      issuer: order.issuer,
      server: order.server,
      names: order.names.join(','),
      created: new Date(order.created).toISOString(),
    };
    const annotations = {
      'cert-rotator.io/description': `pending ACME order for Secret ${secretName}; deleted once that Secret is written`,
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      const created = await this.kube.createSecret(namespace, name, data, {
        owner: secretName,
        labels: { [PENDING_LABEL]: 'true' },
        annotations,
      });
      if (created) return;
      // A leftover of an earlier attempt: replace it.
      const existing = await this.kube.readSecret(namespace, name, ownedBy(secretName));
      if (
        existing &&
        (await this.kube.updateSecret(
          namespace,
          name,
          existing.resourceVersion,
          data,
          annotations,
          ownedBy(secretName),
        ))
      )
        return;
    }
    throw new Error(`could not persist the pending order in Secret ${namespace}/${name}`);
  }

  async delete(namespace: string, secretName: string): Promise<void> {
    await this.kube.deleteSecret(namespace, pendingSecretName(secretName), ownedBy(secretName));
  }
}
