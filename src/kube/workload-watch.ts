import * as k8s from '@kubernetes/client-node';
import { type Clock, systemClock } from '../clock.ts';
import { FIELD_MANAGER, type RestartKind } from '../names.ts';
import { httpStatus } from './client.ts';

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

interface Stream {
  kind: RestartKind;
  namespace: string | undefined;
  /** "namespace/name" → resourceVersion of every object delivered. */
  known: Map<string, string>;
  resourceVersion: string;
  abort?: AbortController;
  failures: number;
  timer?: unknown;
}

interface Page {
  items: WorkloadObject[];
  metadata?: k8s.V1ListMeta;
}

/**
 * List + watch of apps/v1 Deployments, StatefulSets and DaemonSets, one stream per kind and
 * namespace, listed in pages. As SecretWatch: a watch that ends is re-opened from the last
 * resourceVersion; 410 Gone relists (and reports what vanished meanwhile); other errors relist
 * after capped exponential backoff. Keeps only names and resourceVersions.
 */
export class WorkloadWatch {
  private readonly streams: Stream[] = [];
  private readonly clock: Clock;
  private readonly apps: k8s.AppsV1Api;
  private stopped = false;
  private unsynced: number;
  private readonly config: k8s.KubeConfig;
  private readonly handlers: WorkloadWatchHandlers;
  private readonly options: WorkloadWatchOptions;

  constructor(config: k8s.KubeConfig, handlers: WorkloadWatchHandlers, options: WorkloadWatchOptions) {
    this.config = config;
    this.handlers = handlers;
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.apps = config.makeApiClient(k8s.AppsV1Api);
    const nss = options.namespaces.length > 0 ? options.namespaces : [undefined];
    for (const kind of Object.keys(RESOURCE) as RestartKind[]) {
      for (const namespace of nss) {
        this.streams.push({ kind, namespace, known: new Map(), resourceVersion: '', failures: 0 });
      }
    }
    this.unsynced = this.streams.length;
  }

  start(): void {
    for (const s of this.streams) void this.listAndWatch(s, true);
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.streams) {
      s.abort?.abort();
      if (s.timer !== undefined) this.clock.clearTimeout(s.timer);
    }
  }

  private path(s: Stream): string {
    const ns = s.namespace ? `/namespaces/${encodeURIComponent(s.namespace)}` : '';
    return `/apis/apps/v1${ns}/${RESOURCE[s.kind]}`;
  }

  private async listPage(s: Stream, cont: string | undefined): Promise<Page> {
    const params = { limit: this.options.pageSize ?? 500, _continue: cont };
    const ns = s.namespace;
    switch (s.kind) {
      case 'deployment':
        return ns
          ? await this.apps.listNamespacedDeployment({ namespace: ns, ...params })
          : await this.apps.listDeploymentForAllNamespaces(params);
      case 'statefulset':
        return ns
          ? await this.apps.listNamespacedStatefulSet({ namespace: ns, ...params })
          : await this.apps.listStatefulSetForAllNamespaces(params);
      case 'daemonset':
        return ns
          ? await this.apps.listNamespacedDaemonSet({ namespace: ns, ...params })
          : await this.apps.listDaemonSetForAllNamespaces(params);
    }
  }

  private async listAndWatch(s: Stream, initial: boolean): Promise<void> {
    if (this.stopped) return;
    try {
      await this.list(s);
      s.failures = 0;
      if (initial) {
        initial = false;
        this.unsynced--;
        if (this.unsynced === 0) this.handlers.synced?.();
      }
      await this.watch(s);
    } catch (err) {
      this.retry(s, err, initial);
    }
  }

  private retry(s: Stream, err: unknown, initial: boolean): void {
    if (this.stopped) return;
    s.failures++;
    const delay = Math.min(30_000, 250 * 2 ** Math.min(s.failures - 1, 7)) * (0.5 + Math.random() / 2);
    this.handlers.error?.(err, Math.round(delay));
    s.timer = this.clock.setTimeout(() => {
      s.timer = undefined;
      void this.listAndWatch(s, initial);
    }, delay);
  }

  private async list(s: Stream): Promise<void> {
    const seen = new Map<string, string>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.listPage(s, cont);
      for (const item of page.items) {
        const key = keyOf(item);
        const itemRv = item.metadata?.resourceVersion ?? '';
        seen.set(key, itemRv);
        if (s.known.get(key) !== itemRv) this.handlers.upsert(s.kind, item);
      }
      cont = page.metadata?._continue || undefined;
      rv = page.metadata?.resourceVersion ?? rv;
    } while (cont && !this.stopped);
    for (const key of s.known.keys()) {
      if (!seen.has(key)) {
        const i = key.indexOf('/');
        this.handlers.remove(s.kind, key.slice(0, i), key.slice(i + 1));
      }
    }
    s.known = seen;
    s.resourceVersion = rv;
  }

  /** Resolves when stopped; throws to request a relist after backoff. */
  private async watch(s: Stream): Promise<void> {
    const watcher = new k8s.Watch(this.config);
    for (;;) {
      if (this.stopped) return;
      const outcome = await new Promise<'reopen' | 'relist'>((resolve, reject) => {
        let settled = false;
        const finish = (v: 'reopen' | 'relist' | Error) => {
          if (settled) return;
          settled = true;
          if (v instanceof Error) reject(v);
          else resolve(v);
        };
        watcher
          .watch(
            this.path(s),
            {
              resourceVersion: s.resourceVersion,
              allowWatchBookmarks: true,
              timeoutSeconds: this.options.watchTimeoutSeconds ?? 300,
            },
            (phase: string, obj: WorkloadObject & { code?: number; message?: string }) => {
              if (phase === 'ERROR') {
                s.abort?.abort();
                finish(obj.code === 410 ? 'relist' : new Error(`watch error: ${obj.message ?? obj.code}`));
                return;
              }
              const rv = obj.metadata?.resourceVersion;
              if (rv) s.resourceVersion = rv;
              if (phase === 'BOOKMARK') return;
              const key = keyOf(obj);
              if (phase === 'DELETED') {
                s.known.delete(key);
                this.handlers.remove(s.kind, obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
              } else {
                s.known.set(key, rv ?? '');
                this.handlers.upsert(s.kind, obj);
              }
            },
            (err: unknown) => {
              if (this.stopped) return finish('reopen');
              if (err && !isAbort(err)) {
                finish(
                  httpStatus(err) === 410 ? 'relist' : err instanceof Error ? err : new Error(String(err)),
                );
              } else finish('reopen');
            },
          )
          .then((abort) => {
            s.abort = abort;
            if (this.stopped) abort.abort();
          }, finish);
      });
      if (outcome === 'relist') await this.list(s);
      s.failures = 0;
    }
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
  apps: k8s.AppsV1Api,
  target: { kind: RestartKind; namespace: string; name: string; resourceVersion?: string },
  annotations: Record<string, string>,
): Promise<PatchOutcome> {
  const body = {
    metadata: target.resourceVersion ? { resourceVersion: target.resourceVersion } : {},
    spec: { template: { metadata: { annotations } } },
  };
  const req = { namespace: target.namespace, name: target.name, body, fieldManager: FIELD_MANAGER };
  const options = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch);
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

function keyOf(o: WorkloadObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || /aborted/i.test(err.message));
}
