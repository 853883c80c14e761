/**
 * ACME Renewal Information (RFC 9773), which acme-client does not implement: the CA's suggested
 * renewal window for a certificate, fetched with an unauthenticated GET of
 * `<renewalInfo>/<certID>`, and a point inside it chosen once per certificate.
 */
import { createHash } from 'node:crypto';
import type { AcmeConnection } from './client.ts';
import { parseRetryAfter, withAction } from './transport.ts';

export interface RenewalInfo {
  start: number;
  end: number;
  /** When to ask again (Retry-After, clamped to [1 min, 24 h]; 6 h when absent). */
  retryAfterMs: number;
  explanationURL?: string;
}

const MIN_REFRESH_MS = 60_000;
const MAX_REFRESH_MS = 24 * 3_600_000;
const DEFAULT_REFRESH_MS = 6 * 3_600_000;

export function clampRefresh(ms: number | undefined): number {
  if (ms === undefined) return DEFAULT_REFRESH_MS;
  return Math.min(MAX_REFRESH_MS, Math.max(MIN_REFRESH_MS, ms));
}

/**
 * A point inside [start, end) that is the same every time it is computed for the same seed (the
 * certID), so every evaluation and every replica agree; different certificates spread out.
 */
export function pointInWindow(start: number, end: number, seed: string): number {
  if (!(end > start)) return start;
  const h = createHash('sha256').update(seed).digest();
  const fraction = h.readUIntBE(0, 6) / 2 ** 48;
  return start + Math.floor(fraction * (end - start));
}

/** The CA's renewal info; undefined when it does not know the certificate (4xx). */
export async function getRenewalInfo(
  conn: AcmeConnection,
  renewalInfoUrl: string,
  certId: string,
): Promise<RenewalInfo | undefined> {
  const url = `${renewalInfoUrl.replace(/\/+$/, '')}/${certId}`;
  const res = await withAction('renewalInfo', () => conn.transport.request(url, 'GET'));
  if (res.status >= 400 && res.status < 500) return undefined;
  if (res.status !== 200) throw new Error(`renewalInfo ${url} answered HTTP ${res.status}`);
  const body = (typeof res.data === 'string' ? safeJson(res.data) : res.data) as {
    suggestedWindow?: { start?: unknown; end?: unknown };
    explanationURL?: unknown;
  };
  const start = Date.parse(String(body?.suggestedWindow?.start ?? ''));
  const end = Date.parse(String(body?.suggestedWindow?.end ?? ''));
  // RFC 9773 §4.2: a window whose end is not after its start is invalid; ask again later.
  if (Number.isNaN(start) || Number.isNaN(end) || end <= start) {
    throw new Error(`renewalInfo ${url} has no valid suggestedWindow`);
  }
  return {
    start,
    end,
    retryAfterMs: clampRefresh(parseRetryAfter(res.headers['retry-after'])),
    ...(typeof body.explanationURL === 'string' ? { explanationURL: body.explanationURL } : {}),
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
