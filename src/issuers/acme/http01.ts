/**
 * HTTP-01: the controller answers `GET /.well-known/acme-challenge/<token>` on its own listener.
 * One listener per address, shared by every issuer of the process. In a cluster, a short-lived
 * Service + EndpointSlice + Ingress in the Secret's namespace route the token paths to this
 * listener (see docs/acme.md); they are created per issuance and removed afterwards.
 */
import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import { requireListenAddress } from '../../listen-address.ts';

// Not imported: an ESM import of node:http loads Node's internal undici (+13 MiB RSS) through its
// lazy WebSocket getters, and this module is loaded by every controller (docs/operations.md).
const { createServer } = process.getBuiltinModule('node:http');

export const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
export const DEFAULT_HTTP01_ADDRESS = ':8089';

export class Http01Listener {
  private readonly tokens = new Map<string, string>();
  private server: Server | undefined;
  /** The bound port (known once started). */
  port = 0;

  async start(address: string): Promise<void> {
    const { host, port } = requireListenAddress(address);
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      const token = path.startsWith(CHALLENGE_PREFIX) ? path.slice(CHALLENGE_PREFIX.length) : '';
      const body = req.method === 'GET' || req.method === 'HEAD' ? this.tokens.get(token) : undefined;
      if (body === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(req.method === 'HEAD' ? undefined : body);
    });
    server.keepAliveTimeout = 5_000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address();
    this.port = typeof bound === 'object' && bound ? bound.port : port;
    this.server = server;
  }

  set(token: string, keyAuthorization: string): void {
    this.tokens.set(token, keyAuthorization);
  }

  delete(token: string): void {
    this.tokens.delete(token);
  }

  get size(): number {
    return this.tokens.size;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((r) => s.close(() => r()));
    s.closeAllConnections();
  }
}

const listeners = new Map<string, Promise<Http01Listener>>();

/** The process's listener on `address`, started on first use. */
export function http01Listener(address: string): Promise<Http01Listener> {
  let l = listeners.get(address);
  if (!l) {
    const listener = new Http01Listener();
    l = listener.start(address).then(() => listener);
    l.catch(() => listeners.delete(address));
    listeners.set(address, l);
  }
  return l;
}

/** Stops every listener (controller shutdown, tests). */
export async function closeHttp01Listeners(): Promise<void> {
  const all = [...listeners.values()];
  listeners.clear();
  await Promise.all(all.map(async (l) => (await l.catch(() => undefined))?.close()));
}

/** Name of the routing objects of one managed Secret: stable, ≤ 63 characters, a DNS label. */
export function http01RouteName(secretName: string): string {
  const hash = createHash('sha256').update(secretName).digest('hex').slice(0, 10);
  const stem = secretName
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 30)
    .replace(/-+$/, '');
  return `cert-rotator-acme-${stem}-${hash}`.replace(/--+/g, '-');
}
