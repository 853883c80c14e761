// Controller figures against a real kube-apiserver started for the benchmark:
//  - parse + evaluate throughput of Secret records on one core (in-process);
//  - start-to-ready time and RSS with 10,000 opted-in + 10,000 other TLS Secrets, against a
//    bare paged LIST of the same Secrets in a fresh process, alternated in the same run;
//  - 1,000 Secrets due at once, CA issuer, ECDSA P-256: time until all are written, API errors.
//
//   npm run build && node bench/controller.bench.mjs [--secrets 10000] [--due 1000] [--rounds 3]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { loadConfig } from '../dist/config/load.js';
import { evaluate } from '../dist/controller/evaluate.js';
import { recordFromSecret } from '../dist/controller/record.js';
import { generateKey, issueCertificate } from '../dist/pki/index.js';
import { startOwnControlPlane } from '../test/testenv/env.ts';
import { freePort } from '../test/testenv/net.ts';

const DAY = 86_400_000;
// The controller runs with the node flags of the image's ENTRYPOINT, as it will in a cluster.
const IMAGE_NODE_FLAGS = (() => {
  const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8');
  const argv = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]');
  return argv.slice(1, -1);
})();
const CLI = new URL('../dist/cli.js', import.meta.url).pathname;
const BARE = new URL('./bare-list.mjs', import.meta.url).pathname;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function makePairs(count, { fromMs, toMs, ca }) {
  const now = Date.now();
  const out = [];
  for (let i = 0; i < count; i++) {
    const key = (await generateKey('ecdsa-p256')).privateKeyPem;
    const cert = await issueCertificate({
      subjectKeyPem: key,
      identity: {
        dnsNames: [`host-${i}.bench.example.com`, `alt-${i}.bench.example.com`],
        ipAddresses: [],
        uris: [],
      },
      notBefore: now + fromMs,
      notAfter: now + toMs,
      issuer: ca ?? 'self',
      isCA: false,
    });
    out.push({ certPem: cert.chainPem, keyPem: key });
  }
  return out;
}

function secretBody(name, pair, annotations) {
  return {
    metadata: { name, annotations },
    type: 'kubernetes.io/tls',
    data: {
      'tls.crt': Buffer.from(pair.certPem).toString('base64'),
      'tls.key': Buffer.from(pair.keyPem).toString('base64'),
    },
  };
}

async function createMany(core, namespace, bodies, parallel = 24) {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++];
        await core.createNamespacedSecret({ namespace, body });
      }
    }),
  );
}

export function parseEvaluateThroughput(secrets, config, rounds = 7) {
  const rates = [];
  const now = Date.now();
  let sink = 0;
  for (let r = 0; r < rounds + 1; r++) {
    const t0 = performance.now();
    for (const s of secrets) {
      const ev = evaluate(recordFromSecret(s), config, now);
      if (ev.kind === 'planned') sink += ev.decision.at;
    }
    const secs = (performance.now() - t0) / 1000;
    if (r > 0) rates.push(secrets.length / secs); // round 0 warms the JIT
  }
  if (sink === 0) throw new Error('evaluate produced nothing');
  return median(rates);
}

function spawnTimed(args, env = {}) {
  const t0 = performance.now();
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let out = '';
  proc.stdout.on('data', (d) => {
    out += d;
  });
  proc.stderr.on('data', (d) => {
    out += d;
  });
  const exited = new Promise((r) => proc.once('exit', (code) => r(code)));
  return { proc, t0, exited, output: () => out };
}

async function bareList(kubeconfig) {
  const p = spawnTimed([BARE, kubeconfig]);
  const code = await p.exited;
  if (code !== 0) throw new Error(`bare list failed: ${p.output()}`);
  return { ms: performance.now() - p.t0, items: Number(p.output().trim()) };
}

async function rssKiB(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

const IDLE_SECONDS = 30;

/** CPU (percent of one core) and RSS of a process over `seconds` of wall time. */
async function idleCost(pid, seconds) {
  const ticks = async () => {
    const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100 per second)
  };
  const t0 = await ticks();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const used = (await ticks()) - t0;
  return {
    cpuPercent: Number(((used / 100 / seconds) * 100).toFixed(2)),
    rssMiB: Number(((await rssKiB(pid)) / 1024).toFixed(1)),
    seconds,
  };
}

