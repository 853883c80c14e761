/**
 * The HTTP layer under acme-client, one per issuer: its own TLS agent (CA bundle), a timeout on
 * every request, a nonce pool, request counting, and no sleeping. acme-client's shared axios
 * instance sleeps inside a call on 429/5xx and has no timeout; this transport replaces the
 * per-client `request` so none of that applies, and turns "come back later" answers into an
 * `AcmeRetryLater` error that the issuer hands to the controller as `retryAfterMs`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Agent, request as httpsRequest } from 'node:https';

/** What acme-client reads from a response (the subset of an axios response it uses). */
export interface AcmeHttpResponse {
  status: number;
  headers: Record<string, string>;
  data: unknown;
}

export interface TransportOptions {
  /** PEM bundle to trust instead of the system roots. */
  caBundle?: string;
  /** Per request: connect + response. */
  timeoutMs?: number;
  /** Told about every request: action (what the issuer was doing) and HTTP status or "error". */
  onRequest?: (action: string, status: string) => void;
  userAgent?: string;
}

/** The server asked us to come back later (429 or 503): reschedule, never sleep in the call. */
export class AcmeRetryLater extends Error {
  readonly retryAfterMs: number;
  readonly status: number;
  constructor(message: string, status: number, retryAfterMs: number) {
    super(message);
    this.name = 'AcmeRetryLater';
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_RETRY_LATER_MS = 60_000;
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** Names the ACME step a request belongs to, for `acme_requests_total{action}`. */
const actionStore = new AsyncLocalStorage<string>();

export function withAction<T>(action: string, f: () => Promise<T>): Promise<T> {
  return actionStore.run(action, f);
}

/** Retry-After as ms: delta-seconds or an HTTP-date; undefined when absent or unparseable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export class AcmeTransport {
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly onRequest: (action: string, status: string) => void;
  private readonly userAgent: string;
  private readonly nonces: string[] = [];

  constructor(opts: TransportOptions = {}) {
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: 16,
      ...(opts.caBundle !== undefined ? { ca: opts.caBundle } : {}),
    });
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.onRequest = opts.onRequest ?? (() => undefined);
    this.userAgent = opts.userAgent ?? 'cert-rotator';
  }

  /** A fresh nonce from an earlier response, if any (saves a HEAD newNonce round trip). */
  takeNonce(): string | undefined {
    return this.nonces.pop();
  }

  close(): void {
    this.agent.destroy();
  }

  /** The `request(url, method, opts)` acme-client's HttpClient calls. */
  async request(
    url: string,
    method: string,
    opts: { data?: unknown; headers?: Record<string, string> } = {},
  ): Promise<AcmeHttpResponse> {
    const verb = method.toUpperCase();
    const action =
      actionStore.getStore() ?? (verb === 'HEAD' ? 'newNonce' : verb === 'GET' ? 'directory' : 'other');
    let res: AcmeHttpResponse;
    try {
      res = await this.send(url, verb, opts);
    } catch (err) {
      this.onRequest(action, 'error');
      throw err;
    }
    this.onRequest(action, String(res.status));
    const nonce = res.headers['replay-nonce'];
    if (nonce && verb !== 'HEAD') {
      this.nonces.push(nonce);
      if (this.nonces.length > 32) this.nonces.shift();
    }
    if (res.status === 429 || res.status === 503) {
      const after = parseRetryAfter(res.headers['retry-after']) ?? DEFAULT_RETRY_LATER_MS;
      const detail = problemDetail(res.data);
      throw new AcmeRetryLater(
        `ACME server answered ${res.status} to ${action}${detail ? `: ${detail}` : ''}; retry after ${Math.round(after / 1000)}s`,
        res.status,
        after,
      );
    }
    return res;
  }

  private send(
    url: string,
    method: string,
    opts: { data?: unknown; headers?: Record<string, string> },
  ): Promise<AcmeHttpResponse> {
    const body = opts.data === undefined ? undefined : Buffer.from(JSON.stringify(opts.data));
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method,
          agent: this.agent,
          timeout: this.timeoutMs,
          headers: {
            ...opts.headers,
            'user-agent': this.userAgent,
            ...(body ? { 'content-type': 'application/jose+json' } : {}),
            ...(body ? { 'content-length': String(body.length) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy(new Error(`ACME response from ${url} exceeds ${MAX_RESPONSE_BYTES} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('error', reject);
          res.on('end', () => {
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) {
              if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
            }
            const text = Buffer.concat(chunks).toString('utf8');
            let data: unknown = text;
            if ((headers['content-type'] ?? '').includes('json') && text !== '') {
              try {
                data = JSON.parse(text);
              } catch {
                data = text;
              }
            }
            resolve({ status: res.statusCode ?? 0, headers, data });
          });
        },
      );
      // One deadline for the whole exchange, not only socket idleness.
      const overall = setTimeout(
        () => req.destroy(new Error(`ACME request ${method} ${url} timed out after ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      req.on('close', () => clearTimeout(overall));
      req.on('timeout', () =>
        req.destroy(new Error(`ACME request ${method} ${url} timed out after ${this.timeoutMs} ms`)),
      );
      req.on('error', reject);
      req.end(body);
    });
  }
}

/** `type: detail` of an RFC 7807 problem document, or ''. */
export function problemDetail(data: unknown): string {
  if (!data || typeof data !== 'object') return '';
  const p = data as { type?: unknown; detail?: unknown; subproblems?: unknown };
  const type = typeof p.type === 'string' ? p.type.replace('urn:ietf:params:acme:error:', '') : '';
  const detail = typeof p.detail === 'string' ? p.detail : '';
  const sub = Array.isArray(p.subproblems)
    ? p.subproblems
        .map((s) => problemDetail(s))
        .filter((s) => s !== '')
        .join('; ')
    : '';
  return [type && detail ? `${type}: ${detail}` : type || detail, sub ? `(${sub})` : '']
    .filter((s) => s !== '')
    .join(' ');
}
