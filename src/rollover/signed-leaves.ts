/**
 * Leaves of an old CA that no Secret holds: those the CSR signer and the Pod Certificates signer
 * issued (their holders ask again only at their own renewal, so a rollover cannot re-issue them).
 * Each signer records, per CA, the latest notAfter it signed (signer/issued-ledger.ts); Retire
 * keeps the old CA until the last of them has expired. Reads only.
 */
import { createHash } from 'node:crypto';
import { certificatesFromPem } from '../pki/index.ts';

/** One signer's record, as the rollover reads it (app/ plugs in signer/issued-ledger.ts). */
export interface IssuedRecord {
  /** Who signs, for messages: "the CSR signer", "the Pod Certificates signer". */
  signer: string;
  /** The ConfigMap holding it, for messages. */
  name: string;
  /** The latest notAfter recorded for the CA (SHA-256 of its DER) if still ahead of now. */
  lastLeafNotAfter(caSha256: string, now: number): Promise<number | undefined>;
}

export interface OutstandingLeaves {
  signer: string;
  /** ConfigMap holding the record. */
  record: string;
  /** The latest notAfter of a leaf that signer issued with the CA (Infinity: unreadable entry). */
  until: number;
}

/** SHA-256 (lowercase hex) of a PEM certificate's DER, as the signers key their records. */
export function caSha256(pem: string): string | undefined {
  const der = certificatesFromPem(pem)[0];
  return der ? createHash('sha256').update(der).digest('hex') : undefined;
}

/** What each record says is still valid of the CA `caPem`, latest first; empty: nothing left. */
export async function outstandingLeaves(
  records: readonly IssuedRecord[],
  caPem: string,
  now: number,
): Promise<OutstandingLeaves[]> {
  const sha = caPem ? caSha256(caPem) : undefined;
  if (!sha) return [];
  const out: OutstandingLeaves[] = [];
  for (const r of records) {
    const until = await r.lastLeafNotAfter(sha, now);
    if (until !== undefined) out.push({ signer: r.signer, record: r.name, until });
  }
  return out.sort((a, b) => b.until - a.until);
}

/** "until 2026-…Z" or "until its record is fixed" for an unreadable entry. */
export function describeUntil(until: number): string {
  return Number.isFinite(until) ? `until ${new Date(until).toISOString()}` : 'until its record is readable';
}
