import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { nodeBinaries } from '../../src/devcluster/binaries.ts';
import { diffHost, type HostSnapshot, snapshotHost } from '../../src/devcluster/host-state.ts';
import { type Node, nodeUnavailableReason, startNode } from '../../src/devcluster/node.ts';
import { makeRunDir } from './env.ts';
import { buildImage, describeImage } from './image.ts';
import { isAlive } from './processes.ts';

/** What e2e test files get from the broker (test/testenv/node.ts asks for it). */
export interface E2eNodeInfo {
  runDir: string;
  kubeconfigPath: string;
  apiServerUrl: string;
  caPem: string;
  nodeName: string;
  nodeIp: string;
  podCidr: string;
  serviceCidr: string;
  images: { pause: string; testbox: string };
  /** The archives those images were imported from. */
  imageArchives: { pause: string; testbox: string };
  /** The repository's Dockerfile built by image.ts (not yet imported: productImage() does). */
  product: { ref: string; archive: string; sizeBytes: number };
  timings: Record<string, number>;
}

/** Where the node cannot run: the one-line reason (the project's tests skip, or fail with CI=true). */
export interface E2eBroker {
  url?: string;
  unavailable?: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    e2eNode: E2eBroker;
  }
}

const say = (line: string) => process.stdout.write(`[e2e] ${line}\n`);

/**
 * Global setup of the `e2e` project. Vitest runs every project's global setup when the run starts,
 * but the node is needed only once the e2e files run (after `integration`), so it is started
 * lazily: this process serves a small broker on loopback, and the first e2e file's request starts
 * the node (provisioning if needed) here, in the main process, which owns it until the teardown.
 * The host is snapshotted right before the node starts and compared after it stopped: any
 * difference fails the run.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const unavailable = nodeUnavailableReason();
  if (unavailable) {
    if (process.env.CI === 'true') throw new Error(`e2e: ${unavailable} (CI=true: the e2e tests must run)`);
    say(`skipped: ${unavailable}`);
    project.provide('e2eNode', { unavailable });
    return undefined;
  }

  let starting: Promise<{ node: Node; info: E2eNodeInfo; before: HostSnapshot }> | undefined;
  const start = () => {
    starting ??= (async () => {
      const t0 = Date.now();
      const found = await nodeBinaries((line) => {
        if (!/: cached$|: installed \(/.test(line)) say(line);
      });
      if ('unavailable' in found) throw new Error(found.unavailable);
      const provisionMs = Date.now() - t0;
      // The product image, built before the host is snapshotted: buildah leaves its storage's
      // overlay mount in place, which is the image cache's, not something the node changed.
      const t1 = Date.now();
      const product = await buildImage();
      say(`image ${describeImage(product)} ready in ${Date.now() - t1} ms`);
      let before: HostSnapshot = {};
      const runDir = await makeRunDir('cert-rotator-e2e-');
      const node = await startNode(found.bins, join(runDir, 'node'), {
        onStep: (s) => {
          if (s.startsWith('waiting for another') || s.startsWith('cleaning up')) say(s);
        },
        // Under the machine's node lock: no other node is changing the host meanwhile.
        onLocked: async () => {
          before = await snapshotHost();
        },
      });
      const t = node.timings;
      say(
        `node ready in ${t.startMs} ms (control plane ${t.controlPlaneMs} ms, kubelet → Ready ${t.kubeletToReadyMs} ms${t.lockWaitMs > 1000 ? `; waited ${t.lockWaitMs} ms for another node` : ''}${t.staleCleanupMs > 0 ? `; earlier run cleaned up in ${t.staleCleanupMs} ms` : ''}; provisioning check ${provisionMs} ms); logs in ${runDir}`,
      );
      const info: E2eNodeInfo = {
        runDir,
        kubeconfigPath: node.kubeconfigPath,
        apiServerUrl: node.apiServerUrl,
        caPem: node.caPem,
        nodeName: node.nodeName,
        nodeIp: node.network.nodeIp,
        podCidr: node.network.podCidr,
        serviceCidr: node.network.serviceCidr,
        images: node.images,
        imageArchives: { pause: found.bins.pause.archive, testbox: found.bins.testbox.archive },
        product: { ref: product.ref, archive: product.archive, sizeBytes: product.sizeBytes },
        timings: { ...t, provisionMs },
      };
      return { node, info, before };
    })();
    return starting;
  };

  const server: Server = createServer((req, res) => {
    handle(req, res, start).catch((err: unknown) => reply(res, 500, { error: String(err) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  project.provide('e2eNode', { url: `http://127.0.0.1:${port}` });

  return async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (!starting) return;
    const started = await starting.catch(() => undefined);
    if (!started) return;
    const { node, before } = started;
    const t0 = Date.now();
    await node.stop({
      // Still holding the machine's node lock, so the next node cannot have started yet.
      whileLocked: async () => {
        const left = node.peers.filter((p) => isAlive(p.pid)).map((p) => `${p.name} (${p.pid})`);
        if (left.length > 0)
          throw new Error(`e2e: node processes still running after stop: ${left.join(', ')}`);
        const diff = diffHost(before, await snapshotHost());
        if (diff.length > 0) throw new Error(`e2e: the host was not left as found:\n  ${diff.join('\n  ')}`);
      },
    });
    say(`node stopped in ${Date.now() - t0} ms; host left as found`);
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  start: () => Promise<{ node: Node; info: E2eNodeInfo; before: HostSnapshot }>,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://broker');
  if (req.method === 'GET' && url.pathname === '/node') {
    try {
      reply(res, 200, (await start()).info);
    } catch (err) {
      reply(res, 503, { error: err instanceof Error ? err.message : String(err) });
    }
    return;
  }
  if (req.method === 'GET' && url.pathname === '/host-snapshot') {
    // The snapshot taken before the node started, for the test that checks the check.
    reply(res, 200, (await start()).before);
    return;
  }
  if (req.method === 'POST' && url.pathname === '/images') {
    const archive = url.searchParams.get('archive');
    if (!archive) return reply(res, 400, { error: 'archive= missing' });
    const { node } = await start();
    try {
      reply(res, 200, {
        names: await node.importImage(archive, url.searchParams.get('baseName') ?? undefined),
      });
    } catch (err) {
      reply(res, 500, { error: err instanceof Error ? err.message : String(err) });
    }
    return;
  }
  reply(res, 404, { error: `no ${req.method} ${url.pathname}` });
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
