/**
 * `/healthz`, `/readyz` and `/metrics` of the sidecar on one small listener. The Prometheus text
 * is rendered by hand: prom-client costs ~21 MiB of RSS, more than the rest of the sidecar.
 */
import type { Server } from 'node:http';
import { parseListenAddress } from '../listen-address.ts';
import { Metric, type ReloadMethod } from '../names.ts';
import { http } from './builtins.ts';

type ReloadMethodValue = (typeof ReloadMethod)[keyof typeof ReloadMethod];

export class SidecarMetrics {
  /** notAfter (seconds) of the certificate on disk, when there is one. */
  notAfterSeconds: number | undefined;
  private readonly reloads = new Map<string, number>();

  countReload(method: ReloadMethodValue, result: 'success' | 'failure'): void {
    const key = `method="${method}",result="${result}"`;
    this.reloads.set(key, (this.reloads.get(key) ?? 0) + 1);
  }

  render(): string {
    const lines: string[] = [];
    const n = Metric.sidecarCertificateNotAfter;
    lines.push(
      `# HELP ${n} notAfter of the certificate in the sidecar's directory, in seconds since the epoch.`,
    );
    lines.push(`# TYPE ${n} gauge`);
    if (this.notAfterSeconds !== undefined) lines.push(`${n} ${this.notAfterSeconds}`);
    const r = Metric.sidecarReloadsTotal;
    lines.push(`# HELP ${r} Attempts to tell the application to reload, by method and result.`);
    lines.push(`# TYPE ${r} counter`);
    for (const [labels, v] of [...this.reloads].sort()) lines.push(`${r}{${labels}} ${v}`);
    const mem = process.memoryUsage();
    lines.push('# HELP process_resident_memory_bytes Resident memory size in bytes.');
    lines.push('# TYPE process_resident_memory_bytes gauge');
    lines.push(`process_resident_memory_bytes ${mem.rss}`);
    lines.push('# HELP nodejs_heap_size_used_bytes V8 heap in use, in bytes.');
    lines.push('# TYPE nodejs_heap_size_used_bytes gauge');
    lines.push(`nodejs_heap_size_used_bytes ${mem.heapUsed}`);
    return `${lines.join('\n')}\n`;
  }
}

export interface Readiness {
  /** undefined when ready; otherwise why not (shown in the /readyz body). */
  notReadyReason(): string | undefined;
}

export async function startHealthServer(
  address: string,
  metrics: SidecarMetrics,
  readiness: Readiness,
): Promise<{ server: Server; port: number }> {
  const parsed = parseListenAddress(address);
  if (!parsed) throw new Error(`invalid --metrics-address "${address}": expected [host]:port`);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const why = readiness.notReadyReason();
      res
        .writeHead(why === undefined ? 200 : 503, { 'content-type': 'text/plain' })
        .end(why === undefined ? 'ok\n' : `not ready: ${why}\n`);
    } else if (path === '/metrics') {
      res
        .writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
        .end(metrics.render());
    } else {
      res.writeHead(404).end();
    }
  });
  return await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(parsed.port, parsed.host, () => {
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a ? a.port : parsed.port });
    });
  });
}
