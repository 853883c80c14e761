import type * as k8s from '@kubernetes/client-node';
import type { KubeTransport } from './transport.ts';

/**
 * Drop-in replacements for the client-node API classes the project uses (CoreV1Api, AppsV1Api,
 * ...): the same method names and object parameters, typed with client-node's own types through
 * `import type` only, implemented on a KubeTransport. Results are the JSON the API server sent:
 * no model classes are loaded or built, so time fields (`creationTimestamp`, `renewTime`...)
 * are RFC 3339 strings at run time although client-node's types call them `Date` (read them with
 * `new Date(x)`, which takes both). A list's `metadata.continue` is also offered as `_continue`,
 * the name client-node's model uses.
 */

/** What the second argument of a call may carry: client-node's per-call options, or ours. */
export type CallOptions = k8s.ConfigurationOptions | { contentType?: string; signal?: AbortSignal };

/** A client-node API class's method, re-typed to take CallOptions. */
type Light<T, K extends keyof T> = {
  [M in K]: T[M] extends (param: infer P) => Promise<infer R> ? Method<P, R> : never;
};
/**
 * Method-style (bivariant) parameters, as in a class: a client-node API object, whose methods take
 * only `ConfigurationOptions`, still fits where one of these is wanted (tests pass those).
 */
type Method<P, R> = { call(param: P, options?: CallOptions): Promise<R> }['call'];

const NS_VERBS = ['read', 'create', 'replace', 'patch', 'delete', 'list', 'deleteCollection'] as const;
const CLUSTER_VERBS = ['read', 'create', 'replace', 'patch', 'delete', 'list', 'deleteCollection'] as const;
const SUB_VERBS = ['read', 'replace', 'patch'] as const;
type NsVerb = (typeof NS_VERBS)[number];
type ClusterVerb = (typeof CLUSTER_VERBS)[number];
type SubVerb = (typeof SUB_VERBS)[number];

type NsMethods<K extends string> = `${NsVerb}Namespaced${K}` | `list${K}ForAllNamespaces`;
type ClusterMethods<K extends string> = `${Exclude<ClusterVerb, 'deleteCollection'>}${K}`;
type ClusterCollectionMethods<K extends string> = `deleteCollection${K}`;
type NsSubMethods<K extends string, S extends string> = `${SubVerb}Namespaced${K}${S}`;
type ClusterSubMethods<K extends string, S extends string> = `${SubVerb}${K}${S}`;

/** Kinds per API group: the Kind as it appears in method names → its plural resource name. */
const CORE = {
  prefix: '/api/v1',
  namespaced: {
    Secret: 'secrets',
    ConfigMap: 'configmaps',
    Event: 'events',
    ServiceAccount: 'serviceaccounts',
    Service: 'services',
    Pod: 'pods',
  },
  cluster: { Namespace: 'namespaces' },
  clusterCollection: {},
  nsStatus: { Pod: 'pods', Service: 'services' },
  clusterSub: {},
} as const;
const APPS = {
  prefix: '/apis/apps/v1',
  namespaced: {
    Deployment: 'deployments',
    StatefulSet: 'statefulsets',
    DaemonSet: 'daemonsets',
    ReplicaSet: 'replicasets',
  },
  cluster: {},
  clusterCollection: {},
  nsStatus: {
    Deployment: 'deployments',
    StatefulSet: 'statefulsets',
    DaemonSet: 'daemonsets',
    ReplicaSet: 'replicasets',
  },
  clusterSub: {},
} as const;
const COORDINATION = {
  prefix: '/apis/coordination.k8s.io/v1',
  namespaced: { Lease: 'leases' },
  cluster: {},
  clusterCollection: {},
  nsStatus: {},
  clusterSub: {},
} as const;
const CERTIFICATES = {
  prefix: '/apis/certificates.k8s.io/v1',
  namespaced: {},
  cluster: { CertificateSigningRequest: 'certificatesigningrequests' },
  clusterCollection: { CertificateSigningRequest: 'certificatesigningrequests' },
  nsStatus: {},
  clusterSub: {
    CertificateSigningRequest: { resource: 'certificatesigningrequests', subs: ['Status', 'Approval'] },
  },
} as const;
const NETWORKING = {
  prefix: '/apis/networking.k8s.io/v1',
  namespaced: { Ingress: 'ingresses' },
  cluster: {},
  clusterCollection: {},
  nsStatus: { Ingress: 'ingresses' },
  clusterSub: {},
} as const;
const DISCOVERY = {
  prefix: '/apis/discovery.k8s.io/v1',
  namespaced: { EndpointSlice: 'endpointslices' },
  cluster: {},
  clusterCollection: {},
  nsStatus: {},
  clusterSub: {},
} as const;

