/**
 * How does a renewed CA reach the cluster when it must not replace the active one? It is written
 * to the staged Secret (`NAME-next`, created or replaced, only if cert-rotator staged it before),
 * then `next-ca` on the CA Secret hands it to the CA rollover, in a replace guarded by the
 * resourceVersion read. tls.crt and tls.key of the CA Secret are never touched here.
 */
import type * as k8s from '@kubernetes/client-node';
import {
  caSecretStaged,
  stagedData,
  stagedNameProblem,
  stagedOwnerProblem,
  stagedSecret,
} from './managed-ca.ts';
import type { SecretApi } from './ports.ts';
import { RenewFailure, type RenewOutput } from './renew.ts';
import type { WriteResult } from './write.ts';

/**
 * Stages `output` in `stagedName` beside the CA Secret `fresh` and points the CA Secret at it.
 * Throws a RenewFailure when the staged name cannot be used (a failed attempt, recorded as such).
 */
export async function stageRenewedCa(
  api: SecretApi,
  fresh: k8s.V1Secret,
  stagedName: string,
  output: RenewOutput,
  requestHandled: string | undefined,
): Promise<WriteResult> {
  const namespace = fresh.metadata?.namespace ?? '';
  const caName = fresh.metadata?.name ?? '';
  const nameProblem = stagedNameProblem(stagedName);
  if (nameProblem !== undefined) throw new RenewFailure('ISSUER_FAILED', nameProblem);
  const existing = await api.read(namespace, stagedName);
  const ownerProblem = stagedOwnerProblem(existing, caName);
  if (ownerProblem !== undefined) throw new RenewFailure('ISSUER_FAILED', ownerProblem);
  const body = stagedSecret(namespace, stagedName, caName, stagedData(output), existing);
  const staged = existing ? await api.replace(body) : await api.create(body);
  if (!staged.ok) return { ok: false, why: 'conflict' };
  return await api.replace(caSecretStaged(fresh, stagedName, requestHandled));
}
