import * as k8s from '@kubernetes/client-node';

/** The handful of API clients the controller uses, built from one KubeConfig. */
export interface KubeClients {
  config: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  coordination: k8s.CoordinationV1Api;
  certificates: k8s.CertificatesV1Api;
}

/**
 * Kubeconfig from `path`, else $KUBECONFIG / ~/.kube/config, else the in-cluster service account
 * (the loader's default order).
 */
export function loadKubeConfig(path?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) {
    throw new Error('no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod');
  }
  return kc;
}

export function makeClients(config: k8s.KubeConfig): KubeClients {
  return {
    config,
    core: config.makeApiClient(k8s.CoreV1Api),
    apps: config.makeApiClient(k8s.AppsV1Api),
    coordination: config.makeApiClient(k8s.CoordinationV1Api),
    certificates: config.makeApiClient(k8s.CertificatesV1Api),
  };
}

/** HTTP status of a failed API call, or undefined for a transport error. */
export function httpStatus(err: unknown): number | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'number') return err.code;
  return undefined;
}

/** The API server answered 404 Not Found. */
export function isNotFound(err: unknown): boolean {
  return httpStatus(err) === 404;
}

/** A Secret's `data` decoded to text (PEM, tokens); absent keys stay absent. */
export function decodeSecretData(data: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return out;
}

/** Text values base64-encoded for a Secret's `data`. */
export function encodeSecretData(data: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) out[k] = Buffer.from(v, 'utf8').toString('base64');
  return out;
}

/** A short, secret-free description of an API error for logs and events. */
export function describeApiError(err: unknown): string {
  const status = httpStatus(err);
  if (status !== undefined && err && typeof err === 'object' && 'body' in err) {
    const body = err.body;
    const parsed = typeof body === 'string' ? safeJson(body) : body;
    const message =
      parsed && typeof parsed === 'object' && 'message' in parsed && typeof parsed.message === 'string'
        ? parsed.message
        : '';
    return `HTTP ${status}${message ? `: ${message}` : ''}`;
  }
  return err instanceof Error ? err.message : String(err);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export type { k8s };
