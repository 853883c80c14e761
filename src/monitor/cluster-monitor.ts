/**
 * The monitor in the controller: lists and watches every enabled source, keeps one summary per
 * object that holds certificates (never the object), exports them as the x509 family, and
 * writes a Warning Event on an object the first time one of its values cannot be read.
 */
import type { KeystorePassword, MonitoringConfig, WebhookKind } from '../config/monitoring.ts';
import type { SecretKeyRef } from '../config/schema.ts';
import type { ObjectRef } from '../kube/events.ts';
import type { KubeTransport } from '../kube/http/transport.ts';
import { collectionPath, ListWatch, type StreamSpec } from '../kube/list-watch.ts';
import { EventReason, X509Source } from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import type { Registry } from '../observability/prom.ts';
import { registerX509Metrics } from './metrics.ts';
import {
  type PasswordResult,
  type RawObject,
  summarizeApiService,
  summarizeConfigMap,
  summarizeCrd,
  summarizeSecret,
  summarizeWebhookConfiguration,
} from './objects.ts';
import { keyMatcher, type ObjectSummary } from './summary.ts';

/** Reads one key of a Secret (a keystore password kept elsewhere); undefined when absent. */
export type SecretValueReader = (namespace: string, name: string, key: string) => Promise<string | undefined>;

export interface EventSink {
  record(ref: ObjectRef, type: 'Warning', reason: string, message: string): Promise<void>;
}

export interface ClusterMonitorOptions {
  transport: KubeTransport;
  config: MonitoringConfig;
  registry: Registry;
  log: Logger;
  events?: EventSink;
  /** Events are written by the leader only (every replica exports metrics). */
  isLeader?: () => boolean;
  readSecretValue?: SecretValueReader;
  pageSize?: number;
}

export type Processor = (o: RawObject) => ObjectSummary | undefined | Promise<ObjectSummary | undefined>;

interface Kind {
  apiVersion: string;
  kind: string;
}

export interface StreamTag {
  kind: Kind;
  /** Each source reading this stream: its store prefix and how it summarises an object. */
  processors: Array<{ source: string; process: Processor }>;
}

const PASSWORD_CACHE_MS = 60_000;

