import type * as k8s from '@kubernetes/client-node';
import { type Clock, systemClock } from '../clock.ts';
import { httpStatus } from './client.ts';
import type { KubeTransport } from './http/transport.ts';

/** What a list or watch delivers: any object with metadata. Not retained by ListWatch. */
export interface KubeObject {
  metadata?: k8s.V1ObjectMeta;
}

/** One collection to list and watch: an API path (one namespace or all) and its selectors. */
export interface StreamSpec<Tag> {
  /** e.g. `/api/v1/namespaces/a/secrets` or `/apis/apps/v1/deployments`. */
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** Passed back to the handlers (e.g. the workload kind). */
  tag: Tag;
}

export interface ListWatchHandlers<T extends KubeObject, Tag> {
  upsert(object: T, tag: Tag): void;
  remove(namespace: string, name: string, tag: Tag): void;
  /** Every stream has been listed once. */
  synced?(): void;
  /** A list or watch failed; it is retried after `retryInMs`. */
  error?(err: unknown, retryInMs: number): void;
}

export interface ListWatchOptions {
  pageSize?: number;
  clock?: Clock;
  /** Uniform source in [0, 1) for retry jitter; injectable so tests are deterministic. */
  random?: () => number;
  /** Server-side watch timeout; the watch is re-opened from the last resourceVersion after it. */
  watchTimeoutSeconds?: number;
}

interface Stream<Tag> extends StreamSpec<Tag> {
  /** "namespace/name" → resourceVersion of every object delivered. */
  known: Map<string, string>;
  resourceVersion: string;
  listed: boolean;
  abort?: AbortController;
  failures: number;
  timer?: unknown;
}

/** A list as JSON on the wire (the generated client renames `continue` to `_continue`). */
interface RawList<T> {
  metadata?: { continue?: string; resourceVersion?: string };
  items: T[];
}

/**
 * List + watch of Kubernetes collections, client-go's reflector in small: each stream is
 * listed in pages (as plain JSON: the controller reads a few fields of each object, and the
 * generated client's model conversion doubled the time and memory of a large list), then
 * watched from the list's resourceVersion with bookmarks. A watch the server closes is re-opened
 * from the last resourceVersion; 410 Gone relists and reports what vanished meanwhile; any other
 * error relists after capped exponential backoff with jitter. Keeps only names and
 * resourceVersions, never objects.
 */
export class ListWatch<T extends KubeObject, Tag> {
  private readonly transport: KubeTransport;
  private readonly handlers: ListWatchHandlers<T, Tag>;
  private readonly options: ListWatchOptions;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly streams: Stream<Tag>[];
  private unsynced: number;
  private stopped = false;

  constructor(
    transport: KubeTransport,
    streams: StreamSpec<Tag>[],
    handlers: ListWatchHandlers<T, Tag>,
    options: ListWatchOptions = {},
  ) {
    this.transport = transport;
    this.handlers = handlers;
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.streams = streams.map((s) => ({
      ...s,
      known: new Map(),
      resourceVersion: '',
      listed: false,
      failures: 0,
    }));
    this.unsynced = this.streams.length;
  }

  start(): void {
    for (const s of this.streams) void this.listAndWatch(s);
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.streams) {
      s.abort?.abort();
      if (s.timer !== undefined) this.clock.clearTimeout(s.timer);
    }
  }

  private async listAndWatch(s: Stream<Tag>): Promise<void> {
    if (this.stopped) return;
    try {
      await this.list(s);
      s.failures = 0;
      if (!s.listed) {
        s.listed = true;
        this.unsynced--;
        if (this.unsynced === 0) this.handlers.synced?.();
      }
      await this.watch(s);
    } catch (err) {
      this.retry(s, err);
    }
  }

  private retry(s: Stream<Tag>, err: unknown): void {
    if (this.stopped) return;
    s.failures++;
    const delay = Math.min(30_000, 250 * 2 ** Math.min(s.failures - 1, 7)) * (0.5 + this.random() / 2);
    this.handlers.error?.(err, Math.round(delay));
    s.timer = this.clock.setTimeout(() => {
      s.timer = undefined;
      void this.listAndWatch(s);
    }, delay);
  }

  private async list(s: Stream<Tag>): Promise<void> {
    const seen = new Map<string, string>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.transport.request<RawList<T>>('GET', s.path, {
        query: {
          ...(s.fieldSelector ? { fieldSelector: s.fieldSelector } : {}),
          ...(s.labelSelector ? { labelSelector: s.labelSelector } : {}),
          limit: String(this.options.pageSize ?? 500),
          ...(cont ? { continue: cont } : {}),
        },
      });
      for (const item of page.items) {
        const key = keyOf(item);
        const itemRv = item.metadata?.resourceVersion ?? '';
        seen.set(key, itemRv);
        if (s.known.get(key) !== itemRv) this.handlers.upsert(item, s.tag);
      }
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion ?? rv;
    } while (cont && !this.stopped);
    for (const key of s.known.keys()) {
      if (!seen.has(key)) {
        const i = key.indexOf('/');
        this.handlers.remove(key.slice(0, i), key.slice(i + 1), s.tag);
      }
    }
    s.known = seen;
    s.resourceVersion = rv;
  }

  /** Resolves when stopped; throws to request a relist after backoff. */
  private async watch(s: Stream<Tag>): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const abort = new AbortController();
      s.abort = abort;
      let outcome: 'reopen' | 'relist' = 'reopen';
      let failure: Error | undefined;
      try {
        await this.transport.watch(
          s.path,
          {
            ...(s.fieldSelector ? { fieldSelector: s.fieldSelector } : {}),
            ...(s.labelSelector ? { labelSelector: s.labelSelector } : {}),
            resourceVersion: s.resourceVersion,
            allowWatchBookmarks: 'true',
            timeoutSeconds: String(this.options.watchTimeoutSeconds ?? 300),
          },
          (phase, raw) => {
            if (abort.signal.aborted) return;
            const obj = raw as T & { code?: number; message?: string };
            if (phase === 'ERROR') {
              if (obj.code === 410) outcome = 'relist';
              else failure = new Error(`watch error: ${obj.message ?? obj.code}`);
              abort.abort();
              return;
            }
            const rv = obj.metadata?.resourceVersion;
            if (rv) s.resourceVersion = rv;
            if (phase === 'BOOKMARK') return;
            const key = keyOf(obj);
            if (phase === 'DELETED') {
              s.known.delete(key);
              this.handlers.remove(obj.metadata?.namespace ?? '', obj.metadata?.name ?? '', s.tag);
            } else {
              s.known.set(key, rv ?? '');
              this.handlers.upsert(obj, s.tag);
            }
          },
          abort.signal,
        );
      } catch (err) {
        if (this.stopped) return;
        if (httpStatus(err) === 410) outcome = 'relist';
        else throw err instanceof Error ? err : new Error(String(err));
      }
      if (this.stopped) return;
      if (failure) throw failure;
      if (outcome === 'relist') await this.list(s);
      // 'reopen': the server closed the watch (timeout); continue from the last resourceVersion.
      s.failures = 0;
    }
  }
}

/** `/api/v1/secrets` or `/api/v1/namespaces/NS/secrets` (or the `/apis/GROUP/VERSION` form). */
export function collectionPath(prefix: string, resource: string, namespace?: string): string {
  return namespace
    ? `${prefix}/namespaces/${encodeURIComponent(namespace)}/${resource}`
    : `${prefix}/${resource}`;
}

function keyOf(o: KubeObject): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}
