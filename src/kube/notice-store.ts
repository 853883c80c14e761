import type * as k8s from '@kubernetes/client-node';
import { FIELD_MANAGER, NOTICE_RECORD_PREFIX, NOTICE_RECORD_SHARDS } from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import { type CoreV1Api, httpStatus, isNotFound } from './client.ts';

/** What one Secret's line records: the certificate's serial and the thresholds sent (ms). */
interface Entry {
  serialHex: string;
  sentMs: number[];
}

/**
 * Room left under the API server's 1 MiB object limit for metadata. An entry is ~60 bytes, so one
 * shard holds ~15,000 Secrets that have crossed a threshold; the record spreads over
 * NOTICE_RECORD_SHARDS ConfigMaps. A shard that would grow past this keeps its old content and
 * says so in the log: those notices may then be sent again after a restart.
 */
const MAX_SHARD_BYTES = 900 * 1024;

/** `ns/name` ↔ ConfigMap data key `ns.name` (a namespace has no dot, so the first dot splits). */
const toDataKey = (key: string) => key.replace('/', '.');
const fromDataKey = (k: string) => k.replace('.', '/');

/** FNV-1a over the key's UTF-16 code units: stable across versions, cheap for 100,000 keys. */
function shardOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % NOTICE_RECORD_SHARDS;
}

/**
 * The record of sent expiry notices in ConfigMaps `cert-rotator-notices-N` of cert-rotator's own
 * namespace. Implements the controller's NoticeStore port (declared structurally: kube/ does not
 * import the controller). Each save rewrites only the shards whose entries changed, guarded by
 * their resourceVersion; on a conflict (a former leader's last write) it reads the shard again
 * and writes the entries it owns on top.
 */
export class ConfigMapNoticeStore {
  readonly #core: CoreV1Api;
  readonly #namespace: string;
  readonly #log: Logger;
  readonly #versions = new Map<number, string>();

  constructor(core: CoreV1Api, namespace: string, log: Logger) {
    this.#core = core;
    this.#namespace = namespace;
    this.#log = log;
  }

  #name(shard: number): string {
    return `${NOTICE_RECORD_PREFIX}-${shard}`;
  }

  async #read(shard: number): Promise<k8s.V1ConfigMap | undefined> {
    try {
      return await this.#core.readNamespacedConfigMap({
        namespace: this.#namespace,
        name: this.#name(shard),
      });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async load(): Promise<Map<string, Entry>> {
    const out = new Map<string, Entry>();
    for (let shard = 0; shard < NOTICE_RECORD_SHARDS; shard++) {
      const cm = await this.#read(shard);
      this.#versions.set(shard, cm?.metadata?.resourceVersion ?? '');
      for (const [k, v] of Object.entries(cm?.data ?? {})) {
        const [serialHex, sent] = v.split(' ');
        const sentMs = (sent ?? '').split(',').filter(Boolean).map(Number).filter(Number.isFinite);
        if (serialHex) out.set(fromDataKey(k), { serialHex, sentMs });
      }
    }
    return out;
  }

  async save(all: ReadonlyMap<string, Entry>, keys: ReadonlySet<string>): Promise<void> {
    const shards = new Set([...keys].map(shardOf));
    // One pass over the record, hashing each key once, for the shards that changed.
    const byShard = new Map<number, Record<string, string>>([...shards].map((s) => [s, {}]));
    for (const [key, e] of all) {
      const data = byShard.get(shardOf(key));
      if (data) data[toDataKey(key)] = `${e.serialHex} ${e.sentMs.join(',')}`;
    }
    for (const [shard, data] of byShard) {
      const bytes = Object.entries(data).reduce((n, [k, v]) => n + k.length + v.length + 8, 0);
      if (bytes > MAX_SHARD_BYTES) {
        this.#log.warn(
          { configMap: `${this.#namespace}/${this.#name(shard)}`, bytes },
          'expiry notice record is full; notices of this shard may be sent again after a restart',
        );
        continue;
      }
      // A shard that never existed and has nothing to hold stays absent.
      if (Object.keys(data).length === 0 && !this.#versions.get(shard)) continue;
      await this.#write(shard, data, true);
    }
  }

  async #write(shard: number, data: Record<string, string>, retry: boolean): Promise<void> {
    const name = this.#name(shard);
    const version = this.#versions.get(shard) ?? '';
    const body: k8s.V1ConfigMap = {
      metadata: {
        name,
        namespace: this.#namespace,
        labels: { 'app.kubernetes.io/managed-by': 'cert-rotator', 'app.kubernetes.io/component': 'notices' },
        ...(version ? { resourceVersion: version } : {}),
      },
      data,
    };
    try {
      const written = version
        ? await this.#core.replaceNamespacedConfigMap({
            namespace: this.#namespace,
            name,
            body,
            fieldManager: FIELD_MANAGER,
          })
        : await this.#core.createNamespacedConfigMap({
            namespace: this.#namespace,
            body,
            fieldManager: FIELD_MANAGER,
          });
      this.#versions.set(shard, written.metadata?.resourceVersion ?? '');
    } catch (err) {
      const status = httpStatus(err);
      if (!retry || (status !== 409 && status !== 404)) throw err;
      // Someone else wrote (or removed) it: take its version; the leader's view of the shard wins.
      const current = await this.#read(shard);
      this.#versions.set(shard, current?.metadata?.resourceVersion ?? '');
      await this.#write(shard, data, false);
    }
  }
}
