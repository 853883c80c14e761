import * as k8s from '@kubernetes/client-node';
import { fetch } from 'undici';

/**
 * GET a Kubernetes API path as plain JSON, authenticated by the KubeConfig exactly as the
 * generated clients are. Used where the generated client's model conversion costs too much:
 * the start-up LIST of every TLS Secret, where turning each page into model objects doubled
 * the time and the memory of simply reading it.
 */
export async function getJson<T>(
  config: k8s.KubeConfig,
  path: string,
  params: Record<string, string | number | undefined>,
): Promise<T> {
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new Error('no current cluster in the kubeconfig');
  const url = new URL(cluster.server.replace(/\/$/, '') + path);
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
  const ctx = new k8s.RequestContext(url.toString(), k8s.HttpMethod.GET);
  await config.applySecurityAuthentication(ctx);
  const headers: Record<string, string> = { accept: 'application/json', ...ctx.getHeaders() };
  const dispatcher = ctx.getDispatcher();
  const res = await fetch(url, {
    headers,
    ...(dispatcher ? { dispatcher } : {}),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  if (!res.ok) {
    const headerMap: Record<string, string> = {};
    res.headers.forEach((value, key) => {
      headerMap[key] = value;
    });
    throw new k8s.ApiException(res.status, `HTTP ${res.status} for GET ${path}`, text, headerMap);
  }
  return JSON.parse(text) as T;
}
