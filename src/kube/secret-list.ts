import type * as k8s from '@kubernetes/client-node';
import { TLS_SECRET_TYPE } from '../names.ts';
import { httpStatus } from './client.ts';
import { collectionPath } from './list-watch.ts';
import { getJson } from './raw-get.ts';

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
export async function listTlsSecrets(config: k8s.KubeConfig, options: ListTlsSecretsOptions): Promise<void> {
  const path = collectionPath('/api/v1', 'secrets', options.namespace);
  let cont: string | undefined;
  let restarted = false;
  for (;;) {
    let page: RawList<k8s.V1Secret>;
    try {
      page = await getJson<RawList<k8s.V1Secret>>(config, path, {
        fieldSelector: `type=${TLS_SECRET_TYPE}`,
        limit: options.pageSize ?? 500,
        continue: cont,
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
