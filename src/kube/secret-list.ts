import type * as k8s from '@kubernetes/client-node';
import { TLS_SECRET_TYPE } from '../names.ts';
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
}

/**
 * Every `kubernetes.io/tls` Secret, listed the way the controller lists them: in pages, filtered by
 * type on the server, read as plain JSON. Needs only `list` on Secrets.
 */
export async function listTlsSecrets(config: k8s.KubeConfig, options: ListTlsSecretsOptions): Promise<void> {
  const path = collectionPath('/api/v1', 'secrets', options.namespace);
  let cont: string | undefined;
  do {
    const page = await getJson<RawList<k8s.V1Secret>>(config, path, {
      fieldSelector: `type=${TLS_SECRET_TYPE}`,
      limit: options.pageSize ?? 500,
      continue: cont,
    });
    options.onPage(page.items ?? []);
    cont = page.metadata?.continue || undefined;
  } while (cont);
}
