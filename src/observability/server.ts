import type { Server } from 'node:http';
import { requireListenAddress } from '../listen-address.ts';
import { renderStatusPage, STATUS_PAGE_CSP, type StatusView } from '../ui/status-page.ts';
import type { Registry } from './prom.ts';

export interface HealthSource {
  /**
   * Ready once the first list has been processed and, on the leader, the lease is held. A
   * standby replica (not leading) is ready once it has listed: it serves metrics, and a rolling
   * update must be able to proceed while only one replica leads.
   */
  ready(): boolean;
}

// Not `import ... from 'node:http'`: that reads the module's lazy WebSocket getters and loads
// Node's internal undici, +13 MiB of RSS for nothing (docs/operations.md, "Memory").
const { createServer } = process.getBuiltinModule('node:http');

/** Headers of the status page: nothing but its own inline style may load, nothing is cached. */
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': STATUS_PAGE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

/** `/metrics`, `/healthz`, `/readyz` and, given a `statusPage` source, the status page at `/`. */
export function startHttpServer(
  address: string,
  metrics: { registry: Registry },
  health: HealthSource,
  statusPage?: () => StatusView,
): Promise<{ server: Server; port: number }> {
  const { host, port } = requireListenAddress(address);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ok = health.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (path === '/' && statusPage) {
      let html: string;
      try {
        html = renderStatusPage(statusPage());
      } catch {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('status page failed\n');
        return;
      }
      // 5,000 certificates make ~1.7 MB of HTML and ~70 kB gzipped: worth it through a port-forward.
      const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
      // Fetched on first use, not imported: a controller nobody looks at never loads zlib.
      const body = gzip ? process.getBuiltinModule('node:zlib').gzipSync(html) : Buffer.from(html);
      res.writeHead(200, {
        ...PAGE_HEADERS,
        vary: 'accept-encoding',
        ...(gzip ? { 'content-encoding': 'gzip' } : {}),
        'content-length': body.length,
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a ? a.port : port });
    });
  });
}
