import type * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { CoreV1Api } from '../../../src/kube/client.ts';
import { ConfigMapNoticeStore } from '../../../src/kube/notice-store.ts';
import { NOTICE_RECORD_PREFIX, NOTICE_RECORD_SHARDS } from '../../../src/names.ts';
import { createLogger } from '../../../src/observability/logger.ts';

/**
 * A fake of the three ConfigMap calls, with resourceVersions and 409s as the API server gives
 * them (the real thing is covered by test/integration/notices.test.ts).
 */
function fakeCore() {
  const maps = new Map<string, k8s.V1ConfigMap>();
  let rv = 1;
  const apiError = (code: number) => Object.assign(new Error(`HTTP ${code}`), { code, statusCode: code });
  const store = (body: k8s.V1ConfigMap) => {
    const stored = { ...body, metadata: { ...body.metadata, resourceVersion: String(++rv) } };
    maps.set(body.metadata?.name ?? '', stored);
    return stored;
  };
  const core = {
    async readNamespacedConfigMap({ name }: { name: string }) {
      const m = maps.get(name);
      if (!m) throw apiError(404);
      return structuredClone(m);
    },
    async createNamespacedConfigMap({ body }: { body: k8s.V1ConfigMap }) {
      if (maps.has(body.metadata?.name ?? '')) throw apiError(409);
      return store(body);
    },
    async replaceNamespacedConfigMap({ name, body }: { name: string; body: k8s.V1ConfigMap }) {
      const m = maps.get(name);
      if (!m) throw apiError(404);
      if (m.metadata?.resourceVersion !== body.metadata?.resourceVersion) throw apiError(409);
      return store(body);
    },
  };
  return { core: core as unknown as CoreV1Api, maps };
}

const log = createLogger({ level: 'silent' });

describe('ConfigMapNoticeStore', () => {
  it('spreads the record over its shards, writes only what changed, and reads it back', async () => {
    const { core, maps } = fakeCore();
    const store = new ConfigMapNoticeStore(core, 'cr', log);
    expect((await store.load()).size).toBe(0);
    const all = new Map(
      Array.from({ length: 200 }, (_, i) => [
        `ns-${i % 7}/secret.${i}`,
        { serialHex: `0${i}`, sentMs: [1209600000, 0] },
      ]),
    );
    await store.save(all, new Set(all.keys()));
    expect(maps.size).toBe(NOTICE_RECORD_SHARDS);
    for (const name of maps.keys()) expect(name).toMatch(new RegExp(`^${NOTICE_RECORD_PREFIX}-[0-7]$`));
    // A dot in the Secret's name survives the `namespace.name` data key.
    const again = await new ConfigMapNoticeStore(core, 'cr', log).load();
    expect(again).toEqual(all);

    const versions = new Map([...maps].map(([k, v]) => [k, v.metadata?.resourceVersion]));
    all.delete('ns-0/secret.0');
    await store.save(all, new Set(['ns-0/secret.0']));
    const rewritten = [...maps].filter(([k, v]) => v.metadata?.resourceVersion !== versions.get(k));
    expect(rewritten).toHaveLength(1);
    expect((await store.load()).has('ns-0/secret.0')).toBe(false);
  });

  it('takes over a shard a former leader wrote since (409) and writes its view on top', async () => {
    const { core, maps } = fakeCore();
    const a = new ConfigMapNoticeStore(core, 'cr', log);
    const b = new ConfigMapNoticeStore(core, 'cr', log);
    await a.load();
    await b.load();
    await a.save(new Map([['ns/x', { serialHex: 'aa', sentMs: [1] }]]), new Set(['ns/x']));
    // b read before a wrote: its create meets a 409, it reads the shard and replaces it.
    await b.save(new Map([['ns/x', { serialHex: 'bb', sentMs: [1, 0] }]]), new Set(['ns/x']));
    expect((await a.load()).get('ns/x')).toEqual({ serialHex: 'bb', sentMs: [1, 0] });
    expect([...maps.values()].filter((m) => Object.keys(m.data ?? {}).length > 0)).toHaveLength(1);
  });

  it('leaves a shard as it is rather than outgrow the 1 MiB object limit', async () => {
    const { core, maps } = fakeCore();
    const store = new ConfigMapNoticeStore(core, 'cr', log);
    await store.load();
    const all = new Map(
      Array.from({ length: 130_000 }, (_, i) => [
        `namespace-${i}/secret-${i}`,
        { serialHex: 'ab'.repeat(16), sentMs: [1209600000, 604800000] },
      ]),
    );
    await store.save(all, new Set(all.keys()));
    for (const m of maps.values()) {
      const bytes = Object.entries(m.data ?? {}).reduce((n, [k, v]) => n + k.length + v.length, 0);
      expect(bytes).toBeLessThan(1024 * 1024);
    }
    expect(maps.size).toBeLessThan(NOTICE_RECORD_SHARDS);
  });
});
