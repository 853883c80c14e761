import type * as Http from 'node:http';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import * as https from 'node:https';
import type { Auth } from './auth.ts';
import { KubeApiError } from './errors.ts';
import { TokenBucket } from './rate-limit.ts';

export interface RequestOptions {
  query?: Record<string, string>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

/** The Kubernetes REST API as plain JSON: what every cert-rotator component calls. */
export interface KubeTransport {
  request<T>(method: string, path: string, opts?: RequestOptions): Promise<T>;
  /**
   * Streams a watch: one `onEvent` per line the server sends (ADDED, MODIFIED, DELETED,
   * BOOKMARK, ERROR). Resolves when the server ends the stream or `signal` aborts; rejects with
   * a KubeApiError when the server refuses the watch, or with the transport error.
   */
  watch(
    path: string,
    query: Record<string, string>,
    onEvent: (type: string, object: unknown) => void,
    signal: AbortSignal,
  ): Promise<void>;
}

/** Where the API server is and how to trust it: from a kubeconfig or the pod's service account. */
export interface Endpoint {
  /** e.g. `https://10.96.0.1:443` (no trailing slash). */
  server: string;
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
  auth: Auth;
  /** The kubeconfig context's namespace, if it names one. */
  namespace?: string;
  /** Where the settings came from, for messages: "in-cluster", "kubeconfig /x (context y)". */
  source: string;
}

export interface TransportOptions {
  /**
   * Sustained requests per second to the API server, as client-go's rest.Config.QPS
   * (0 = unlimited). Watches count when they are opened.
   */
  qps?: number;
  /** Requests that may start at once before `qps` applies (client-go's Burst). */
  burst?: number;
  /** Per request: no bytes for this long fails it. Not applied to watches. */
  timeoutMs?: number;
  userAgent?: string;
}

/** client-go ships 5/10; a controller that writes 1,000 Secrets at once needs more (see docs/operations.md). */
export const DEFAULT_QPS = 300;
export const DEFAULT_BURST = 600;

/** Counters a caller can read (benchmarks, tests): requests sent per HTTP method. */
export interface TransportStats {
  requests: number;
  byStatus: Map<number, number>;
}

/** Told of every request the transport sends: the Kubernetes verb and the status (`error`: no answer). */
export type RequestObserver = (verb: string, code: string) => void;

/**
 * The Kubernetes verb of a request, as the API server's audit log and RBAC name it: `get`,
 * `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`. A path that is
 * not a resource (e.g. `/version`) is named by its HTTP method in lower case.
 */
export function kubeVerb(method: string, target: string): string {
  const m = method.toUpperCase();
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q + 1);
  const segs = path.split('/').filter(Boolean);
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 2) rest = segs.slice(2);
  else if (segs[0] === 'apis' && segs.length >= 3) rest = segs.slice(3);
  else return m.toLowerCase();
  // namespaces/NS/<resource>... is namespaced; namespaces and namespaces/NS are the resource itself.
  if (rest[0] === 'namespaces' && rest.length >= 3) rest = rest.slice(2);
  const collection = rest.length <= 1;
  switch (m) {
    case 'GET':
      if (/(^|&)watch=(true|1)(&|$)/.test(query)) return 'watch';
      return collection ? 'list' : 'get';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return collection ? 'deletecollection' : 'delete';
    default:
      return m.toLowerCase();
  }
}

/**
 * node:http, fetched without `import`: an ESM import of node:http builds its module namespace,
 * which reads the lazy `WebSocket`/`MessageEvent` getters and so loads Node's internal undici
 * (+13 MiB RSS, measured on Node 24). Only plain-http API servers need it at all.
 */
function httpModule(): typeof Http {
  return process.getBuiltinModule('node:http');
}

