import type * as k8s from '@kubernetes/client-node';
import type { Clock } from '../clock.ts';
import { TLS_SECRET_TYPE } from '../names.ts';
import type { KubeTransport } from './http/transport.ts';
import { collectionPath, ListWatch } from './list-watch.ts';

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
  watchTimeoutSeconds?: number;
}

/** List + watch of TLS Secrets only: filtered on the server by type, one stream per namespace. */
export class SecretWatch {
  private readonly inner: ListWatch<k8s.V1Secret, undefined>;

  constructor(config: KubeTransport, handlers: SecretWatchHandlers, options: SecretWatchOptions) {
    const nss = options.namespaces.length > 0 ? options.namespaces : [undefined];
    this.inner = new ListWatch<k8s.V1Secret, undefined>(
      config,
      nss.map((ns) => ({
        path: collectionPath('/api/v1', 'secrets', ns),
        fieldSelector: `type=${TLS_SECRET_TYPE}`,
        tag: undefined,
      })),
      {
        ...handlers,
        upsert: (secret) => handlers.upsert(secret),
        remove: (ns, name) => handlers.remove(ns, name),
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
