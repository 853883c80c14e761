// How the controller's memory grows with the number of TLS Secrets: RSS 15 s after ready, peak
// RSS, and live heap + RSS after a forced full GC, at 0 / 5,000 / 20,000 / 50,000 Secrets, on
// the in-cluster credential path with the image's node flags (plus --expose-gc for the probe).
//   npm run build && node bench/memory.bench.mjs [--sizes 0,5000,20000,50000]
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { makeClients } from '../dist/kube/client.js';
import { transportFromKubeconfig } from '../dist/kube/http/index.js';
import { startOwnControlPlane } from '../test/testenv/env.ts';
import { startPeer } from '../test/testenv/processes.ts';
import {
  DAY,
  freePort,
  makeCA,
  makePairs,
  pool,
  procFigures,
  sleep,
  tlsSecret,
  waitUntil,
} from './peers/lib.mjs';

const IMAGE_NODE_FLAGS = (() => {
  const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8');
  return JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]').slice(1, -1);
})();
const CLI = new URL('../dist/cli.js', import.meta.url).pathname;
const PROBE = new URL('./memprobe.mjs', import.meta.url).pathname;

export async function run({
  sizes = [0, 5000, 20_000, 50_000],
  settleSeconds = 15,
  nodeFlags = IMAGE_NODE_FLAGS,
} = {}) {
  const { plane, dir } = await startOwnControlPlane('cert-rotator-memory-', { controllerManager: false });
  const admin = transportFromKubeconfig(plane.kubeconfigPath, { qps: 0 });
  const api = makeClients(admin);
  try {
    const saDir = join(dir, 'serviceaccount');
    await mkdir(saDir, { recursive: true });
    await api.core.createNamespace({ body: { metadata: { name: 'cert-rotator' } } });
    await api.core.createNamespacedServiceAccount({
      namespace: 'cert-rotator',
      body: { metadata: { name: 'cert-rotator' } },
    });
    await admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      body: {
        metadata: { name: 'cert-rotator-bench' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
        subjects: [{ kind: 'ServiceAccount', name: 'cert-rotator', namespace: 'cert-rotator' }],
      },
    });
    await admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      body: {
        metadata: { name: 'cert-rotator-bench-secrets' },
        rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] }],
      },
    });
    await admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      body: {
        metadata: { name: 'cert-rotator-bench-secrets' },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: 'cert-rotator-bench-secrets',
        },
        subjects: [{ kind: 'ServiceAccount', name: 'cert-rotator', namespace: 'cert-rotator' }],
      },
    });
    const tr = await api.core.createNamespacedServiceAccountToken({
      namespace: 'cert-rotator',
      name: 'cert-rotator',
      body: { spec: { audiences: [], expirationSeconds: 86_400 } },
    });
    await writeFile(join(saDir, 'token'), tr.status.token);
    await writeFile(join(saDir, 'ca.crt'), plane.caPem);
    const configPath = join(dir, 'config.yaml');
    await writeFile(
      configPath,
      stringify({ leaderElection: { enabled: false }, issuers: [{ name: 'self', selfSigned: {} }] }),
    );
    const ca = await makeCA('memory bench CA');
    const pairs = await makePairs(200, { fromMs: -DAY, toMs: 89 * DAY, ca });
    for (let i = 0; i < 10; i++) await api.core.createNamespace({ body: { metadata: { name: `mon-${i}` } } });
    let have = 0;
    const out = {};
    for (const n of sizes) {
      const idx = Array.from({ length: Math.max(0, n - have) }, (_, k) => have + k);
      await pool(idx, 32, (i) =>
        api.core.createNamespacedSecret({
          namespace: `mon-${i % 10}`,
          body: tlsSecret(`s-${i}`, pairs[i % 200]),
        }),
      );
      have = Math.max(have, n);
      const port = await freePort();
      const probeOut = join(dir, `probe-${n}.jsonl`);
      const t0 = performance.now();
      const p = await startPeer(
        `controller-${n}`,
        process.execPath,
        [
          ...nodeFlags,
          '--expose-gc',
          '--import',
          PROBE,
          CLI,
          'controller',
          '--config',
          configPath,
          '--metrics-address',
          `127.0.0.1:${port}`,
          '--log-level',
          'info',
        ],
        {
          logDir: join(dir, 'logs'),
          env: {
            KUBERNETES_SERVICE_HOST: '127.0.0.1',
            KUBERNETES_SERVICE_PORT: new URL(plane.apiServerUrl).port,
            CERT_ROTATOR_SERVICEACCOUNT_DIR: saDir,
            KUBECONFIG: '',
            HOME: dir,
            MEMPROBE_OUT: probeOut,
          },
        },
      );
      await waitUntil(
        `controller ready at ${n}`,
        async () => {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
          return res?.status === 200;
        },
        { intervalMs: 50 },
      );
      const readySeconds = (performance.now() - t0) / 1000;
      await sleep(settleSeconds * 1000);
      const steady = procFigures(p.pid);
      process.kill(p.pid, 'SIGUSR2');
      const probe = await waitUntil('memory probe', async () => {
        const text = await readFile(probeOut, 'utf8').catch(() => '');
        return text.trim() ? JSON.parse(text.trim().split('\n').pop()) : undefined;
      });
      await p.stop();
      out[n] = {
        readySeconds: Number(readySeconds.toFixed(2)),
        rssMiB: Number(steady.rssMiB.toFixed(1)),
        peakMiB: Number(steady.peakMiB.toFixed(1)),
        rssAfterGcMiB: probe.rssMiB,
        liveHeapAfterGcMiB: probe.heapUsedMiB,
        // The controller's own memory-reducing collections (HeapReclaimer), before the probe's.
        reclaims: (await readFile(p.logFile, 'utf8'))
          .split('\n')
          .filter((l) => l.includes('"heap pages released"'))
          .map((l) => {
            const { rssBeforeMiB, rssAfterMiB, pauseMs } = JSON.parse(l);
            return { rssBeforeMiB, rssAfterMiB, pauseMs };
          }),
        // Where the RSS after that GC is: V8's committed heap, and resident pages by mapping.
        afterGc: {
          heapCommittedMiB: probe.heapCommittedMiB,
          nodeBinaryMiB: probe.nodeBinaryMiB,
          mallocHeapMiB: probe.mallocHeapMiB,
          otherAnonMiB: probe.otherAnonMiB,
        },
      };
      process.stdout.write(`[memory] ${n} TLS Secrets: ${JSON.stringify(out[n])}\n`);
    }
    const base = out[sizes[0]]?.liveHeapAfterGcMiB ?? 0;
    for (const n of sizes) {
      if (n > 0)
        out[n].liveHeapPerSecretKiB = Number((((out[n].liveHeapAfterGcMiB - base) * 1024) / n).toFixed(2));
    }
    return out;
  } finally {
    admin.close();
    await plane.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // --node-flags "--max-semi-space-size=8": compare other flags with the image's.
  const { values } = parseArgs({ options: { sizes: { type: 'string' }, 'node-flags': { type: 'string' } } });
  const r = await run({
    ...(values.sizes ? { sizes: values.sizes.split(',').map(Number) } : {}),
    ...(values['node-flags'] !== undefined
      ? { nodeFlags: values['node-flags'].split(' ').filter(Boolean) }
      : {}),
  });
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  process.exit(0);
}
