/**
 * Propagate's question: has every workload that uses a Secret of the issuer rolled out to the
 * trust it now holds? A workload counts as rolled when its pod template carries the certificate
 * hash of the Secrets it uses (the rollout manager's own formula, ca.crt included) and its
 * controller reports every replica updated and ready. Workloads cert-rotator does not restart
 * (`restart: none`, a `restart` list, opted out) are listed as unconfirmed, not waited for.
 */
import type * as k8s from '@kubernetes/client-node';
import { fingerprintOf, rolloutFingerprint } from '../controller/listener.ts';
import type { SecretRecord } from '../controller/record.ts';
import { Annotation, PodTemplateAnnotation, WORKLOAD_OPT_OUT } from '../names.ts';
import { certificateHash } from '../rollout/hash.ts';
import { secretsReferencedBy } from '../rollout/references.ts';

export type Workload =
  | { kind: 'deployment'; object: k8s.V1Deployment }
  | { kind: 'statefulset'; object: k8s.V1StatefulSet }
  | { kind: 'daemonset'; object: k8s.V1DaemonSet };

export interface PropagationReport {
  /** Workloads still to roll out (kind/namespace/name). */
  pending: string[];
  /** Workloads cert-rotator does not restart: their pods may hold the old trust. */
  unconfirmed: string[];
  /** Workloads that have rolled out. */
  rolled: string[];
}

/**
 * Every replica of the current template updated and ready, and (Deployments) none of an older one
 * still terminating, as the workload's controller reports.
 */
export function rolledOut(w: Workload): boolean {
  const meta = w.object.metadata;
  const generation = meta?.generation ?? 0;
  if ((w.object.status?.observedGeneration ?? 0) < generation) return false;
  if (w.kind === 'deployment') {
    const want = w.object.spec?.replicas ?? 1;
    const s = w.object.status;
    // A terminating pod of the old template still runs (its grace period) and still presents and
    // trusts what it started with; `terminatingReplicas` is reported where the API server has it.
    return (
      (s?.updatedReplicas ?? 0) >= want &&
      (s?.readyReplicas ?? 0) >= want &&
      (s?.replicas ?? 0) <= want &&
      (s?.terminatingReplicas ?? 0) === 0
    );
  }
  if (w.kind === 'statefulset') {
    const want = w.object.spec?.replicas ?? 1;
    const s = w.object.status;
    return s?.updateRevision === s?.currentRevision && (s?.readyReplicas ?? 0) >= want;
  }
  const s = w.object.status;
  const want = s?.desiredNumberScheduled ?? 0;
  return (s?.updatedNumberScheduled ?? 0) >= want && (s?.numberReady ?? 0) >= want;
}

/**
 * @param issued names ("namespace/name") of the Secrets whose trust changed
 * @param managed every managed Secret's record in the workloads' namespaces (for the hash)
 * @param defaultRestart the config's `defaults.restart`
 */
export function propagation(
  workloads: readonly Workload[],
  issued: ReadonlySet<string>,
  managed: ReadonlyMap<string, SecretRecord>,
  defaultRestart: string,
): PropagationReport {
  const report: PropagationReport = { pending: [], unconfirmed: [], rolled: [] };
  for (const w of workloads) {
    const ns = w.object.metadata?.namespace ?? '';
    const id = `${w.kind}/${ns}/${w.object.metadata?.name ?? ''}`;
    const template = w.object.spec?.template;
    const uses = secretsReferencedBy(template?.spec).filter((n) => issued.has(`${ns}/${n}`));
    if (uses.length === 0) continue;
    const restartOf = (name: string) =>
      managed.get(`${ns}/${name}`)?.annotations[Annotation.restart] ?? defaultRestart;
    const optedOut = w.object.metadata?.annotations?.[Annotation.restart] === WORKLOAD_OPT_OUT;
    if (optedOut || uses.some((n) => restartOf(n) !== 'auto')) {
      report.unconfirmed.push(id);
      continue;
    }
    // The hash the rollout manager writes: every managed Secret with restart auto that it uses.
    const inputs = secretsReferencedBy(template?.spec).flatMap((name) => {
      const r = managed.get(`${ns}/${name}`);
      if (!r?.cert || restartOf(name) !== 'auto') return [];
      return [{ name, fingerprint: rolloutFingerprint(r, fingerprintOf(r.cert)) }];
    });
    const carried = template?.metadata?.annotations?.[PodTemplateAnnotation.certificateHash];
    if (carried === certificateHash(inputs) && rolledOut(w)) report.rolled.push(id);
    else report.pending.push(id);
  }
  return report;
}
