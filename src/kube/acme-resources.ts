/**
 * The Kubernetes side of the ACME issuer (`AcmeKube`): Opaque Secrets for the account key and
 * pending orders, and the short-lived Service + EndpointSlice + Ingress that route HTTP-01
 * challenge paths in the managed Secret's namespace to the controller's solver listener.
 */
import type * as k8s from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../names.ts';
import {
  type CoreV1Api,
  type DiscoveryV1Api,
  decodeSecretData,
  encodeSecretData,
  httpStatus,
  isNotFound,
  type KubeClients,
  makeClients,
  type NetworkingV1Api,
} from './client.ts';
import type { KubeTransport } from './http/transport.ts';

/*
 * This adapter satisfies the ACME issuer's `AcmeKube` port structurally: kube/ never imports an
 * issuer (app/ passes this object where the port is wanted, and tsc checks the fit there).
 */

/** A Secret as text: decoded data and annotations. */
export interface StoredSecret {
  resourceVersion: string;
  data: Record<string, string>;
  annotations: Record<string, string>;
}

/** Service + EndpointSlice + Ingress that route HTTP-01 token paths to the solver listener. */
export interface Http01Route {
  namespace: string;
  name: string;
  owner: { name: string };
  paths: Array<{ host: string; path: string }>;
  target: { ip: string; port: number };
  ingressClassName?: string;
  ingressAnnotations?: Record<string, string>;
}
const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'cert-rotator' };
/** Label on routing objects, so stray ones can be found and removed. */
export const HTTP01_LABEL = 'cert-rotator.io/acme-http01';

async function ignore404(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

export class KubeAcmeResources {
  private readonly core: CoreV1Api;
  private readonly networking: NetworkingV1Api;
  private readonly discovery: DiscoveryV1Api;

  constructor(config: KubeTransport | KubeClients) {
    const clients = 'core' in config ? config : makeClients(config);
    this.core = clients.core;
    this.networking = clients.networking;
    this.discovery = clients.discovery;
  }

  async readSecret(namespace: string, name: string): Promise<StoredSecret | undefined> {
    try {
      const s = await this.core.readNamespacedSecret({ namespace, name });
      return {
        resourceVersion: s.metadata?.resourceVersion ?? '',
        data: decodeSecretData(s.data),
        annotations: { ...(s.metadata?.annotations ?? {}) },
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private async ownerRef(namespace: string, name: string): Promise<k8s.V1OwnerReference | undefined> {
    try {
      const s = await this.core.readNamespacedSecret({ namespace, name });
      const uid = s.metadata?.uid;
      return uid ? { apiVersion: 'v1', kind: 'Secret', name, uid, blockOwnerDeletion: false } : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async createSecret(
    namespace: string,
    name: string,
    data: Record<string, string>,
    opts: { owner?: string; labels?: Record<string, string>; annotations?: Record<string, string> } = {},
  ): Promise<boolean> {
    const owner = opts.owner ? await this.ownerRef(namespace, opts.owner) : undefined;
    try {
      await this.core.createNamespacedSecret({
        namespace,
        fieldManager: FIELD_MANAGER,
        body: {
          metadata: {
            name,
            labels: { ...MANAGED_BY, ...opts.labels },
            ...(opts.annotations ? { annotations: opts.annotations } : {}),
            ...(owner ? { ownerReferences: [owner] } : {}),
          },
          type: 'Opaque',
          data: encodeSecretData(data),
        },
      });
      return true;
    } catch (err) {
      if (httpStatus(err) === 409) return false;
      throw err;
    }
  }

  async updateSecret(
    namespace: string,
    name: string,
    resourceVersion: string,
    data: Record<string, string>,
    annotations?: Record<string, string>,
  ): Promise<boolean> {
    const current = await this.core.readNamespacedSecret({ namespace, name });
    if (current.metadata?.resourceVersion !== resourceVersion) return false;
    try {
      await this.core.replaceNamespacedSecret({
        namespace,
        name,
        fieldManager: FIELD_MANAGER,
        body: {
          ...current,
          metadata: {
            ...current.metadata,
            resourceVersion,
            managedFields: undefined,
            ...(annotations ? { annotations } : {}),
          },
          data: encodeSecretData(data),
        },
      });
      return true;
    } catch (err) {
      if (httpStatus(err) === 409) return false;
      throw err;
    }
  }

  async deleteSecret(namespace: string, name: string): Promise<void> {
    await ignore404(this.core.deleteNamespacedSecret({ namespace, name }));
  }

  async createHttp01Route(route: Http01Route): Promise<void> {
    const { namespace, name } = route;
    const owner = await this.ownerRef(namespace, route.owner.name);
    const metadata = (n: string, extra: Record<string, string> = {}): k8s.V1ObjectMeta => ({
      name: n,
      labels: { ...MANAGED_BY, [HTTP01_LABEL]: 'true', ...extra },
      ...(owner ? { ownerReferences: [owner] } : {}),
    });
    // Leftovers of an interrupted issuance for the same Secret are replaced.
    await this.deleteHttp01Route(namespace, name);
    await this.core.createNamespacedService({
      namespace,
      fieldManager: FIELD_MANAGER,
      body: {
        metadata: metadata(name),
        // No selector: the EndpointSlice below points at the controller pod that holds the tokens.
        spec: {
          type: 'ClusterIP',
          ports: [{ name: 'http', port: 80, targetPort: route.target.port, protocol: 'TCP' }],
        },
      },
    });
    await this.discovery.createNamespacedEndpointSlice({
      namespace,
      fieldManager: FIELD_MANAGER,
      body: {
        metadata: metadata(name, {
          'kubernetes.io/service-name': name,
          'endpointslice.kubernetes.io/managed-by': 'cert-rotator.io',
        }),
        addressType: route.target.ip.includes(':') ? 'IPv6' : 'IPv4',
        endpoints: [{ addresses: [route.target.ip], conditions: { ready: true } }],
        ports: [{ name: 'http', port: route.target.port, protocol: 'TCP' }],
      },
    });
    const hosts = new Map<string, string[]>();
    for (const p of route.paths) hosts.set(p.host, [...(hosts.get(p.host) ?? []), p.path]);
    await this.networking.createNamespacedIngress({
      namespace,
      fieldManager: FIELD_MANAGER,
      body: {
        metadata: {
          ...metadata(name),
          ...(route.ingressAnnotations ? { annotations: route.ingressAnnotations } : {}),
        },
        spec: {
          ...(route.ingressClassName ? { ingressClassName: route.ingressClassName } : {}),
          rules: [...hosts].map(([host, paths]) => ({
            host,
            http: {
              paths: paths.map((path) => ({
                path,
                pathType: 'Exact',
                backend: { service: { name, port: { name: 'http' } } },
              })),
            },
          })),
        },
      },
    });
  }

  async deleteHttp01Route(namespace: string, name: string): Promise<void> {
    await ignore404(this.networking.deleteNamespacedIngress({ namespace, name }));
    await ignore404(this.discovery.deleteNamespacedEndpointSlice({ namespace, name }));
    await ignore404(this.core.deleteNamespacedService({ namespace, name }));
  }
}
