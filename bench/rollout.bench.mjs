// Rollouts: (1) memory of the workload index as the workload count grows (in-process, each size
// measured in a fresh child process); (2) one Secret used by 200 Deployments on the real
// kube-apiserver + kube-controller-manager of the test harness: time from the Secret write to the
// last pod-template patch, and patches per Deployment.
// Needs a build and the provisioned test peers:
//   npx tsc -p tsconfig.build.json && npx node bench/rollout.bench.mjs [--skip-cluster]
import { spawn, spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { certificatesFromPem, readCertificateSummary } from '../dist/pki/index.js';
import { certificateHash } from '../dist/rollout/hash.js';
import { WorkloadIndex } from '../dist/rollout/workload-index.js';

const SELF = fileURLToPath(import.meta.url);
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---------------------------------------------------------------------------------------------
// (1) Index memory

/** A watch event's worth of Deployment JSON: three containers, two Secrets, env and envFrom. */
function deploymentJson(i) {
  const ns = `team-${i % 50}`;
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: `service-${i}`,
      namespace: ns,
      uid: `0d3c9a7e-1f2b-4c5d-8e9f-${String(i).padStart(12, '0')}`,
      resourceVersion: String(100000 + i),
      generation: 3,
      labels: { app: `service-${i}`, team: ns },
      annotations: { 'deployment.kubernetes.io/revision': '3' },
    },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: `service-${i}` } },
      template: {
        metadata: {
          labels: { app: `service-${i}` },
          annotations: { 'cert-rotator.io/certificate-hash': 'a3f1c2d4e5f60718293a4b5c6d7e8f90' },
        },
        spec: {
          volumes: [
            { name: 'tls', secret: { secretName: `service-${i}-tls` } },
            { name: 'ca', projected: { sources: [{ secret: { name: `${ns}-ca` } }] } },
          ],
          initContainers: [{ name: 'init', image: 'registry.example/init:1.2.3' }],
          containers: [0, 1, 2].map((c) => ({
            name: `c${c}`,
            image: `registry.example/service-${i}:${c}`,
            env: [
              { name: 'MODE', value: 'production' },
              { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: `service-${i}-db`, key: 'pw' } } },
            ],
            envFrom: [{ configMapRef: { name: `service-${i}-config` } }],
            volumeMounts: [{ name: 'tls', mountPath: '/tls' }],
            resources: { requests: { cpu: '100m', memory: '128Mi' } },
          })),
        },
      },
    },
  });
}

/** Child mode: index n workloads, report heap and RSS growth after full GCs. */
async function indexChild(n) {
  const settle = () => {
    for (let i = 0; i < 3; i++) globalThis.gc();
  };
  const index = new WorkloadIndex();
  // Warm up the code paths so compiled code is not counted as index memory.
  const warm = new WorkloadIndex();
  for (let i = 0; i < 200; i++) warm.upsert('deployment', JSON.parse(deploymentJson(1_000_000 + i)));
  settle();
  const before = process.memoryUsage();
  for (let i = 0; i < n; i++) index.upsert('deployment', JSON.parse(deploymentJson(i)));
  settle();
  const after = process.memoryUsage();
  process.stdout.write(
    JSON.stringify({
      n,
      heapBytes: after.heapUsed - before.heapUsed,
      rssBytes: after.rss - before.rss,
      size: index.size,
      secrets: index.secretCount,
    }),
  );
}

