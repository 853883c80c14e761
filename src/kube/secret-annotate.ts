import type * as k8s from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../names.ts';
import { type CoreV1Api, httpStatus } from './client.ts';
import { PatchType } from './http/api.ts';

/** A Secret, or undefined when there is none by that name. */
export async function readSecret(
  core: CoreV1Api,
  namespace: string,
  name: string,
): Promise<k8s.V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ namespace, name });
  } catch (err) {
    if (httpStatus(err) === 404) return undefined;
    throw err;
  }
}

/**
 * Sets annotations on a Secret with a JSON merge patch (nothing else of the Secret is sent or
 * touched). With `resourceVersion`, the patch fails with 409 if the Secret changed since.
 */
export async function annotateSecret(
  core: CoreV1Api,
  namespace: string,
  name: string,
  annotations: Record<string, string>,
  resourceVersion?: string,
): Promise<k8s.V1Secret> {
  return await core.patchNamespacedSecret(
    {
      namespace,
      name,
      body: { metadata: { annotations, ...(resourceVersion ? { resourceVersion } : {}) } },
      fieldManager: FIELD_MANAGER,
    },
    { contentType: PatchType.merge },
  );
}
