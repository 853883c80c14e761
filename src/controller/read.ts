/**
 * What does the API server hold now? The controller acts on the Secret as it is, not as the watch
 * last showed it; what it reads here is never put into the watch's records, so the watch event for
 * the same version still shows what changed.
 */
import type * as k8s from '@kubernetes/client-node';
import type { SecretApi } from './ports.ts';
import { recordFromSecret, type SecretRecord } from './record.ts';

export interface Current {
  secret: k8s.V1Secret;
  record: SecretRecord;
}

/**
 * The Secret as read now, with its record; undefined when it no longer exists. This is the read
 * a renewal acts on, so its certificate is cross-checked with OpenSSL (record.ts).
 */
export async function readCurrent(
  api: SecretApi,
  at: { namespace: string; name: string },
): Promise<Current | undefined> {
  const secret = await api.read(at.namespace, at.name);
  return secret ? { secret, record: recordFromSecret(secret, true) } : undefined;
}