function measureIndex(sizes, repeats) {
  const rows = [];
  for (const n of sizes) {
    const samples = [];
    for (let r = 0; r < repeats; r++) {
      const res = spawnSync(process.execPath, ['--expose-gc', SELF, '--index-child', String(n)], {
        encoding: 'utf8',
      });
      if (res.status !== 0) throw new Error(`index child failed: ${res.stderr}`);
      samples.push(JSON.parse(res.stdout));
    }
    const heap = median(samples.map((s) => s.heapBytes));
    rows.push({
      workloads: n,
      medianHeapKiB: Math.round(heap / 1024),
      medianRssKiB: Math.round(median(samples.map((s) => s.rssBytes)) / 1024),
      heapBytesPerWorkload: n > 0 ? Math.round(heap / n) : 0,
      secretsIndexed: samples[0].secrets,
    });
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// (2) 200 Deployments on a real control plane

async function makePair(dnsName, lifetimeMs) {
  const { generateKey, issueCertificate } = await import('../dist/pki/index.js');
  const key = await generateKey('ecdsa-p256');
  const now = Date.now();
  const cert = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { dnsNames: [dnsName], ipAddresses: [], uris: [] },
    notBefore: now - 60_000,
    notAfter: now + lifetimeMs,
    issuer: 'self',
  });
  return { certPem: cert.certPem, keyPem: key.privateKeyPem };
}

function fingerprint(certPem) {
  const s = readCertificateSummary(certificatesFromPem(certPem)[0]);
  return `${s.serialHex}:${s.spkiSha256}`;
}

async function inBatches(items, size, fn) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

