import { describe, expect, it } from 'vitest';
import type { StoredMap } from '../../src/kube/configmap-store.ts';
import { IssuedLedger, type LedgerStore, parseEntry, recordedUntil } from '../../src/signer/issued-ledger.ts';

const MIN = 60_000;
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

/** Fake ConfigMap: a version counter, and a conflict on a stale write. */
class FakeStore implements LedgerStore {
  data: Record<string, string> | undefined;
  version = 0;
  writes = 0;
  conflictNext = 0;
  async read(): Promise<StoredMap> {
    return this.data === undefined
      ? { data: {} }
      : { data: { ...this.data }, resourceVersion: String(this.version) };
  }
  async write(read: StoredMap, data: Record<string, string>): Promise<boolean> {
    if (this.conflictNext > 0) {
      this.conflictNext--;
      this.version++;
      return false;
    }
    if ((read.resourceVersion ?? undefined) !== (this.data === undefined ? undefined : String(this.version)))
      return false;
    this.data = data;
    this.version++;
    this.writes++;
    return true;
  }
}

describe('the record of issued pod certificates', () => {
  it('records the latest notAfter per CA rounded up to 5 minutes; a burst is one write', async () => {
    const store = new FakeStore();
    const ledger = new IssuedLedger(store, { now: () => T0 });
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => ledger.cover('pods', 'aa', T0 + 24 * 60 * MIN + (i + 1) * 1000)),
    );
    expect(store.writes).toBe(1);
    expect(parseEntry(store.data?.aa)?.lastLeafNotAfter).toBe('2026-01-02T12:05:00Z');
    await ledger.cover('pods', 'aa', T0 + 24 * 60 * MIN + 5 * MIN + 1000);
    expect(store.writes).toBe(2);
    expect(parseEntry(store.data?.aa)?.lastLeafNotAfter).toBe('2026-01-02T12:10:00Z');
  });

  it('keeps other CAs, drops expired ones, never lowers an entry, and retries a conflict', async () => {
    const store = new FakeStore();
    store.data = {
      old: JSON.stringify({ issuer: 'pods', lastLeafNotAfter: '2026-01-01T11:00:00Z', updated: '' }),
      other: JSON.stringify({ issuer: 'b', lastLeafNotAfter: '2026-02-01T00:00:00Z', updated: '' }),
      aa: JSON.stringify({ issuer: 'pods', lastLeafNotAfter: '2026-01-03T00:00:00Z', updated: '' }),
    };
    store.conflictNext = 2;
    const ledger = new IssuedLedger(store, { now: () => T0 });
    await ledger.cover('pods', 'aa', T0 + 60 * MIN); // already covered by the stored entry
    expect(store.writes).toBe(0);
    await ledger.cover('pods', 'bb', T0 + 60 * MIN);
    expect(Object.keys(store.data ?? {}).sort()).toEqual(['aa', 'bb', 'other']);
    expect(parseEntry(store.data?.aa)?.lastLeafNotAfter).toBe('2026-01-03T00:00:00Z');
  });
});

describe('the record of issued certificates: short leaves and reading it back', () => {
  it('rounds a short leaf up to a tenth of its lifetime (at least a second), a long one to 5 minutes', async () => {
    const store = new FakeStore();
    const ledger = new IssuedLedger(store, { now: () => T0 });
    await ledger.cover('csr', 'aa', T0 + 61_500, 60_000); // 1-minute leaf: 6 s steps
    expect(parseEntry(store.data?.aa)?.lastLeafNotAfter).toBe('2026-01-01T12:01:06Z');
    await ledger.cover('csr', 'bb', T0 + 24 * 60 * MIN + 1000, 24 * 60 * MIN); // a day: 5-minute steps
    expect(parseEntry(store.data?.bb)?.lastLeafNotAfter).toBe('2026-01-02T12:05:00Z');
    await ledger.cover('csr', 'cc', T0 + 5_500, 5_000); // shorter than 10 s: 1 s steps
    expect(parseEntry(store.data?.cc)?.lastLeafNotAfter).toBe('2026-01-01T12:00:06Z');
  });

  it('recordedUntil: a future entry, nothing for a past or absent one, and Infinity for garbage', async () => {
    const store = new FakeStore();
    store.data = {
      live: JSON.stringify({ issuer: 'c', lastLeafNotAfter: '2026-01-01T13:00:00Z', updated: '' }),
      past: JSON.stringify({ issuer: 'c', lastLeafNotAfter: '2026-01-01T11:00:00Z', updated: '' }),
      junk: '{not json',
    };
    expect(await recordedUntil(store, 'live', T0)).toBe(Date.parse('2026-01-01T13:00:00Z'));
    expect(await recordedUntil(store, 'past', T0)).toBeUndefined();
    expect(await recordedUntil(store, 'absent', T0)).toBeUndefined();
    expect(await recordedUntil(store, 'junk', T0)).toBe(Number.POSITIVE_INFINITY);
  });
});
