/**
 * One ConfigMap as a small key-value store with optimistic concurrency: read with its
 * resourceVersion, write back guarded by it (create when absent). Plain JSON over the transport.
 */
import { FIELD_MANAGER } from '../names.ts';
import { httpStatus, type KubeTransport } from './client.ts';

export interface StoredMap {
  data: Record<string, string>;
  /** Absent: the ConfigMap does not exist yet. */
  resourceVersion?: string;
}

interface RawConfigMap {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  data?: Record<string, string>;
}

export class ConfigMapStore {
  private readonly transport: KubeTransport;
  readonly namespace: string;
  readonly name: string;
  private readonly meta: { labels: Record<string, string>; annotations: Record<string, string> };

  constructor(
    transport: KubeTransport,
    namespace: string,
    name: string,
    meta: { labels: Record<string, string>; annotations: Record<string, string> },
  ) {
    this.transport = transport;
    this.namespace = namespace;
    this.name = name;
    this.meta = meta;
  }

  private path(withName: boolean): string {
    const base = `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/configmaps`;
    return withName ? `${base}/${encodeURIComponent(this.name)}` : base;
  }

  async read(): Promise<StoredMap> {
    try {
      const cm = await this.transport.request<RawConfigMap>('GET', this.path(true));
      return { data: { ...(cm.data ?? {}) }, resourceVersion: cm.metadata?.resourceVersion ?? '' };
    } catch (err) {
      if (httpStatus(err) === 404) return { data: {} };
      throw err;
    }
  }

  /** Writes `data` if the ConfigMap is still at `read.resourceVersion`: false on a conflict. */
  async write(read: StoredMap, data: Record<string, string>): Promise<boolean> {
    const body: RawConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: this.name,
        namespace: this.namespace,
        labels: this.meta.labels,
        annotations: this.meta.annotations,
        ...(read.resourceVersion !== undefined ? { resourceVersion: read.resourceVersion } : {}),
      },
      data,
    };
    try {
      if (read.resourceVersion === undefined)
        await this.transport.request('POST', this.path(false), {
          query: { fieldManager: FIELD_MANAGER },
          body,
        });
      else
        await this.transport.request('PUT', this.path(true), {
          query: { fieldManager: FIELD_MANAGER },
          body,
        });
      return true;
    } catch (err) {
      if (httpStatus(err) === 409) return false;
      throw err;
    }
  }
}
