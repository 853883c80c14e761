import type * as k8s from '@kubernetes/client-node';
import { TLS_SECRET_TYPE } from '../names.ts';
import { asTransport, httpStatus } from './client.ts';
import type { KubeTransport } from './http/transport.ts';
import { collectionPath } from './list-watch.ts';

/** One page of a LIST as JSON on the wire. */
interface RawList<T> {
  metadata?: { continue?: string; resourceVersion?: string };
  items: T[];
}

export interface ListTlsSecretsOptions {
  /** One namespace; absent = all namespaces. */
  namespace?: string;
  /** Items per page (the API server's `limit`). */
  pageSize?: number;
  /** Called with each page as it arrives; the pages are not retained here. */
  onPage(items: k8s.V1Secret[]): void;
  /**
   * The list starts over (its continue token expired, 410 Gone, as happens when a very long
   * list outlives etcd's compaction): forget the pages delivered so far.
   */
  onRestart?(): void;
}

/**
 * Every `kubernetes.io/tls` Secret, listed the way the controller lists them: in pages, filtered by
 * type on the server, read as plain JSON. Needs only `list` on Secrets.
 */
export async function listTlsSecrets(
  config: KubeTransport | k8s.KubeConfig,
  options: ListTlsSecretsOptions,
): Promise<void> {
  const transport = asTransport(config);
  const path = collectionPath('/api/v1', 'secrets', options.namespace);
  let cont: string | undefined;
  let restarted = false;
  for (;;) {
    let page: RawList<k8s.V1Secret>;
    try {
      page = await transport.request<RawList<k8s.V1Secret>>('GET', path, {
        query: {
          fieldSelector: `type=${TLS_SECRET_TYPE}`,
          limit: String(options.pageSize ?? 500),
          ...(cont ? { continue: cont } : {}),
        },
      });
    } catch (err) {
      // Once: a second expiry means the list cannot finish in etcd's compaction interval.
      if (cont === undefined || restarted || httpStatus(err) !== 410) throw err;
      restarted = true;
      cont = undefined;
      options.onRestart?.();
      continue;
    }
    options.onPage(page.items ?? []);
    cont = page.metadata?.continue || undefined;
    if (!cont) return;
  }
}
