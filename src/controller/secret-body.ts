import { createHash } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { isoSeconds as iso } from '../clock.ts';
import { decodeSecretData, encodeSecretData } from '../kube/client.ts';
import { CertState, SecretKey, StatusAnnotation } from '../names.ts';

/** Longest `last-error` written on a Secret; the event and the log carry the whole message. */
const MAX_ERROR_ANNOTATION = 512;

export { iso };

/** Most order times read from or written to `acme-orders` (maxOrdersPerHour is at most 1000). */
const MAX_ORDER_TIMES = 1000;
const HOUR_MS = 3_600_000;

/** The order times (ms) of the last hour recorded on the Secret; malformed entries are ignored. */
export function recordedOrders(annotations: Record<string, string>, now: number): number[] {
  const text = annotations[StatusAnnotation.acmeOrders];
  if (!text) return [];
  const out: number[] = [];
  for (const item of text.split(',').slice(0, MAX_ORDER_TIMES)) {
    if (!/^\d{1,12}$/.test(item.trim())) continue;
    const ms = Number(item.trim()) * 1000;
    if (ms > now - HOUR_MS && ms <= now + 60_000) out.push(ms);
  }
  return out;
}

function writeOrders(annotations: Record<string, string>, orders: readonly number[] | undefined): void {
  if (orders === undefined) return;
  const seconds = orders.slice(-MAX_ORDER_TIMES).map((ms) => String(Math.floor(ms / 1000)));
  if (seconds.length === 0) delete annotations[StatusAnnotation.acmeOrders];
  else annotations[StatusAnnotation.acmeOrders] = seconds.join(',');
}

/** One base64 value of a Secret's data as text ('' when absent). */
export function decodeData(b64: string | undefined): string {
  return b64 ? (decodeSecretData({ v: b64 }).v ?? '') : '';
}

/** A short digest of a `ca.crt` value (base64 as in the Secret's data) that tells trust sets apart. */
export function trustDigest(b64: string): string {
  return createHash('sha256').update(Buffer.from(b64, 'base64')).digest('hex').slice(0, 32);
}

/** Body (as read, plus changes) for the replace that is guarded by the read's resourceVersion. */
function withChanges(
  fresh: k8s.V1Secret,
  annotations: Record<string, string>,
  data?: Record<string, string>,
) {
  return {
    ...fresh,
    metadata: { ...fresh.metadata, annotations, managedFields: undefined },
    ...(data ? { data } : {}),
  };
}

/**
 * The Secret after a renewal: new tls.crt/tls.key/ca.crt (other keys kept) and the status
 * annotations, in one object so that one replace writes them all or nothing.
 */
export function renewedSecret(
  fresh: k8s.V1Secret,
  newData: Record<string, string>,
  status: {
    notAfter: number;
    renewalTime: number;
    now: number;
    /** The `renew-requested-at` token this renewal answers, recorded so it is not acted on again. */
    requestHandled?: string | undefined;
    /** ACME order times of the last hour, when the issuer counted an order. */
    recentOrders?: readonly number[] | undefined;
    /** The new certificate's fingerprint, when workloads using the Secret are to be rolled to it. */
    restartOwed?: string | undefined;
  },
): k8s.V1Secret {
  const annotations = { ...(fresh.metadata?.annotations ?? {}) };
  const revision = Number.parseInt(annotations[StatusAnnotation.revision] ?? '0', 10);
  annotations[StatusAnnotation.state] = CertState.ready;
  annotations[StatusAnnotation.notAfter] = iso(status.notAfter);
  annotations[StatusAnnotation.renewalTime] = iso(status.renewalTime);
  annotations[StatusAnnotation.lastRenewed] = iso(status.now);
  annotations[StatusAnnotation.revision] = String((Number.isFinite(revision) ? revision : 0) + 1);
  delete annotations[StatusAnnotation.lastError];
  delete annotations[StatusAnnotation.failures];
  delete annotations[StatusAnnotation.lastFailureTime];
  delete annotations[StatusAnnotation.nextAttemptTime];
  if (status.requestHandled !== undefined) {
    annotations[StatusAnnotation.renewRequestHandled] = status.requestHandled;
  }
  writeOrders(annotations, status.recentOrders);
  // Written with the certificate, so a controller that dies before the rollout still owes it.
  if (status.restartOwed !== undefined) annotations[StatusAnnotation.restartOwed] = status.restartOwed;
  else delete annotations[StatusAnnotation.restartOwed];
  const data = { ...(fresh.data ?? {}) };
  Object.assign(data, encodeSecretData(newData));
  // The trust written with this leaf: ca.crt changing later without the leaf rolls the workloads.
  const ca = data[SecretKey.caCertificate];
  if (newData[SecretKey.caCertificate] !== undefined && ca) {
    annotations[StatusAnnotation.trustBaseline] = trustDigest(ca);
  }
  return withChanges(fresh, annotations, data);
}

/** The Secret while a slow issuer (ACME order, CSR) works on it: `state: Issuing`, nothing else. */
export function issuingSecret(fresh: k8s.V1Secret): k8s.V1Secret {
  const annotations = { ...(fresh.metadata?.annotations ?? {}) };
  annotations[StatusAnnotation.state] = CertState.issuing;
  return withChanges(fresh, annotations);
}

/**
 * The Secret after a failed renewal: status annotations only, data untouched. `failures` and
 * `last-failure-time` are what a restarted controller rebuilds the backoff from.
 */
export function failedSecret(
  fresh: k8s.V1Secret,
  message: string,
  failures: number,
  now: number,
  recentOrders?: readonly number[],
  nextAttempt?: number,
): k8s.V1Secret {
  const annotations = { ...(fresh.metadata?.annotations ?? {}) };
  annotations[StatusAnnotation.state] = CertState.failed;
  annotations[StatusAnnotation.lastError] = message.slice(0, MAX_ERROR_ANNOTATION);
  annotations[StatusAnnotation.failures] = String(failures);
  annotations[StatusAnnotation.lastFailureTime] = new Date(now).toISOString();
  if (nextAttempt !== undefined)
    annotations[StatusAnnotation.nextAttemptTime] = new Date(nextAttempt).toISOString();
  writeOrders(annotations, recentOrders);
  return withChanges(fresh, annotations);
}