const WEBHOOK_STREAMS: Record<WebhookKind, { path: string; kind: Kind; process: Processor }> = {
  ValidatingWebhookConfiguration: {
    path: '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations',
    kind: { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration' },
    process: (o) => summarizeWebhookConfiguration(X509Source.validatingWebhook, o),
  },
  MutatingWebhookConfiguration: {
    path: '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
    kind: { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' },
    process: (o) => summarizeWebhookConfiguration(X509Source.mutatingWebhook, o),
  },
  APIService: {
    path: '/apis/apiregistration.k8s.io/v1/apiservices',
    kind: { apiVersion: 'apiregistration.k8s.io/v1', kind: 'APIService' },
    process: summarizeApiService,
  },
  CustomResourceDefinition: {
    path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
    kind: { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition' },
    process: summarizeCrd,
  },
};

/**
 * The collections to list and watch for the enabled sources, each with the sources that read it
 * (two sources with the same path and selectors share one stream). `namespace` narrows every
 * namespaced source to one namespace and leaves out the cluster-scoped ones (`scan -n`).
 */
export function monitorStreams(
  c: MonitoringConfig,
  externalPassword: (p: { secret: SecretKeyRef }) => Promise<PasswordResult>,
  namespace?: string,
): StreamSpec<StreamTag>[] {
  const namespacesOf = (configured: string[] | 'all') =>
    namespace ? [namespace] : configured === 'all' ? [undefined] : configured;
  const byStream = new Map<string, StreamSpec<StreamTag>>();
  const add = (
    path: string,
    kind: Kind,
    source: string,
    process: Processor,
    labelSelector?: string,
    fieldSelector?: string,
  ) => {
    const id = `${path}?${labelSelector ?? ''}&${fieldSelector ?? ''}`;
    let spec = byStream.get(id);
    if (!spec) {
      spec = {
        path,
        ...(labelSelector ? { labelSelector } : {}),
        ...(fieldSelector ? { fieldSelector } : {}),
        tag: { kind, processors: [] },
      };
      byStream.set(id, spec);
    }
    spec.tag.processors.push({ source, process });
  };
  const secretKind = { apiVersion: 'v1', kind: 'Secret' };
  const secretSources = [
    [c.secrets, X509Source.secret, 'pem'],
    [c.keystores, X509Source.keystore, 'keystore'],
    [c.kubeconfigs, X509Source.kubeconfig, 'kubeconfig'],
  ] as const;
  for (const [sc, source, format] of secretSources) {
    if (!sc.enabled) continue;
    const matches = keyMatcher(sc.keys);
    const password = source === X509Source.keystore ? c.keystores.password : undefined;
    const process: Processor =
      source !== X509Source.keystore
        ? (o) => summarizeSecret(source, o, matches, format)
        : password && 'secret' in password
          ? async (o) => {
              const pw = await externalPassword(password);
              return summarizeSecret(source, o, matches, format, () => pw);
            }
          : (o) => summarizeSecret(source, o, matches, format, (data) => samePassword(password, data));
    const fieldSelector = sc.excludeTypes.map((t) => `type!=${t}`).join(',');
    for (const ns of namespacesOf(sc.namespaces))
      add(
        collectionPath('/api/v1', 'secrets', ns),
        secretKind,
        source,
        process,
        sc.labelSelector,
        fieldSelector || undefined,
      );
  }
  if (c.configMaps.enabled) {
    const matches = keyMatcher(c.configMaps.keys);
    for (const ns of namespacesOf(c.configMaps.namespaces))
      add(
        collectionPath('/api/v1', 'configmaps', ns),
        { apiVersion: 'v1', kind: 'ConfigMap' },
        X509Source.configMap,
        (o) => summarizeConfigMap(o, matches),
        c.configMaps.labelSelector,
      );
  }
  if (c.webhooks.enabled && !namespace) {
    for (const k of c.webhooks.kinds) {
      const w = WEBHOOK_STREAMS[k];
      add(w.path, w.kind, k, w.process, c.webhooks.labelSelector);
    }
  }
  return [...byStream.values()];
}

/** Whether any source of the section is on (the controller starts a monitor only then). */
export function monitoringEnabled(c: MonitoringConfig): boolean {
  return (
    c.secrets.enabled ||
    c.configMaps.enabled ||
    c.keystores.enabled ||
    c.kubeconfigs.enabled ||
    c.webhooks.enabled
  );
}

export class ClusterMonitor {
  private readonly summaries = new Map<string, ObjectSummary>();
  /**
   * The sequence number of each object's latest change: an asynchronous read (a password from
   * another Secret) is stored only if no change or deletion came after it.
   */
  private readonly generations = new Map<string, number>();
  private sequence = 0;
  private readonly passwords = new Map<string, { at: number; value: Promise<PasswordResult> }>();
  /** Events a standby could not write: written when it becomes the leader (`leading()`). */
  private readonly pendingEvents = new Map<string, { ref: ObjectRef; message: string }>();
  private readonly watch: ListWatch<RawObject, StreamTag>;
  private readonly o: ClusterMonitorOptions;
  private isSynced = false;

  constructor(o: ClusterMonitorOptions) {
    this.o = o;
    registerX509Metrics(o.registry, () => this.summaries.values());
    this.watch = new ListWatch<RawObject, StreamTag>(
      o.transport,
      monitorStreams(o.config, (p) => this.externalPassword(p)),
      {
        upsert: (obj, tag) => this.upsert(obj, tag),
        remove: (ns, name, tag) => {
          for (const p of tag.processors) this.forget(`${p.source}|${ns}/${name}`);
        },
        synced: () => {
          this.isSynced = true;
          o.log.info({ objects: this.summaries.size }, 'certificate monitor: first list complete');
        },
        error: (err, retryInMs) =>
          o.log.warn(
            { error: err instanceof Error ? err.message : String(err), retryInMs },
            'certificate monitor: list/watch failed',
          ),
      },
      o.pageSize ? { pageSize: o.pageSize } : {},
    );
  }

  start(): void {
    this.watch.start();
  }

  stop(): void {
    this.watch.stop();
  }

  /** Leadership gained: the events of problems found while standing by are written now. */
  leading(): void {
    const pending = [...this.pendingEvents.values()];
    this.pendingEvents.clear();
    for (const e of pending) this.writeEvent(e.ref, e.message);
  }

  synced(): boolean {
    return this.isSynced;
  }

  /** Current summaries (tests, scan). */
  all(): ObjectSummary[] {
    return [...this.summaries.values()];
  }

  private upsert(obj: RawObject, tag: StreamTag): void {
    const ns = obj.metadata?.namespace ?? '';
    const name = obj.metadata?.name ?? '';
    for (const p of tag.processors) {
      const id = `${p.source}|${ns}/${name}`;
      const generation = ++this.sequence;
      // Only pending asynchronous reads are tracked; a synchronous one cancels any of them.
      this.generations.delete(id);
      let result: ReturnType<Processor>;
      try {
        result = p.process(obj);
      } catch (err) {
        // The readers turn bad input into problems; anything else is a bug, kept to this object.
        this.o.log.error(
          { object: `${ns}/${name}`, error: String(err) },
          'certificate monitor: cannot summarise',
        );
        continue;
      }
      if (result instanceof Promise) {
        this.generations.set(id, generation);
        void result.then(
          (s) => {
            if (this.generations.get(id) !== generation) return;
            this.generations.delete(id);
            this.store(id, s, obj, tag.kind);
          },
          (err) => {
            if (this.generations.get(id) === generation) this.generations.delete(id);
            this.o.log.error(
              { object: `${ns}/${name}`, error: String(err) },
              'certificate monitor: cannot summarise',
            );
          },
        );
      } else this.store(id, result, obj, tag.kind);
    }
  }

  private forget(id: string): void {
    this.summaries.delete(id);
    this.generations.delete(id);
    this.pendingEvents.delete(id);
  }

  private store(id: string, summary: ObjectSummary | undefined, obj: RawObject, kind: Kind): void {
    const before = this.summaries.get(id);
    if (!summary) {
      this.summaries.delete(id);
      this.pendingEvents.delete(id);
      return;
    }
    if (summary.problems.length === 0) this.pendingEvents.delete(id);
    const labels = this.o.config.copyLabels;
    if (labels.length > 0) {
      const own = obj.metadata?.labels ?? {};
      const copied: Array<[string, string]> = [];
      for (const l of labels) {
        const v = own[l.key];
        if (typeof v === 'string') copied.push([l.name, v]);
      }
      if (copied.length > 0) summary.labels = copied;
    }
    this.summaries.set(id, summary);
    const known = new Set(before?.problems.map((p) => `${p.key}|${p.reason}`) ?? []);
    const fresh = summary.problems.filter((p) => !known.has(`${p.key}|${p.reason}`));
    if (fresh.length === 0) return;
    const where = summary.namespace ? `${summary.namespace}/${summary.name}` : summary.name;
    for (const p of fresh)
      this.o.log.warn({ source: summary.source, object: where, key: p.key, reason: p.reason }, p.message);
    if (!this.o.events) return;
    const message = fresh.map((p) => `${p.key}: ${p.message}`).join('; ');
    const ref: ObjectRef = {
      ...kind,
      // Events live in a namespace; those of cluster-scoped objects go to "default".
      namespace: summary.namespace || 'default',
      name: summary.name,
      ...(obj.metadata?.uid ? { uid: obj.metadata.uid } : {}),
    };
    if (this.o.isLeader && !this.o.isLeader()) this.pendingEvents.set(id, { ref, message });
    else this.writeEvent(ref, message);
  }

  private writeEvent(ref: ObjectRef, message: string): void {
    void this.o.events?.record(
      ref,
      'Warning',
      EventReason.certificateUnreadable,
      `certificates cannot be read: ${message}`,
    );
  }

  private externalPassword(p: {
    secret: { namespace: string; name: string; key: string };
  }): Promise<PasswordResult> {
    const ref = p.secret;
    const id = `${ref.namespace}/${ref.name}/${ref.key}`;
    const now = Date.now();
    const cached = this.passwords.get(id);
    if (cached && now - cached.at < PASSWORD_CACHE_MS) return cached.value;
    const read = this.o.readSecretValue;
    const value: Promise<PasswordResult> = read
      ? read(ref.namespace, ref.name, ref.key).then(
          (v) =>
            v === undefined
              ? {
                  problem: `the password key "${ref.key}" of Secret ${ref.namespace}/${ref.name} does not exist`,
                }
              : { password: v },
          (err) => ({
            problem: `the password Secret ${ref.namespace}/${ref.name} cannot be read: ${err instanceof Error ? err.message : String(err)}`,
          }),
        )
      : Promise.resolve({ problem: 'no reader for password Secrets' });
    this.passwords.set(id, { at: now, value });
    return value;
  }
}

/** The password of a keystore from a key of its own Secret, or none when none is configured. */
function samePassword(p: KeystorePassword | undefined, data: Record<string, unknown>): PasswordResult {
  if (!p || !('key' in p)) return { password: undefined };
  const v = data[p.key];
  if (typeof v !== 'string') return { problem: `the password key "${p.key}" is missing from the Secret` };
  return { password: Buffer.from(v, 'base64').toString('utf8') };
}
