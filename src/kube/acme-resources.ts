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
/** See the ACME port's `OwnedBy`: the managed Secret that owns an object, and our marker label. */
export interface OwnedBy {
  owner: string;
  label: string;
}

/**
 * An object found under a name cert-rotator computes (a route, a pending-order Secret) that is
 * not cert-rotator's: left alone, and the issuance fails with this message.
 */
export class ForeignObjectError extends Error {
  readonly code = 'NOT_OURS';
  constructor(message: string) {
    super(message);
    this.name = 'ForeignObjectError';
  }
}

const MANAGED_BY_KEY = 'app.kubernetes.io/managed-by';
const MANAGED_BY = { [MANAGED_BY_KEY]: 'cert-rotator' };
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

  /**
   * Throws ForeignObjectError unless `meta` carries our labels and an owner reference to the
   * managed Secret (by uid, so a namesake created after the owner was deleted does not count).
   */
  private async assertOurs(
    what: string,
    namespace: string,
    meta: k8s.V1ObjectMeta | undefined,
    ownedBy: OwnedBy,
  ): Promise<void> {
    const labels = meta?.labels ?? {};
    const refs = meta?.ownerReferences ?? [];
    const labelled = labels[MANAGED_BY_KEY] === 'cert-rotator' && labels[ownedBy.label] === 'true';
    const named = refs.filter(
      (r) => r.kind === 'Secret' && r.apiVersion === 'v1' && r.name === ownedBy.owner,
    );
    if (labelled && named.length > 0) {
      const owner = await this.ownerRef(namespace, ownedBy.owner);
      if (owner && named.some((r) => r.uid === owner.uid)) return;
    }
    const missing = [
      ...(labelled ? [] : [`labels ${MANAGED_BY_KEY}=cert-rotator and ${ownedBy.label}=true`]),
      ...(named.length > 0 && labelled ? ['an owner reference matching the uid of'] : []),
      ...(named.length === 0 ? ['an owner reference to'] : []),
    ];
    throw new ForeignObjectError(
      `${what} ${namespace}/${meta?.name ?? '?'} exists but is not cert-rotator's (it lacks ${missing.join(' and ')} Secret ${ownedBy.owner}); it was left untouched: rename or remove it, or use another Secret name`,
    );
  }

  async readSecret(namespace: string, name: string, ownedBy?: OwnedBy): Promise<StoredSecret | undefined> {
    try {
      const s = await this.core.readNamespacedSecret({ namespace, name });
      if (ownedBy) await this.assertOurs('Secret', namespace, s.metadata, ownedBy);
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
    ownedBy?: OwnedBy,
  ): Promise<boolean> {
    const current = await this.core.readNamespacedSecret({ namespace, name });
    if (ownedBy) await this.assertOurs('Secret', namespace, current.metadata, ownedBy);
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

  async deleteSecret(namespace: string, name: string, ownedBy?: OwnedBy): Promise<void> {
    if (!ownedBy) {
      await ignore404(this.core.deleteNamespacedSecret({ namespace, name }));
      return;
    }
    await this.deleteIfOurs(
      'Secret',
      namespace,
      ownedBy,
      () => this.core.readNamespacedSecret({ namespace, name }),
      (body) => this.core.deleteNamespacedSecret({ namespace, name, body }),
    );
  }

  /**
   * Reads, checks ownership, deletes with a uid + resourceVersion precondition (so what is
   * deleted is exactly what was checked). Absent is fine.
   */
  private async deleteIfOurs(
    what: string,
    namespace: string,
    ownedBy: OwnedBy,
    read: () => Promise<{ metadata?: k8s.V1ObjectMeta }>,
    del: (body: k8s.V1DeleteOptions) => Promise<unknown>,
  ): Promise<void> {
    let meta: k8s.V1ObjectMeta | undefined;
    try {
      meta = (await read()).metadata;
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    await this.assertOurs(what, namespace, meta, ownedBy);
    const preconditions: k8s.V1Preconditions = {
      ...(meta?.uid ? { uid: meta.uid } : {}),
      ...(meta?.resourceVersion ? { resourceVersion: meta.resourceVersion } : {}),
    };
    await ignore404(del({ preconditions }));
  }

  async createHttp01Route(route: Http01Route): Promise<void> {
    const { namespace, name } = route;
    const owner = await this.ownerRef(namespace, route.owner.name);
    const metadata = (n: string, extra: Record<string, string> = {}): k8s.V1ObjectMeta => ({
      name: n,
      labels: { ...MANAGED_BY, [HTTP01_LABEL]: 'true', ...extra },
      ...(owner ? { ownerReferences: [owner] } : {}),
    });
    // Leftovers of an interrupted issuance for the same Secret are replaced; objects of that name
    // that are not ours make this throw before anything is created or deleted.
    await this.deleteHttp01Route(namespace, name, route.owner);
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

  async deleteHttp01Route(namespace: string, name: string, owner: { name: string }): Promise<void> {
    const ownedBy = { owner: owner.name, label: HTTP01_LABEL };
    const steps: Array<
      [string, () => Promise<{ metadata?: k8s.V1ObjectMeta }>, (b: k8s.V1DeleteOptions) => Promise<unknown>]
    > = [
      [
        'Ingress',
        () => this.networking.readNamespacedIngress({ namespace, name }),
        (body) => this.networking.deleteNamespacedIngress({ namespace, name, body }),
      ],
      [
        'EndpointSlice',
        () => this.discovery.readNamespacedEndpointSlice({ namespace, name }),
        (body) => this.discovery.deleteNamespacedEndpointSlice({ namespace, name, body }),
      ],
      [
        'Service',
        () => this.core.readNamespacedService({ namespace, name }),
        (body) => this.core.deleteNamespacedService({ namespace, name, body }),
      ],
    ];
    // Check all three first: one foreign object stops the whole route from being touched.
    const found: Array<{
      what: string;
      meta: k8s.V1ObjectMeta | undefined;
      del: (b: k8s.V1DeleteOptions) => Promise<unknown>;
    }> = [];
    for (const [what, read, del] of steps) {
      try {
        found.push({ what, meta: (await read()).metadata, del });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    for (const f of found) await this.assertOurs(f.what, namespace, f.meta, ownedBy);
    for (const f of found) {
      const preconditions: k8s.V1Preconditions = {
        ...(f.meta?.uid ? { uid: f.meta.uid } : {}),
        ...(f.meta?.resourceVersion ? { resourceVersion: f.meta.resourceVersion } : {}),
      };
      await ignore404(f.del({ preconditions }));
    }
  }
}