interface Group {
  prefix: string;
  namespaced: Record<string, string>;
  cluster: Record<string, string>;
  clusterCollection: Record<string, string>;
  nsStatus: Record<string, string>;
  clusterSub: Record<string, { resource: string; subs: readonly string[] }>;
}

type GroupMethods<G extends Group> =
  | NsMethods<keyof G['namespaced'] & string>
  | ClusterMethods<keyof G['cluster'] & string>
  | ClusterCollectionMethods<keyof G['clusterCollection'] & string>
  | NsSubMethods<keyof G['nsStatus'] & string, 'Status'>
  | {
      [K in keyof G['clusterSub'] & string]: ClusterSubMethods<K, G['clusterSub'][K]['subs'][number]>;
    }[keyof G['clusterSub'] & string];

export type CoreV1Api = Light<
  k8s.CoreV1Api,
  GroupMethods<typeof CORE> | 'createNamespacedServiceAccountToken'
>;
export type AppsV1Api = Light<k8s.AppsV1Api, GroupMethods<typeof APPS>>;
export type CoordinationV1Api = Light<k8s.CoordinationV1Api, GroupMethods<typeof COORDINATION>>;
export type CertificatesV1Api = Light<k8s.CertificatesV1Api, GroupMethods<typeof CERTIFICATES>>;
export type NetworkingV1Api = Light<k8s.NetworkingV1Api, GroupMethods<typeof NETWORKING>>;
export type DiscoveryV1Api = Light<k8s.DiscoveryV1Api, GroupMethods<typeof DISCOVERY>>;

/** client-node's default for patch calls (its generated code prefers JSON Patch). */
const DEFAULT_PATCH_TYPE = 'application/json-patch+json';

const METHOD: Record<NsVerb | ClusterVerb, string> = {
  read: 'GET',
  list: 'GET',
  create: 'POST',
  replace: 'PUT',
  patch: 'PATCH',
  delete: 'DELETE',
  deleteCollection: 'DELETE',
};

type Param = Record<string, unknown> & { name?: string; namespace?: string; body?: unknown };
type Fn = (param: Param, options?: CallOptions) => Promise<unknown>;

/** The Content-Type a call's options ask for: ours, or the header client-node's setHeaderOptions sets. */
function requestedContentType(options: CallOptions | undefined): string | undefined {
  if (!options) return undefined;
  if ('contentType' in options && typeof options.contentType === 'string') return options.contentType;
  const middleware = (options as k8s.ConfigurationOptions).middleware;
  if (!middleware) return undefined;
  let found: string | undefined;
  // setHeaderOptions' middleware only calls setHeaderParam on the request context it is given.
  const shim = {
    setHeaderParam(key: string, value: string) {
      if (key.toLowerCase() === 'content-type') found = value;
    },
  };
  for (const m of middleware) (m as { pre(ctx: unknown): unknown }).pre(shim);
  return found;
}

function signalOf(options: CallOptions | undefined): AbortSignal | undefined {
  return options && 'signal' in options ? options.signal : undefined;
}

/** Everything but the path parameters and the body goes to the query string, named as on the wire. */
function queryOf(param: Param): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  for (const [k, v] of Object.entries(param)) {
    if (k === 'name' || k === 'namespace' || k === 'body' || v === undefined || v === null) continue;
    out ??= {};
    out[k === '_continue' ? 'continue' : k] = String(v);
  }
  return out;
}

function aliasContinue(result: unknown): unknown {
  const meta = (result as { metadata?: { continue?: string; _continue?: string } } | undefined)?.metadata;
  if (meta?.continue !== undefined && meta._continue === undefined) meta._continue = meta.continue;
  return result;
}

function need(param: Param, key: 'name' | 'namespace', method: string): string {
  const v = param[key];
  if (typeof v !== 'string' || v === '') throw new Error(`${method}: missing required parameter ${key}`);
  return encodeURIComponent(v);
}

