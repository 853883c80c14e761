/**
 * How does a renewal, or a failed attempt, reach the Secret? One replace guarded by the
 * resourceVersion that was read: all of it or nothing, and never over someone else's write.
 */
import type * as k8s from '@kubernetes/client-node';
import { CertState, StatusAnnotation } from '../names.ts';
import type { SecretApi } from './ports.ts';
import type { RenewOutput } from './renew.ts';
import { failedSecret, issuingSecret, renewedSecret } from './secret-body.ts';

export type WriteResult = { ok: true; resourceVersion: string } | { ok: false; why: 'conflict' | 'gone' };

/** Issuers that take seconds to minutes (an ACME order, a CSR waiting for approval). */
const SLOW_ISSUERS: ReadonlySet<string> = new Set(['acme', 'kubernetesCSR']);

/**
 * Before a slow issuer starts: `state: Issuing` on the Secret, so `kubectl get` and `scan` show
 * the attempt in progress. Returns the Secret as written (its new resourceVersion guards the
 * renewal's replace), the Secret as read for a fast issuer, or undefined when someone else wrote
 * it meanwhile (decide again on theirs).
 */
export async function markIssuing(
  api: SecretApi,
  fresh: k8s.V1Secret,
  issuerKind: string,
): Promise<k8s.V1Secret | undefined> {
  if (!SLOW_ISSUERS.has(issuerKind)) return fresh;
  // A look again at a pending attempt (a CSR not approved yet): already marked.
  if (fresh.metadata?.annotations?.[StatusAnnotation.state] === CertState.issuing) return fresh;
  const body = issuingSecret(fresh);
  const result = await api.replace(body);
  if (!result.ok) return undefined;
  return { ...body, metadata: { ...body.metadata, resourceVersion: result.resourceVersion } };
}

/** New tls.crt, tls.key, ca.crt and status annotations in one replace. */
export async function writeRenewal(
  api: SecretApi,
  fresh: k8s.V1Secret,
  output: RenewOutput,
  status: {
    renewalTime: number;
    now: number;
    requestHandled?: string | undefined;
    restartOwed?: string | undefined;
  },
): Promise<WriteResult> {
  return await api.replace(
    renewedSecret(fresh, output.data, {
      notAfter: output.summary.notAfter,
      recentOrders: output.recentOrders,
      ...status,
    }),
  );
}

/** `state: Failed`, `last-error`, `failures`, `last-failure-time`; the data as it was. */
export async function writeFailure(
  api: SecretApi,
  fresh: k8s.V1Secret,
  failure: {
    message: string;
    failures: number;
    now: number;
    nextAttempt: number;
    recentOrders?: readonly number[] | undefined;
  },
): Promise<WriteResult> {
  return await api.replace(
    failedSecret(
      fresh,
      failure.message,
      failure.failures,
      failure.now,
      failure.recentOrders,
      failure.nextAttempt,
    ),
  );
}