/** A KubeTransport on node:http(s) with one keep-alive agent; no client library on this path. */
export class HttpTransport implements KubeTransport {
  readonly endpoint: Endpoint;
  readonly stats: TransportStats = { requests: 0, byStatus: new Map() };
  /** Told of each request sent (the controller counts them in `cert_rotator_kube_api_requests_total`). */
  observer: RequestObserver | undefined;
  private readonly limiter: TokenBucket;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  private readonly secure: boolean;
  private readonly url: URL;
  private agent: Http.Agent;
  /** The exec-plugin certificate the current agent was built with. */
  private agentCert: string | Buffer | undefined;

  constructor(endpoint: Endpoint, options: TransportOptions = {}) {
    this.endpoint = endpoint;
    this.url = new URL(endpoint.server);
    if (this.url.protocol !== 'https:' && this.url.protocol !== 'http:') {
      throw new Error(`API server URL ${endpoint.server} (${endpoint.source}) is neither https nor http`);
    }
    this.secure = this.url.protocol === 'https:';
    this.limiter = new TokenBucket(options.qps ?? DEFAULT_QPS, options.burst ?? DEFAULT_BURST);
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.userAgent = options.userAgent ?? 'cert-rotator';
    this.agent = this.makeAgent(endpoint.cert, endpoint.key);
  }

  /** Closes idle keep-alive connections (open watches end with their signal). */
  close(): void {
    this.agent.destroy();
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    await this.limiter.take(opts.signal);
    let payload: string | Buffer | undefined;
    let contentType = opts.contentType;
    if (opts.body !== undefined) {
      if (typeof opts.body === 'string' || Buffer.isBuffer(opts.body)) payload = opts.body;
      else payload = JSON.stringify(opts.body);
      contentType ??= 'application/json';
    }
    const target = withQuery(path, opts.query);
    for (let attempt = 0; ; attempt++) {
      const res = await this.send(method, target, payload, contentType, opts.signal, this.timeoutMs);
      const text = await readBody(res);
      const status = res.statusCode ?? 0;
      if (status === 401 && attempt === 0 && this.endpoint.auth.invalidate?.()) continue;
      if (status < 200 || status >= 300) {
        throw new KubeApiError(status, method, path, text, flatHeaders(res));
      }
      if (text === '') return undefined as T;
      // Everything the API serves as JSON is parsed; text (e.g. `/metrics`) is returned as is.
      const type = res.headers['content-type'] ?? '';
      if (!type.includes('json')) return text as T;
      return JSON.parse(text) as T;
    }
  }