function operation(
  t: KubeTransport,
  method: string,
  verb: NsVerb | ClusterVerb,
  path: (param: Param) => string,
): Fn {
  const list = verb === 'list';
  const hasBody = verb === 'create' || verb === 'replace' || verb === 'patch' || verb.startsWith('delete');
  return async (param, options) => {
    if (!param || typeof param !== 'object') throw new Error(`${method}: the request object is required`);
    const contentType = requestedContentType(options) ?? (verb === 'patch' ? DEFAULT_PATCH_TYPE : undefined);
    const query = queryOf(param);
    const signal = signalOf(options);
    const result = await t.request<unknown>(METHOD[verb], path(param), {
      ...(query ? { query } : {}),
      ...(hasBody && param.body !== undefined ? { body: param.body } : {}),
      ...(contentType ? { contentType } : {}),
      ...(signal ? { signal } : {}),
    });
    return list ? aliasContinue(result) : result;
  };
}

function build(t: KubeTransport, g: Group): Record<string, Fn> {
  const api: Record<string, Fn> = {};
  for (const [kind, resource] of Object.entries(g.namespaced)) {
    for (const verb of NS_VERBS) {
      const name = `${verb}Namespaced${kind}`;
      const collection = verb === 'create' || verb === 'list' || verb === 'deleteCollection';
      api[name] = operation(t, name, verb, (p) => {
        const base = `${g.prefix}/namespaces/${need(p, 'namespace', name)}/${resource}`;
        return collection ? base : `${base}/${need(p, 'name', name)}`;
      });
    }
    api[`list${kind}ForAllNamespaces`] = operation(
      t,
      `list${kind}ForAllNamespaces`,
      'list',
      () => `${g.prefix}/${resource}`,
    );
  }
  for (const [kind, resource] of Object.entries(g.nsStatus)) {
    for (const verb of SUB_VERBS) {
      const name = `${verb}Namespaced${kind}Status`;
      api[name] = operation(
        t,
        name,
        verb,
        (p) =>
          `${g.prefix}/namespaces/${need(p, 'namespace', name)}/${resource}/${need(p, 'name', name)}/status`,
      );
    }
  }
  for (const [kind, resource] of Object.entries(g.cluster)) {
    for (const verb of CLUSTER_VERBS) {
      if (verb === 'deleteCollection') continue;
      const name = `${verb}${kind}`;
      const collection = verb === 'create' || verb === 'list';
      api[name] = operation(t, name, verb, (p) =>
        collection ? `${g.prefix}/${resource}` : `${g.prefix}/${resource}/${need(p, 'name', name)}`,
      );
    }
  }
  for (const [kind, resource] of Object.entries(g.clusterCollection)) {
    api[`deleteCollection${kind}`] = operation(
      t,
      `deleteCollection${kind}`,
      'deleteCollection',
      () => `${g.prefix}/${resource}`,
    );
  }
  for (const [kind, { resource, subs }] of Object.entries(g.clusterSub)) {
    for (const sub of subs) {
      for (const verb of SUB_VERBS) {
        const name = `${verb}${kind}${sub}`;
        api[name] = operation(
          t,
          name,
          verb,
          (p) => `${g.prefix}/${resource}/${need(p, 'name', name)}/${sub.toLowerCase()}`,
        );
      }
    }
  }
  return api;
}

export function coreV1Api(t: KubeTransport): CoreV1Api {
  const api = build(t, CORE);
  api.createNamespacedServiceAccountToken = operation(
    t,
    'createNamespacedServiceAccountToken',
    'create',
    (p) =>
      `/api/v1/namespaces/${need(p, 'namespace', 'createNamespacedServiceAccountToken')}/serviceaccounts/${need(p, 'name', 'createNamespacedServiceAccountToken')}/token`,
  );
  return api as unknown as CoreV1Api;
}
export const appsV1Api = (t: KubeTransport): AppsV1Api => build(t, APPS) as unknown as AppsV1Api;
export const coordinationV1Api = (t: KubeTransport): CoordinationV1Api =>
  build(t, COORDINATION) as unknown as CoordinationV1Api;
export const certificatesV1Api = (t: KubeTransport): CertificatesV1Api =>
  build(t, CERTIFICATES) as unknown as CertificatesV1Api;
export const networkingV1Api = (t: KubeTransport): NetworkingV1Api =>
  build(t, NETWORKING) as unknown as NetworkingV1Api;
export const discoveryV1Api = (t: KubeTransport): DiscoveryV1Api =>
  build(t, DISCOVERY) as unknown as DiscoveryV1Api;

/** Content types for patch calls (client-node's PatchStrategy values, without loading it). */
export const PatchType = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategicMerge: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;
