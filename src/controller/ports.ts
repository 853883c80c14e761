/**
 * What the Secret reconciler needs from outside, and nothing more: read a Secret, replace it
 * guarded by the resourceVersion it was read at, and record an Event. `kube/secret-api.ts`
 * implements them over the API server; unit tests use fakes of these ports.
 */
import type * as k8s from '@kubernetes/client-node';
import type { ObjectRef } from '../kube/events.ts';

export type { ObjectRef } from '../kube/events.ts';

export interface SecretApi {
  /** The Secret as the API server holds it now; undefined when it does not exist. */
  read(namespace: string, name: string): Promise<k8s.V1Secret | undefined>;
  /**
   * Replaces the Secret with `body`, guarded by `body.metadata.resourceVersion`. `conflict`: someone
   * wrote it after that version (409); `gone`: it was deleted (404). Other errors are thrown.
   */
  replace(
    body: k8s.V1Secret,
  ): Promise<{ ok: true; resourceVersion: string } | { ok: false; why: 'conflict' | 'gone' }>;
  /** Creates the Secret; `conflict`: one of that name exists already (409). Other errors are thrown. */
  create(body: k8s.V1Secret): Promise<{ ok: true; resourceVersion: string } | { ok: false; why: 'conflict' }>;
}

export interface EventSink {
  record(
    ref: ObjectRef,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    now?: number,
    options?: { dedupKey?: string },
  ): Promise<void>;
}