  async watch(
    path: string,
    query: Record<string, string>,
    onEvent: (type: string, object: unknown) => void,
    signal: AbortSignal,
  ): Promise<void> {
    try {
      await this.limiter.take(signal);
    } catch {
      return; // aborted while waiting for a token
    }
    const target = withQuery(path, { ...query, watch: 'true' });
    for (let attempt = 0; ; attempt++) {
      let res: IncomingMessage;
      try {
        res = await this.send('GET', target, undefined, undefined, signal, 0);
      } catch (err) {
        if (signal.aborted) return;
        throw err;
      }
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        const text = await readBody(res).catch(() => '');
        if (status === 401 && attempt === 0 && this.endpoint.auth.invalidate?.()) continue;
        throw new KubeApiError(status, 'GET', path, text, flatHeaders(res));
      }
      await streamLines(res, signal, (line) => {
        const event = JSON.parse(line) as { type?: unknown; object?: unknown };
        onEvent(String(event.type ?? ''), event.object);
      });
      return;
    }
  }

  private makeAgent(cert: string | Buffer | undefined, key: string | Buffer | undefined): Http.Agent {
    this.agentCert = cert;
    const common = { keepAlive: true, keepAliveMsecs: 30_000, scheduling: 'lifo' as const };
    if (!this.secure) return new (httpModule().Agent)(common);
    const e = this.endpoint;
    return new https.Agent({
      ...common,
      ...(e.ca ? { ca: e.ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      ...(e.tlsServerName ? { servername: e.tlsServerName } : {}),
      rejectUnauthorized: !e.insecureSkipTLSVerify,
    });
  }

  private observe(method: string, target: string, code: string): void {
    const observer = this.observer;
    if (!observer) return;
    try {
      observer(kubeVerb(method, target), code);
    } catch {
      // Counting must never fail a request.
    }
  }

  private async send(
    method: string,
    target: string,
    payload: string | Buffer | undefined,
    contentType: string | undefined,
    signal: AbortSignal | undefined,
    timeoutMs: number,
  ): Promise<IncomingMessage> {
    const applied = await this.endpoint.auth.apply();
    if (applied.cert && applied.cert !== this.agentCert) {
      this.agent.destroy();
      this.agent = this.makeAgent(applied.cert, applied.key);
    }
    const headers: OutgoingHttpHeaders = { accept: 'application/json, */*', 'user-agent': this.userAgent };
    if (applied.authorization) headers.authorization = applied.authorization;
    if (payload !== undefined) {
      headers['content-type'] = contentType ?? 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    this.stats.requests++;
    const lib = this.secure ? https : httpModule();
    return await new Promise<IncomingMessage>((resolve, reject) => {
      let answered = false;
      const req = lib.request(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: this.url.port || (this.secure ? 443 : 80),
          path: this.url.pathname.replace(/\/$/, '') + target,
          method,
          headers,
          agent: this.agent,
          ...(signal ? { signal } : {}),
        },
        (res) => {
          const status = res.statusCode ?? 0;
          this.stats.byStatus.set(status, (this.stats.byStatus.get(status) ?? 0) + 1);
          answered = true;
          this.observe(method, target, String(status));
          resolve(res);
        },
      );
      if (timeoutMs > 0) {
        req.setTimeout(timeoutMs, () =>
          req.destroy(new Error(`no answer from ${this.endpoint.server} for ${method} in ${timeoutMs} ms`)),
        );
      }
      req.on('error', (err) => {
        // An abort is the caller's choice (a watch being stopped), not the API server failing.
        if (err.name !== 'AbortError' && !signal?.aborted && !answered) this.observe(method, target, 'error');
        reject(describeTransportError(err, this.endpoint));
      });
      req.end(payload);
    });
  }
}

function withQuery(path: string, query: Record<string, string> | undefined): string {
  if (!query) return path;
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') qs.set(k, v);
  const s = qs.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}

function flatHeaders(res: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out[k] = String(v);
  return out;
}

/**
 * The body as text, decoded chunk by chunk: each socket Buffer dies young (freed at the next
 * scavenge) instead of living, promoted to the old generation, until the last byte of a large
 * LIST page has arrived, which left the malloc heap at the high-water mark of the initial list.
 */
async function readBody(res: IncomingMessage): Promise<string> {
  res.setEncoding('utf8');
  let text = '';
  for await (const chunk of res) text += chunk as string;
  return text;
}

/** Calls `onLine` for each newline-terminated line; resolves at the end of the stream or on abort. */
async function streamLines(
  res: IncomingMessage,
  signal: AbortSignal,
  onLine: (line: string) => void,
): Promise<void> {
  res.setEncoding('utf8');
  let rest = '';
  try {
    for await (const chunk of res) {
      rest += chunk as string;
      let nl = rest.indexOf('\n');
      while (nl >= 0) {
        const line = rest.slice(0, nl);
        rest = rest.slice(nl + 1);
        if (line.trim()) onLine(line);
        nl = rest.indexOf('\n');
      }
    }
    if (rest.trim()) onLine(rest);
  } catch (err) {
    if (signal.aborted) return;
    throw err;
  } finally {
    if (!res.complete) res.destroy();
  }
}

function describeTransportError(err: Error, e: Endpoint): Error {
  if (err.name === 'AbortError') return err;
  const code = (err as NodeJS.ErrnoException).code;
  const out = new Error(
    `cannot reach the API server ${e.server} (${e.source}): ${code ? `${code} ` : ''}${err.message}`,
    {
      cause: err,
    },
  );
  return out;
}
