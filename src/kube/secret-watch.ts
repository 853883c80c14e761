import * as k8s from '@kubernetes/client-node';
import { type Clock, systemClock } from '../clock.ts';
import { TLS_SECRET_TYPE } from '../names.ts';
import { httpStatus } from './client.ts';
import { getJson } from './raw-get.ts';

export interface SecretWatchHandlers {
  /** A Secret appeared or changed. The object is not retained by the watcher. */
  upsert(secret: k8s.V1Secret): void;
  /** A Secret is gone (deleted, or missing from a relist). */
  remove(namespace: string, name: string): void;
  /** The first complete list of every watched namespace has been delivered. */
  synced?(): void;
  /** A list or watch failed; the watcher will retry after `retryInMs`. */
  error?(err: unknown, retryInMs: number): void;
}

export interface SecretWatchOptions {
  /** Namespaces to watch; empty = all namespaces. */
  namespaces: string[];
  pageSize?: number;
  clock?: Clock;
  /** Server-side watch timeout; the watch is re-opened from the last resourceVersion after it. */
  watchTimeoutSeconds?: number;
}

/** A SecretList as JSON on the wire (the generated client renames `continue` to `_continue`). */
interface RawSecretList {
  metadata?: { continue?: string; resourceVersion?: string };
  items: k8s.V1Secret[];
}

interface Stream {
  namespace: string | undefined;
  /** name → resourceVersion of every Secret this stream has delivered. */
  known: Map<string, string>;
  resourceVersion: string;
  abort?: AbortController;
  failures: number;
  timer?: unknown;
}

/**
 * List + watch of TLS Secrets, filtered on the server by type, listed in pages. A watch that
 * ends is re-opened from the last resourceVersion seen; a 410 Gone (history compacted) or any
 * error relists with capped exponential backoff. Only names and resourceVersions are kept here,
 * never Secret data.
 */
export class SecretWatch {
  private readonly streams: Stream[];
  private readonly clock: Clock;
  private stopped = false;
  private unsynced: number;
  private readonly config: k8s.KubeConfig;
  private readonly handlers: SecretWatchHandlers;
  private readonly options: SecretWatchOptions;

  constructor(config: k8s.KubeConfig, handlers: SecretWatchHandlers, options: SecretWatchOptions) {
    this.config = config;
    this.handlers = handlers;
    this.options = options;
    this.clock = options.clock ?? systemClock;
    const nss = options.namespaces.length > 0 ? options.namespaces : [undefined];
    this.streams = nss.map((namespace) => ({
      namespace,
      known: new Map(),
      resourceVersion: '',
      failures: 0,
    }));
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
    return s.namespace ? `/api/v1/namespaces/${encodeURIComponent(s.namespace)}/secrets` : '/api/v1/secrets';
  }

  private async listAndWatch(s: Stream, initial: boolean): Promise<void> {
    if (this.stopped) return;
    try {
      await this.list(s);
      s.failures = 0;
      if (initial) {
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
      const page = await getJson<RawSecretList>(this.config, this.path(s), {
        fieldSelector: `type=${TLS_SECRET_TYPE}`,
        limit: this.options.pageSize ?? 500,
        continue: cont,
      });
      for (const secret of page.items) {
        const key = keyOf(secret);
        const itemRv = secret.metadata?.resourceVersion ?? '';
        seen.set(key, itemRv);
        if (s.known.get(key) !== itemRv) this.handlers.upsert(secret);
      }
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion ?? rv;
    } while (cont && !this.stopped);
    for (const key of s.known.keys()) {
      if (!seen.has(key)) {
        const [ns, name] = splitKey(key);
        this.handlers.remove(ns, name);
      }
    }
    s.known = seen;
    s.resourceVersion = rv;
  }

  /** Resolves when the watch ends for good (stopped); throws to request a relist. */
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
              fieldSelector: `type=${TLS_SECRET_TYPE}`,
              resourceVersion: s.resourceVersion,
              allowWatchBookmarks: true,
              timeoutSeconds: this.options.watchTimeoutSeconds ?? 300,
            },
            (phase: string, obj: k8s.V1Secret & { code?: number; message?: string }) => {
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
                this.handlers.remove(obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
              } else {
                s.known.set(key, rv ?? '');
                this.handlers.upsert(obj);
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
      if (outcome === 'relist') {
        await this.list(s);
      }
      // 'reopen': the server closed the watch (timeout); continue from the last resourceVersion.
      s.failures = 0;
    }
  }
}

function keyOf(secret: k8s.V1Secret): string {
  return `${secret.metadata?.namespace ?? ''}/${secret.metadata?.name ?? ''}`;
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || /aborted/i.test(err.message));
}
