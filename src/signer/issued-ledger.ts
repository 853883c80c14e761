/**
 * What a signer (the pod certificate signer, the CSR signer) has issued, per CA, until it
 * expires: for each CA certificate (by SHA-256), the latest notAfter of a leaf it signed. A CA
 * rollover cannot re-issue those leaves (only their holders ask again: the kubelet at refresh
 * time, a sidecar at renewal) and the requests themselves are garbage-collected (PCRs after 15
 * minutes, CSRs after an hour), so this record is how Retire knows when the last leaf of an old
 * CA is gone.
 *
 * A leaf is covered before it is published (written to the request's status), so a crash in
 * between can only over-state the record. The recorded time is rounded up to `granularityMs`
 * (five minutes by default), or to a tenth of the leaf's lifetime when that is shorter: under a
 * steady stream of requests the record is written about once per interval per CA instead of once
 * per request, and it over-states a leaf by at most a tenth of its life. Entries whose time has
 * passed are dropped on the next write.
 */
import type { StoredMap } from '../kube/configmap-store.ts';

export interface LedgerStore {
  /** The ConfigMap's name, for messages. */
  readonly name?: string;
  read(): Promise<StoredMap>;
  write(read: StoredMap, data: Record<string, string>): Promise<boolean>;
}

/** One CA's entry, as JSON in the record's data under the CA certificate's SHA-256. */
export interface LedgerEntry {
  /** Issuer that last signed with it. */
  issuer: string;
  /** RFC 3339: no leaf this CA signed for a pod is valid after this time. */
  lastLeafNotAfter: string;
  /** RFC 3339, when the entry was last raised. */
  updated: string;
}

export class IssuedLedger {
  private readonly store: LedgerStore;
  private readonly granularityMs: number;
  private readonly now: () => number;
  /** CA sha256 → notAfter (ms) known to be recorded. */
  private readonly covered = new Map<string, number>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(store: LedgerStore, opts: { granularityMs?: number; now?: () => number } = {}) {
    this.store = store;
    this.granularityMs = opts.granularityMs ?? 5 * 60_000;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Makes the record say that CA `caSha256` has a leaf valid until at least `notAfter`;
   * `lifetimeMs` (the leaf's notAfter − notBefore) makes the rounding finer for short leaves.
   */
  async cover(issuer: string, caSha256: string, notAfter: number, lifetimeMs?: number): Promise<void> {
    if ((this.covered.get(caSha256) ?? 0) >= notAfter) return;
    const step =
      lifetimeMs !== undefined && lifetimeMs > 0
        ? Math.min(this.granularityMs, Math.max(1000, Math.floor(lifetimeMs / 10 / 1000) * 1000))
        : this.granularityMs;
    // One write at a time: a burst on one CA becomes one write, not a storm of conflicts.
    const run = this.tail.then(() => this.raise(issuer, caSha256, notAfter, step));
    this.tail = run.catch(() => undefined);
    await run;
  }

  private async raise(issuer: string, sha: string, notAfter: number, step: number): Promise<void> {
    if ((this.covered.get(sha) ?? 0) >= notAfter) return;
    const target = Math.ceil(notAfter / step) * step;
    for (let attempt = 0; attempt < 8; attempt++) {
      const read = await this.store.read();
      const now = this.now();
      const data: Record<string, string> = {};
      for (const [k, v] of Object.entries(read.data)) {
        const until = Date.parse(parseEntry(v)?.lastLeafNotAfter ?? '');
        if (until > now) data[k] = v; // an entry whose leaves have all expired is dropped
      }
      const recorded = Date.parse(parseEntry(data[sha])?.lastLeafNotAfter ?? '') || 0;
      if (recorded >= notAfter) {
        this.covered.set(sha, recorded);
        return;
      }
      const entry: LedgerEntry = {
        issuer,
        lastLeafNotAfter: iso(target),
        updated: iso(now),
      };
      data[sha] = JSON.stringify(entry);
      if (await this.store.write(read, data)) {
        this.covered.set(sha, target);
        return;
      }
    }
    throw new Error(`the record of issued certificates ${this.store.name ?? ''} kept changing; will retry`);
  }
}

/**
 * The latest notAfter a signer's record holds for a CA (by SHA-256 of its DER) that is still in
 * the future, or undefined. An entry that does not parse is treated as a leaf that never
 * expires: the record is written only by cert-rotator, so garbage there is a reason to hold,
 * not to drop the old CA early.
 */
export async function recordedUntil(
  store: Pick<LedgerStore, 'read'>,
  caSha256: string,
  now: number,
): Promise<number | undefined> {
  const { data } = await store.read();
  if (!(caSha256 in data)) return undefined;
  const until = Date.parse(parseEntry(data[caSha256])?.lastLeafNotAfter ?? '');
  if (Number.isNaN(until)) return Number.POSITIVE_INFINITY;
  return until > now ? until : undefined;
}

function iso(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export function parseEntry(text: string | undefined): LedgerEntry | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as Partial<LedgerEntry>;
    return typeof v.lastLeafNotAfter === 'string' && typeof v.issuer === 'string'
      ? { issuer: v.issuer, lastLeafNotAfter: v.lastLeafNotAfter, updated: String(v.updated ?? '') }
      : undefined;
  } catch {
    return undefined;
  }
}