async function controllerToReady(kubeconfig, configPath) {
  const port = await freePort();
  const p = spawnTimed([
    ...IMAGE_NODE_FLAGS,
    CLI,
    'controller',
    '--config',
    configPath,
    '--kubeconfig',
    kubeconfig,
    '--metrics-address',
    `127.0.0.1:${port}`,
    '--log-level',
    'warn',
  ]);
  for (;;) {
    if (p.proc.exitCode !== null) throw new Error(`controller exited: ${p.output()}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 10));
  }
  const readyMs = performance.now() - p.t0;
  // RSS once the process has settled (GC of the list pages it parsed).
  await new Promise((r) => setTimeout(r, 3000));
  const rss = await rssKiB(p.proc.pid);
  return { readyMs, rssMiB: rss / 1024, proc: p, port };
}

export async function run({ secrets = 10_000, due = 1_000, rounds = 3 } = {}) {
  const { plane, kubeConfig, dir } = await startOwnControlPlane('cert-rotator-bench-');
  try {
    const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
    for (const ns of ['managed', 'monitored', 'due', 'cert-rotator'])
      await core.createNamespace({ body: { metadata: { name: ns } } });

    // A CA for the `ca` issuer, and 200 distinct certificates reused across the Secrets.
    const caKey = (await generateKey('ecdsa-p256')).privateKeyPem;
    const caCert = await issueCertificate({
      subjectKeyPem: caKey,
      identity: { commonName: 'bench CA', dnsNames: [], ipAddresses: [], uris: [] },
      notBefore: Date.now() - DAY,
      notAfter: Date.now() + 3650 * DAY,
      issuer: 'self',
      isCA: true,
    });
    const ca = { certPem: caCert.certPem, keyPem: caKey };
    await core.createNamespacedSecret({ namespace: 'cert-rotator', body: secretBody('bench-ca', ca, {}) });
    const fresh = await makePairs(200, { fromMs: -DAY, toMs: 89 * DAY, ca });
    const config = {
      namespaces: ['managed', 'monitored', 'due'],
      concurrency: 8,
      issuers: [{ name: 'internal-ca', ca: { secret: { namespace: 'cert-rotator', name: 'bench-ca' } } }],
      defaults: { issuer: 'internal-ca' },
    };
    const configPath = join(dir, 'config.yaml');
    await writeFile(configPath, stringify(config));

    // 1. parse + evaluate, in-process, over the same Secret objects the API returns.
    const sample = Array.from({ length: 20_000 }, (_, i) => ({
      ...secretBody(`s-${i}`, fresh[i % fresh.length], i % 2 ? { 'cert-rotator.io/enabled': 'true' } : {}),
      metadata: {
        name: `s-${i}`,
        namespace: 'managed',
        resourceVersion: String(i),
        annotations: i % 2 ? { 'cert-rotator.io/enabled': 'true' } : {},
      },
    }));
    const parseEval = parseEvaluateThroughput(sample, loadConfig(stringify(config)));

    // 2. start-up at size.
    const t0 = performance.now();
    await createMany(
      core,
      'managed',
      Array.from({ length: secrets }, (_, i) =>
        secretBody(`m-${i}`, fresh[i % fresh.length], { 'cert-rotator.io/enabled': 'true' }),
      ),
    );
    await createMany(
      core,
      'monitored',
      Array.from({ length: secrets }, (_, i) => secretBody(`o-${i}`, fresh[i % fresh.length], {})),
    );
    const populateS = (performance.now() - t0) / 1000;
    const bare = [];
    const ready = [];
    const rss = [];
    let idle;
    let scrape;
    for (let r = 0; r < rounds; r++) {
      bare.push((await bareList(plane.kubeconfigPath)).ms);
      const c = await controllerToReady(plane.kubeconfigPath, configPath);
      ready.push(c.readyMs);
      rss.push(c.rssMiB);
      if (r === rounds - 1) {
        // Idle: no Secret changes; what the controller costs while it only watches.
        idle = await idleCost(c.proc.proc.pid, IDLE_SECONDS);
        const t = performance.now();
        const body = await (await fetch(`http://127.0.0.1:${c.port}/metrics`)).text();
        scrape = { bytes: body.length, ms: Math.round(performance.now() - t) };
      }
      c.proc.proc.kill('SIGTERM');
      await c.proc.exited;
    }

    // 3. 1,000 due at once.
    const stale = await makePairs(50, { fromMs: -10 * DAY, toMs: 60_000, ca });
    await createMany(
      core,
      'due',
      Array.from({ length: due }, (_, i) =>
        secretBody(`d-${i}`, stale[i % stale.length], { 'cert-rotator.io/enabled': 'true' }),
      ),
    );
    // Progress is read from the controller's log lines, not from /metrics: a scrape of 21,000
    // Secrets' series costs the controller ~200 ms of CPU and would slow what is measured.
    const port = await freePort();
    const proc = spawnTimed([
      ...IMAGE_NODE_FLAGS,
      CLI,
      'controller',
      '--config',
      configPath,
      '--kubeconfig',
      plane.kubeconfigPath,
      '--metrics-address',
      `127.0.0.1:${port}`,
      '--log-level',
      'info',
    ]);
    const c = { proc, port };
    const dueStart = proc.t0;
    let renewedAll = 0;
    for (;;) {
      if (proc.proc.exitCode !== null) throw new Error(`controller exited: ${proc.output()}`);
      const done = proc.output().split('"msg":"certificate renewed"').length - 1;
      if (done >= due) break;
      if (performance.now() - dueStart > 300_000)
        throw new Error(`${due} renewals did not finish in 300 s (${done})`);
      await new Promise((r) => setTimeout(r, 25));
    }
    renewedAll = (performance.now() - dueStart) / 1000;
    const scrapeStart = performance.now();
    const metrics = await (await fetch(`http://127.0.0.1:${c.port}/metrics`)).text();
    const scrapeMs = performance.now() - scrapeStart;
    const failures = Number(
      /cert_rotator_renewals_total\{issuer="internal-ca",result="failure"\} (\d+)/.exec(metrics)?.[1] ?? 0,
    );
    c.proc.proc.kill('SIGTERM');
    await c.proc.exited;
    const apiErrors = (
      c.proc
        .output()
        .match(/reconcile failed|Secret changed while renewing|list\/watch failed|could not record/g) ?? []
    ).length;
    const list = await core.listNamespacedSecret({ namespace: 'due' });
    const written = list.items.filter(
      (s) => s.metadata?.annotations?.['cert-rotator.io/revision'] === '1',
    ).length;

    return {
      parseEvaluatePerSecond: Math.round(parseEval),
      populateSeconds: Number(populateS.toFixed(1)),
      secrets: { managed: secrets, monitored: secrets },
      bareListMs: Math.round(median(bare)),
      readyMs: Math.round(median(ready)),
      readyOverBareList: Number((median(ready) / median(bare)).toFixed(2)),
      rssMiB: Number(median(rss).toFixed(1)),
      idle,
      scrapeAtStartupSize: { ...scrape, secrets: 2 * secrets + 1 },
      scrapeWithDue: { bytes: metrics.length, ms: Math.round(scrapeMs), secrets: 2 * secrets + due + 1 },
      due: {
        count: due,
        secondsFromStartToAllWritten: Number(renewedAll.toFixed(2)),
        renewalFailures: failures,
        apiErrors,
        written,
      },
    };
  } finally {
    await plane.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: { secrets: { type: 'string' }, due: { type: 'string' }, rounds: { type: 'string' } },
  });
  const figures = await run({
    secrets: Number(values.secrets ?? 10_000),
    due: Number(values.due ?? 1_000),
    rounds: Number(values.rounds ?? 3),
  });
  console.log(JSON.stringify(figures, null, 2));
  process.exit(0);
}
