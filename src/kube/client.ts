import type * as k8s from '@kubernetes/client-node';
import {
  type AppsV1Api,
  appsV1Api,
  type CertificatesV1Api,
  type CoordinationV1Api,
  type CoreV1Api,
  certificatesV1Api,
  coordinationV1Api,
  coreV1Api,
  type DiscoveryV1Api,
  discoveryV1Api,
  type NetworkingV1Api,
  networkingV1Api,
} from './http/api.ts';
import { endpointFromClientNode, isClientNodeConfig } from './http/client-node-config.ts';
import { defaultTransport, type KubeconfigOptions } from './http/kubeconfig.ts';
import { HttpTransport, type KubeTransport } from './http/transport.ts';

/**
 * The API clients the project uses, on one light transport (src/kube/http/): the method names
 * and request objects of client-node's CoreV1Api, AppsV1Api... with plain JSON results, so
 * @kubernetes/client-node is never loaded on the in-cluster path.
 */
export interface KubeClients {
  /** The transport (the name is kept from when this was client-node's KubeConfig). */
  config: KubeTransport;
  transport: KubeTransport;
  core: CoreV1Api;
  apps: AppsV1Api;
  coordination: CoordinationV1Api;
  certificates: CertificatesV1Api;
  networking: NetworkingV1Api;
  discovery: DiscoveryV1Api;
}

export type {
  AppsV1Api,
  CertificatesV1Api,
  CoordinationV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  KubeTransport,
  NetworkingV1Api,
};

/**
 * Kubeconfig from `path`, else $KUBECONFIG / ~/.kube/config, else the in-cluster service account
 * (client-go's loading order), as a transport with the given client QPS/burst.
 */
export function loadKubeConfig(path?: string, options: KubeconfigOptions = {}): HttpTransport {
  return defaultTransport(path, options);
}

/**
 * Clients on a transport. A client-node KubeConfig is accepted too (tests build those) and
 * wrapped in a transport that authenticates through it.
 */
export function makeClients(config: KubeTransport | k8s.KubeConfig): KubeClients {
  const transport = asTransport(config);
  return {
    config: transport,
    transport,
    core: coreV1Api(transport),
    apps: appsV1Api(transport),
    coordination: coordinationV1Api(transport),
    certificates: certificatesV1Api(transport),
    networking: networkingV1Api(transport),
    discovery: discoveryV1Api(transport),
  };
}

/** A transport as is; a client-node KubeConfig (tests) wrapped in one that authenticates through it. */
export function asTransport(config: KubeTransport | k8s.KubeConfig): KubeTransport {
  return isClientNodeConfig(config) ? new HttpTransport(endpointFromClientNode(config)) : config;
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
