/**
 * The trust outputs of a `ca` issuer that a rollover widens and narrows: the `ca.crt` of every
 * Secret it issued (its trust bundles: bundles.ts). Each writer returns how many outputs differed from
 * the trust set (written now, or conflicting and tried again at the next look): a phase moves
 * on only at a look that finds none, so what the cluster holds decides, not what was sent.
 */
import type * as k8s from '@kubernetes/client-node';
import { decodeData, trustDigest } from '../controller/secret-body.ts';
import { crashPoint } from '../fault-injection.ts';
import { httpStatus, type KubeClients } from '../kube/client.ts';
import { FIELD_MANAGER, SecretKey, StatusAnnotation } from '../names.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');

/**
 * Writes `trust` to the ca.crt of every Secret that holds something else. The trust baseline is
 * set first where none is recorded, so the change rolls the workloads (docs/rollouts.md).
 */
export async function spreadTrust(
  clients: Pick<KubeClients, 'core'>,
  secrets: readonly k8s.V1Secret[],
  trust: string,
): Promise<number> {
  let left = 0;
  for (const s of secrets) {
    const current = s.data?.[SecretKey.caCertificate];
    if (decodeData(current) === trust) continue;
    left++;
    const annotations = { ...(s.metadata?.annotations ?? {}) };
    annotations[StatusAnnotation.trustBaseline] ??= current ? trustDigest(current) : '';
    try {
      await clients.core.replaceNamespacedSecret({
        namespace: s.metadata?.namespace ?? '',
        name: s.metadata?.name ?? '',
        body: {
          ...s,
          data: { ...s.data, [SecretKey.caCertificate]: b64(trust) },
          metadata: { ...s.metadata, annotations, managedFields: undefined },
        },
        fieldManager: FIELD_MANAGER,
      });
      crashPoint('rollover-trust-write');
    } catch (err) {
      if (httpStatus(err) !== 409) throw err;
    }
  }
  return left;
}
