import type * as k8s from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../names.ts';
import { type CoreV1Api, httpStatus, isNotFound } from './client.ts';

/**
 * The Secret reconciler's port (src/controller/ports.ts `SecretApi`) over CoreV1Api. Declared
 * structurally: kube/ does not import the controller.
 */
export function kubeSecretApi(core: CoreV1Api) {
  return {
    async read(namespace: string, name: string): Promise<k8s.V1Secret | undefined> {
      try {
        return await core.readNamespacedSecret({ namespace, name });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async replace(
      body: k8s.V1Secret,
    ): Promise<{ ok: true; resourceVersion: string } | { ok: false; why: 'conflict' | 'gone' }> {
      try {
        const written = await core.replaceNamespacedSecret({
          namespace: body.metadata?.namespace ?? '',
          name: body.metadata?.name ?? '',
          body,
          fieldManager: FIELD_MANAGER,
        });
        return { ok: true, resourceVersion: written.metadata?.resourceVersion ?? '' };
      } catch (err) {
        const status = httpStatus(err);
        if (status === 409) return { ok: false, why: 'conflict' };
        if (status === 404) return { ok: false, why: 'gone' };
        throw err;
      }
    },
    async create(
      body: k8s.V1Secret,
    ): Promise<{ ok: true; resourceVersion: string } | { ok: false; why: 'conflict' }> {
      try {
        const written = await core.createNamespacedSecret({
          namespace: body.metadata?.namespace ?? '',
          body,
          fieldManager: FIELD_MANAGER,
        });
        return { ok: true, resourceVersion: written.metadata?.resourceVersion ?? '' };
      } catch (err) {
        if (httpStatus(err) === 409) return { ok: false, why: 'conflict' };
        throw err;
      }
    },
  };
}
