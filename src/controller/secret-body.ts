import type * as k8s from '@kubernetes/client-node';
import { isoSeconds as iso } from '../clock.ts';
import { CertState, StatusAnnotation } from '../names.ts';

/** Longest `last-error` written on a Secret; the event and the log carry the whole message. */
const MAX_ERROR_ANNOTATION = 512;

export { iso };

export function decodeData(b64: string | undefined): string {
  return b64 ? Buffer.from(b64, 'base64').toString('utf8') : '';
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
  if (status.requestHandled !== undefined) {
    annotations[StatusAnnotation.renewRequestHandled] = status.requestHandled;
  }
  const data = { ...(fresh.data ?? {}) };
  for (const [k, v] of Object.entries(newData)) data[k] = Buffer.from(v, 'utf8').toString('base64');
  return withChanges(fresh, annotations, data);
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
): k8s.V1Secret {
  const annotations = { ...(fresh.metadata?.annotations ?? {}) };
  annotations[StatusAnnotation.state] = CertState.failed;
  annotations[StatusAnnotation.lastError] = message.slice(0, MAX_ERROR_ANNOTATION);
  annotations[StatusAnnotation.failures] = String(failures);
  annotations[StatusAnnotation.lastFailureTime] = new Date(now).toISOString();
  return withChanges(fresh, annotations);
}
