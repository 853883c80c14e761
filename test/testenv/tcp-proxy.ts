import { createServer, type Server, Socket } from 'node:net';

/**
 * A loopback TCP proxy a test controls, to put between one process and a peer (for example a
 * controller and kube-apiserver). TLS passes through untouched, so the peer's certificate must
 * name 127.0.0.1 (the test control plane's does).
 *
 * - `freeze()`: a network partition as the client sees it. Open connections stay open but no byte
 *   moves in either direction (both sides are paused, their data stays in the kernel buffers), and
 *   new connections are accepted but not forwarded. Requests hang; nothing fails fast.
 * - `thaw()`: bytes flow again, including whatever was held back (late delivery, like TCP
 *   retransmission after a partition heals); held-back new connections are forwarded.
 * - `reset()`: destroys every connection (both ends see a reset); later ones work normally.
 */
export interface TcpProxy {
  /** host:port to dial instead of the target. */
  readonly address: string;
  readonly port: number;
  freeze(): void;
  thaw(): void;
  reset(): void;
  readonly frozen: boolean;
  /** Connections accepted so far (to check the client really went through the proxy). */
  readonly accepted: number;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  const held: Pair[] = [];
  let frozen = false;
  let accepted = 0;

  const connect = (pair: Pair) => {
    const upstream = new Socket();
    pair.upstream = upstream;
    const drop = () => {
      pair.client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    upstream.on('error', drop);
    upstream.on('close', drop);
    pair.client.on('close', drop);
    upstream.connect(target.port, target.host, () => {
      // Not pipe(): pipe resumes a paused source on 'drain', which would leak bytes while frozen.
      forward(pair.client, upstream);
      forward(upstream, pair.client);
      if (frozen) {
        pair.client.pause();
        upstream.pause();
      } else {
        pair.client.resume();
      }
    });
  };

  const forward = (from: Socket, to: Socket) => {
    from.on('data', (chunk) => {
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (!frozen) from.resume();
    });
    from.on('end', () => to.end());
  };

  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    accepted++;
    const pair: Pair = { client, upstream: undefined };
    pairs.add(pair);
    client.on('error', () => {
      client.destroy();
      pair.upstream?.destroy();
      pairs.delete(pair);
    });
    if (frozen) held.push(pair);
    else connect(pair);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound ? bound.port : 0;

  return {
    address: `127.0.0.1:${port}`,
    port,
    get frozen() {
      return frozen;
    },
    get accepted() {
      return accepted;
    },
    freeze() {
      frozen = true;
      for (const p of pairs) {
        p.client.pause();
        p.upstream?.pause();
      }
    },
    thaw() {
      frozen = false;
      for (const p of pairs) {
        p.client.resume();
        p.upstream?.resume();
      }
      for (const p of held.splice(0)) if (!p.client.destroyed) connect(p);
    },
    reset() {
      for (const p of [...pairs]) {
        p.client.resetAndDestroy();
        p.upstream?.resetAndDestroy();
        pairs.delete(p);
      }
      held.length = 0;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream?.destroy();
      }
      pairs.clear();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** `https://127.0.0.1:6443` → `{ host, port }`. */
export function hostPortOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)),
  };
}
