/**
 * How does a renewal, or a failed attempt, reach the Secret? One replace guarded by the
 * resourceVersion that was read: all of it or nothing, and never over someone else's write.
 */
import type * as k8s from '@kubernetes/client-node';
import type { SecretApi } from './ports.ts';
import type { RenewOutput } from './renew.ts';
import { failedSecret, renewedSecret } from './secret-body.ts';

export type WriteResult = { ok: true; resourceVersion: string } | { ok: false; why: 'conflict' | 'gone' };

/** New tls.crt, tls.key, ca.crt and status annotations in one replace. */
export async function writeRenewal(
  api: SecretApi,
  fresh: k8s.V1Secret,
  output: RenewOutput,
  status: { renewalTime: number; now: number; requestHandled?: string | undefined },
): Promise<WriteResult> {
  return await api.replace(
    renewedSecret(fresh, output.data, { notAfter: output.summary.notAfter, ...status }),
  );
}

/** `state: Failed`, `last-error`, `failures`, `last-failure-time`; the data as it was. */
export async function writeFailure(
  api: SecretApi,
  fresh: k8s.V1Secret,
  failure: { message: string; failures: number; now: number },
): Promise<WriteResult> {
  return await api.replace(failedSecret(fresh, failure.message, failure.failures, failure.now));
}
