import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import {
  decodeSecretData,
  describeApiError,
  httpStatus,
  isNotFound,
  type KubeClients,
} from '../kube/client.ts';
import type { EventRecorder } from '../kube/events.ts';
import { patchPodTemplateAnnotations, WorkloadWatch } from '../kube/workload-watch.ts';
import { FIELD_MANAGER, type RestartKind, SecretKey, StatusAnnotation } from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { type RolloutApi, RolloutManager } from './manager.ts';
import type { WorkloadObject } from './workload-index.ts';

export { type RolloutApi, RolloutManager } from './manager.ts';

export interface Rollouts {
  /** Pass as the SecretController's `listener`. */
  manager: RolloutManager;
  start(): void;
  stop(): Promise<void>;
}

/**
 * The rollout half of the controller: a watch of Deployments, StatefulSets and DaemonSets in the
 * configured namespaces feeding the manager's index, and the manager itself.
 */
export function createRollouts(deps: {
  config: Config;
  clients: KubeClients;
  events: EventRecorder;
  log: Logger;
  metrics: Metrics;
  /** True once the Secret controller has processed its first list. */
  secretsSynced: () => boolean;
  /** With leader election: whether this process leads (only the leader patches). */
  isLeader?: () => boolean;
  clock?: Clock;
}): Rollouts {
  const { config, clients, log } = deps;
  const api = kubeRolloutApi(clients);
  const manager = new RolloutManager({
    api,
    record: (ref, type, reason, message, now) => deps.events.record(ref, type, reason, message, now),
    log,
    metrics: deps.metrics,
    debounceMs: config.rollout.debounceMs,
    secretsSynced: deps.secretsSynced,
    ...(deps.isLeader ? { isLeader: deps.isLeader } : {}),
    ...(deps.clock ? { clock: deps.clock } : {}),
  });
  const ns = config.namespaces;
  const watch = new WorkloadWatch(
    clients.config,
    {
      upsert: (kind, object) => manager.workloadUpserted(kind, object as WorkloadObject),
      remove: (kind, namespace, name) => manager.workloadRemoved(kind, namespace, name),
      synced: () => manager.workloadsSynced(),
      error: (err, retryInMs) =>
        log.warn({ retryInMs, error: describeApiError(err) }, 'workload list/watch failed; retrying'),
    },
    { namespaces: ns === 'all' ? [] : ns, ...(deps.clock ? { clock: deps.clock } : {}) },
  );
  return {
    manager,
    start() {
      manager.start();
      watch.start();
    },
    async stop() {
      watch.stop();
      await manager.stop();
    },
  };
}

export function kubeRolloutApi(clients: KubeClients): RolloutApi {
  const apps = clients.apps;
  const notFound = (err: unknown) => {
    if (isNotFound(err)) return undefined;
    throw err;
  };
  return {
    async read(kind: RestartKind, namespace: string, name: string) {
      const req = { namespace, name };
      switch (kind) {
        case 'deployment':
          return (await apps.readNamespacedDeployment(req).catch(notFound)) as WorkloadObject | undefined;
        case 'statefulset':
          return (await apps.readNamespacedStatefulSet(req).catch(notFound)) as WorkloadObject | undefined;
        case 'daemonset':
          return (await apps.readNamespacedDaemonSet(req).catch(notFound)) as WorkloadObject | undefined;
      }
    },
    patch: (target, annotations) => patchPodTemplateAnnotations(apps, target, annotations),
    async readTlsPair(namespace, name) {
      const s = await clients.core.readNamespacedSecret({ namespace, name }).catch(notFound);
      if (!s) return undefined;
      const data = decodeSecretData(s.data);
      return { certPem: data[SecretKey.certificate] ?? '', keyPem: data[SecretKey.privateKey] ?? '' };
    },
    async setRestartOwed(namespace, name, fingerprint, owed) {
      // A replace guarded by the resourceVersion read (the role grants update, not patch).
      for (let attempt = 0; attempt < 3; attempt++) {
        const s = await clients.core.readNamespacedSecret({ namespace, name }).catch(notFound);
        if (!s) return;
        const annotations = { ...(s.metadata?.annotations ?? {}) };
        const current = annotations[StatusAnnotation.restartOwed];
        if (owed ? current === fingerprint : current !== fingerprint) return;
        if (owed) annotations[StatusAnnotation.restartOwed] = fingerprint;
        else delete annotations[StatusAnnotation.restartOwed];
        try {
          await clients.core.replaceNamespacedSecret({
            namespace,
            name,
            body: { ...s, metadata: { ...s.metadata, annotations, managedFields: undefined } },
            fieldManager: FIELD_MANAGER,
          });
          return;
        } catch (err) {
          if (httpStatus(err) !== 409) throw err;
        }
      }
    },
  };
}