async function measureCluster({ deployments, rounds, debounce }) {
  const { startOwnControlPlane } = await import('../test/testenv/env.ts');
  const { plane: cp, kubeConfig: kc, dir } = await startOwnControlPlane('cert-rotator-bench-rollout-');
  let child;
  try {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const ns = 'bench-rollout';
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const DAY = 86_400_000;
    const tls = (pair) => ({
      'tls.crt': Buffer.from(pair.certPem).toString('base64'),
      'tls.key': Buffer.from(pair.keyPem).toString('base64'),
    });
    await core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: 'shared-tls', annotations: { 'cert-rotator.io/enabled': 'true' } },
        type: 'kubernetes.io/tls',
        data: tls(await makePair('shared.example.com', 30 * DAY)),
      },
    });
    const names = Array.from({ length: deployments }, (_, i) => `web-${i}`);
    await inBatches(names, 20, (name) =>
      apps.createNamespacedDeployment({
        namespace: ns,
        body: {
          metadata: { name },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: name } },
            template: {
              metadata: { labels: { app: name } },
              spec: {
                containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
                volumes: [{ name: 'tls', secret: { secretName: 'shared-tls' } }],
              },
            },
          },
        },
      }),
    );
    const configPath = join(dir, 'config.yaml');
    await writeFile(
      configPath,
      stringify({
        namespaces: [ns],
        issuers: [{ name: 'self', selfSigned: {} }],
        defaults: { issuer: 'self' },
        rollout: { debounce },
        leaderElection: { enabled: false },
      }),
    );
    const logs = [];
    child = spawn(
      process.execPath,
      [
        CLI,
        'controller',
        '--config',
        configPath,
        '--kubeconfig',
        cp.kubeconfigPath,
        '--metrics-address',
        '127.0.0.1:0',
        '--log-level',
        'info',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let partial = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        try {
          logs.push({ at: Date.now(), ...JSON.parse(l) });
        } catch {}
      }
    });
    const until = async (what, pred, timeoutMs = 60_000, everyMs = 20) => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const v = await pred();
        if (v) return v;
        if (Date.now() > end) {
          const tail = logs.slice(-10).map((l) => JSON.stringify(l));
          throw new Error(`timed out waiting for ${what}; controller log tail:\n${tail.join('\n')}`);
        }
        await new Promise((r) => setTimeout(r, everyMs));
      }
    };
    const ready = await until('the rollout index', () => logs.find((l) => l.msg === 'rollout index ready'));
    if (ready.workloads !== deployments) throw new Error(`index holds ${ready.workloads} workloads`);
    const list = async () => (await apps.listNamespacedDeployment({ namespace: ns })).items;

    const results = [];
    for (let round = 0; round < rounds; round++) {
      const gen0 = new Map((await list()).map((d) => [d.metadata.name, d.metadata.generation]));
      const pair = await makePair('shared.example.com', 30 * DAY);
      const expected = certificateHash([{ name: 'shared-tls', fingerprint: fingerprint(pair.certPem) }]);
      const logStart = logs.length;
      const s = await core.readNamespacedSecret({ namespace: ns, name: 'shared-tls' });
      const t0 = Date.now();
      await core.replaceNamespacedSecret({
        namespace: ns,
        name: 'shared-tls',
        body: { ...s, data: tls(pair) },
      });
      await until(
        'every Deployment to carry the new hash',
        async () =>
          (await list()).every(
            (d) => d.spec.template.metadata?.annotations?.['cert-rotator.io/certificate-hash'] === expected,
          ),
        30_000,
        10,
      );
      const restarted = () => logs.slice(logStart).filter((l) => l.msg === 'workload restarted');
      await until('every restart log line', () => restarted().length >= deployments, 10_000);
      const patchTimes = restarted().map((l) => l.at);
      const lastPatch = Math.max(...patchTimes);
      // Settle past the debounce, then count: one patch (one generation) per Deployment, no more.
      await new Promise((r) => setTimeout(r, 1_500));
      const after = await list();
      const extra = after.filter((d) => d.metadata.generation !== gen0.get(d.metadata.name) + 1).length;
      results.push({
        writeToLastPatchMs: lastPatch - t0,
        firstToLastPatchMs: lastPatch - Math.min(...patchTimes),
        patches: restarted().length,
        deploymentsNotExactlyOnce: extra,
      });
    }
    return {
      deployments,
      debounce,
      rounds: results,
      medianWriteToLastPatchMs: median(results.map((r) => r.writeToLastPatchMs)),
      medianFirstToLastPatchMs: median(results.map((r) => r.firstToLastPatchMs)),
      patchesPerDeployment: median(results.map((r) => r.patches / deployments)),
    };
  } finally {
    child?.kill('SIGTERM');
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function run({
  sizes = [500, 1000, 2000, 4000],
  repeats = 5,
  cluster = true,
  deployments = 200,
  rounds = 5,
  debounce = '1s',
} = {}) {
  const index = measureIndex(sizes, repeats);
  const rollout = cluster ? await measureCluster({ deployments, rounds, debounce }) : undefined;
  return { node: process.version, index, rollout };
}

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (arg('index-child') !== undefined) {
    await indexChild(Number(arg('index-child')));
  } else {
    const out = await run({
      cluster: !process.argv.includes('--skip-cluster'),
      rounds: Number(arg('rounds') ?? 5),
      debounce: arg('debounce') ?? '1s',
    });
    console.log(`rollout benchmark, node ${out.node}`);
    console.log('  index memory (median of 5 fresh processes, after full GC):');
    for (const r of out.index) {
      console.log(
        `    ${String(r.workloads).padStart(5)} workloads: heap +${String(r.medianHeapKiB).padStart(6)} KiB  rss +${String(r.medianRssKiB).padStart(6)} KiB  ${r.heapBytesPerWorkload} B/workload (${r.secretsIndexed} Secrets indexed)`,
      );
    }
    if (out.rollout) {
      const r = out.rollout;
      console.log(
        `  ${r.deployments} Deployments sharing one Secret, debounce ${r.debounce}, ${r.rounds.length} rounds:`,
      );
      console.log(
        `    Secret write → last patch: median ${r.medianWriteToLastPatchMs} ms (rounds ${r.rounds.map((x) => x.writeToLastPatchMs).join(' ')})`,
      );
      console.log(`    first → last patch: median ${r.medianFirstToLastPatchMs} ms`);
      console.log(
        `    patches per Deployment: ${r.patchesPerDeployment}; Deployments not changed exactly once: ${r.rounds.map((x) => x.deploymentsNotExactlyOnce).join(' ')}`,
      );
    }
  }
}
