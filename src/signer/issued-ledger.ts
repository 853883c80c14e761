/**
 * What the pod certificate signer has issued, per CA, until it expires: for each CA certificate
 * (by SHA-256), the latest notAfter of a leaf it signed. A CA rollover cannot re-issue pod
 * certificates (only the kubelet asks, at refresh time) and PodCertificateRequests are deleted
 * 15 minutes after creation, so this record is how a rollover knows when the last leaf of an old
 * CA is gone.
 *
 * A leaf is covered before its chain is published (written to the PCR's status), so a crash in
 * between can only over-state the record. The recorded time is rounded up to `granularityMs`
 * (five minutes by default): under a steady stream of requests the record is written about once
 * per interval per CA instead of once per request. Entries whose time has passed are dropped on
 * the next write.
 */
import type { StoredMap } from '../kube/configmap-store.ts';

export interface LedgerStore {
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

  /** Makes the record say that CA `caSha256` has a leaf valid until at least `notAfter`. */
  async cover(issuer: string, caSha256: string, notAfter: number): Promise<void> {
    if ((this.covered.get(caSha256) ?? 0) >= notAfter) return;
    // One write at a time: a burst on one CA becomes one write, not a storm of conflicts.
    const run = this.tail.then(() => this.raise(issuer, caSha256, notAfter));
    this.tail = run.catch(() => undefined);
    await run;
  }

  private async raise(issuer: string, sha: string, notAfter: number): Promise<void> {
    if ((this.covered.get(sha) ?? 0) >= notAfter) return;
    const target = Math.ceil(notAfter / this.granularityMs) * this.granularityMs;
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
    throw new Error('the record of issued pod certificates kept changing; will retry');
  }
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
