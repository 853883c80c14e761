import type * as k8s from '@kubernetes/client-node';
import type { Clock } from '../clock.ts';
import { FIELD_MANAGER, type RestartKind } from '../names.ts';
import { type AppsV1Api, httpStatus } from './client.ts';
import { PatchType } from './http/api.ts';
import type { KubeTransport } from './http/transport.ts';
import { collectionPath, ListWatch } from './list-watch.ts';

/** A Deployment, StatefulSet or DaemonSet as a list or watch delivers it (not retained here). */
export type WorkloadObject = k8s.V1Deployment | k8s.V1StatefulSet | k8s.V1DaemonSet;

export interface WorkloadWatchHandlers {
  upsert(kind: RestartKind, object: WorkloadObject): void;
  remove(kind: RestartKind, namespace: string, name: string): void;
  /** Every kind in every watched namespace has been listed once. */
  synced?(): void;
  error?(err: unknown, retryInMs: number): void;
}

export interface WorkloadWatchOptions {
  /** Namespaces to watch; empty = all namespaces. */
  namespaces: string[];
  pageSize?: number;
  clock?: Clock;
  watchTimeoutSeconds?: number;
}

const RESOURCE: Record<RestartKind, string> = {
  deployment: 'deployments',
  statefulset: 'statefulsets',
  daemonset: 'daemonsets',
};

/** List + watch of apps/v1 Deployments, StatefulSets and DaemonSets, one stream per kind and namespace. */
export class WorkloadWatch {
  private readonly inner: ListWatch<WorkloadObject, RestartKind>;

  constructor(config: KubeTransport, handlers: WorkloadWatchHandlers, options: WorkloadWatchOptions) {
    const nss = options.namespaces.length > 0 ? options.namespaces : [undefined];
    const streams = (Object.keys(RESOURCE) as RestartKind[]).flatMap((kind) =>
      nss.map((ns) => ({ path: collectionPath('/apis/apps/v1', RESOURCE[kind], ns), tag: kind })),
    );
    this.inner = new ListWatch<WorkloadObject, RestartKind>(
      config,
      streams,
      {
        ...handlers,
        upsert: (object, kind) => handlers.upsert(kind, object),
        remove: (namespace, name, kind) => handlers.remove(kind, namespace, name),
      },
      options,
    );
  }

  start(): void {
    this.inner.start();
  }

  stop(): void {
    this.inner.stop();
  }
}

/** Outcome of a pod-template patch. */
export type PatchOutcome =
  | { ok: true; generation: number; resourceVersion: string }
  | { ok: false; status: 'conflict' | 'gone' };

/**
 * Sets annotations on a workload's pod template with a strategic-merge patch, guarded by
 * `resourceVersion` (a stale view gets 409, never a blind write). Other errors throw.
 */
export async function patchPodTemplateAnnotations(
  apps: AppsV1Api,
  target: { kind: RestartKind; namespace: string; name: string; resourceVersion?: string },
  annotations: Record<string, string>,
): Promise<PatchOutcome> {
  const body = {
    metadata: target.resourceVersion ? { resourceVersion: target.resourceVersion } : {},
    spec: { template: { metadata: { annotations } } },
  };
  const req = { namespace: target.namespace, name: target.name, body, fieldManager: FIELD_MANAGER };
  const options = { contentType: PatchType.strategicMerge };
  try {
    let result: WorkloadObject;
    switch (target.kind) {
      case 'deployment':
        result = await apps.patchNamespacedDeployment(req, options);
        break;
      case 'statefulset':
        result = await apps.patchNamespacedStatefulSet(req, options);
        break;
      case 'daemonset':
        result = await apps.patchNamespacedDaemonSet(req, options);
        break;
    }
    return {
      ok: true,
      generation: result.metadata?.generation ?? 0,
      resourceVersion: result.metadata?.resourceVersion ?? '',
    };
  } catch (err) {
    const status = httpStatus(err);
    if (status === 409) return { ok: false, status: 'conflict' };
    if (status === 404) return { ok: false, status: 'gone' };
    throw err;
  }
}
