import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';

/** Ports this process has handed out: two peers started side by side must never get the same one. */
const handedOut = new Set<number>();

/**
 * A TCP port that was free on 127.0.0.1 a moment ago and has not been handed out before by this
 * process. (The kernel may offer a just-closed port again, and peers started in parallel each ask
 * for several ports before any of them binds.)
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await probePort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

async function probePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface HttpsProbe {
  ca?: string;
  cert?: string;
  key?: string;
}

/** GET an https URL; resolves with status and body, never throws for HTTP errors. */
export async function httpsGet(url: string, tls: HttpsProbe = {}): Promise<{ status: number; body: string }> {
  return await new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { ...tls, timeout: 5_000, headers: { 'user-agent': 'cert-rotator-testenv' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Polls `check` until it returns a value other than undefined/false, or throws with `what` and
 * the last error once `timeoutMs` has passed. The waiting primitive of every test: a condition
 * with a deadline, never a bare sleep.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 30_000, intervalMs = 100 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
