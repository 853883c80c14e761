/**
 * ClusterTrustBundles (certificates.k8s.io) as plain JSON over the transport: client-node has
 * no typed client for them, and the version differs by cluster — v1beta1 behind the
 * `ClusterTrustBundle` gate and `--runtime-config=certificates.k8s.io/v1beta1/clustertrustbundles=true`
 * in 1.36, v1 later — so the served version is found by API discovery.
 */
import { FIELD_MANAGER } from '../names.ts';
import { describeApiError, httpStatus, type KubeTransport } from './client.ts';

/** Versions cert-rotator writes, preferred first. */
export const CTB_VERSIONS = ['v1', 'v1beta1'] as const;
export type CtbVersion = (typeof CTB_VERSIONS)[number];

const GROUP = 'certificates.k8s.io';

export interface RawClusterTrustBundle {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: { signerName?: string; trustBundle?: string };
}

interface ApiResourceList {
  resources?: Array<{ name?: string }>;
}

/** An API error re-thrown with what was being done, keeping the HTTP status as `code`. */
function wrapped(what: string, err: unknown): Error {
  const e = new Error(`${what}: ${describeApiError(err)}`) as Error & { code?: number };
  const status = httpStatus(err);
  if (status !== undefined) e.code = status;
  return e;
}

export class ClusterTrustBundleApi {
  readonly #transport: KubeTransport;

  constructor(transport: KubeTransport) {
    this.#transport = transport;
  }

  static path(version: CtbVersion, name?: string): string {
    const base = `/apis/${GROUP}/${version}/clustertrustbundles`;
    return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
  }

  /** The newest version of CTB_VERSIONS that the API server serves `clustertrustbundles` in. */
  async servedVersion(): Promise<CtbVersion | undefined> {
    for (const version of CTB_VERSIONS) {
      try {
        const list = await this.#transport.request<ApiResourceList>('GET', `/apis/${GROUP}/${version}`);
        if (list.resources?.some((r) => r.name === 'clustertrustbundles')) return version;
      } catch (err) {
        // 404: the group version is not served at all.
        if (httpStatus(err) !== 404) throw wrapped(`discover ${GROUP}/${version}`, err);
      }
    }
    return undefined;
  }

  async get(version: CtbVersion, name: string): Promise<RawClusterTrustBundle | undefined> {
    try {
      return await this.#transport.request<RawClusterTrustBundle>(
        'GET',
        ClusterTrustBundleApi.path(version, name),
      );
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw wrapped(`read ClusterTrustBundle ${name}`, err);
    }
  }

  /** Creates or replaces (guarded by the resourceVersion in `body.metadata`, if any). */
  async write(version: CtbVersion, body: RawClusterTrustBundle, create: boolean): Promise<void> {
    const name = body.metadata?.name ?? '';
    const full = { ...body, apiVersion: `${GROUP}/${version}`, kind: 'ClusterTrustBundle' };
    try {
      await this.#transport.request(
        create ? 'POST' : 'PUT',
        create ? ClusterTrustBundleApi.path(version) : ClusterTrustBundleApi.path(version, name),
        { query: { fieldManager: FIELD_MANAGER }, body: full },
      );
    } catch (err) {
      throw wrapped(`${create ? 'create' : 'update'} ClusterTrustBundle ${name}`, err);
    }
  }
}
