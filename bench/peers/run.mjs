// `npm run bench:peers`: cert-rotator against the tools a user would install instead, on one
// kube-apiserver, alternately, medians of --rounds rounds, writing docs/performance.md.
//   1. expiry metrics for N TLS Secrets (x509-certificate-exporter), N in --sizes;
//   2. one Secret replaced, used by --fanout Deployments, --workloads present (Reloader);
//   3. --burst certificates wanted at once from a CA issuer (cert-manager, one Certificate each);
//   4. the mixed set of issue 22 (x509-certificate-exporter configured for the same sources): TLS
//      Secrets (at least --mixed-tls), Opaque Secrets with a PEM bundle, ConfigMaps with 3-certificate
//      bundles, PKCS#12 Secrets, kubeconfig Secrets, ValidatingWebhookConfigurations.
// Time, RSS (steady and peak), CPU seconds, API requests (the API server's apiserver_request_total,
// less the benchmark's own requests and the server's idle rate), bytes per scrape.
//   npm run build && node bench/peers/run.mjs [--rounds 3] [--only exporter,reloader,certmanager,mixed]
//     [--sizes 5000,20000] [--fanout 200] [--workloads 2000] [--burst 1000] [--no-write]
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { CONFIG_DEFAULTS } from '../../dist/config/schema.js';
import { makeClients } from '../../dist/kube/client.js';
import { transportFromKubeconfig } from '../../dist/kube/http/index.js';
import { startOwnControlPlane } from '../../test/testenv/env.ts';
import { startPeer } from '../../test/testenv/processes.ts';
import {
  DAY,
  freePort,
  locatePeers,
  machine,
  makeCA,
  makePairs,
  median,
  peerVersions,
  pool,
  procFigures,
  sleep,
  tlsSecret,
  waitUntil,
} from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    only: { type: 'string', default: 'exporter,reloader,certmanager,mixed' },
    // The mixed set: TLS,Opaque,ConfigMaps,PKCS#12,kubeconfigs,webhooks (issue 22's ~20,000 objects).
    mixed: { type: 'string', default: '10000,4000,3000,1000,1000,100' },
    // Which tools the mixed scenario runs (experiments on one of them; implies --no-write).
    'mixed-tools': { type: 'string', default: 'cert-rotator,x509-certificate-exporter' },
    sizes: { type: 'string', default: '5000,20000' },
    fanout: { type: 'string', default: '200' },
    workloads: { type: 'string', default: '2000' },
    burst: { type: 'string', default: '1000' },
    'higher-qps': { type: 'string', default: '1000' },
    'higher-burst': { type: 'string', default: '2000' },
    'steady-wait': { type: 'string', default: '15' },
    'burst-settle': { type: 'string', default: '60' },
    'no-write': { type: 'boolean', default: false },
    // Other node flags for cert-rotator than the image's (experiments; implies --no-write).
    'node-flags': { type: 'string' },
  },
});
const ROUNDS = Number(args.rounds);
const ONLY = new Set(args.only.split(','));
const SIZES = args.sizes.split(',').map(Number);
const FANOUT = Number(args.fanout);
const WORKLOADS = Number(args.workloads);
const BURST = Number(args.burst);
const STEADY_S = Number(args['steady-wait']);
const BURST_SETTLE_S = Number(args['burst-settle']);

const REPO = new URL('../../', import.meta.url).pathname;
const CLI = join(REPO, 'dist/cli.js');
// The controller runs with the node flags of the image's ENTRYPOINT, as it does in a cluster.
const IMAGE_NODE_FLAGS =
  args['node-flags'] !== undefined
    ? args['node-flags'].split(' ').filter(Boolean)
    : (() => {
        const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
        const argv = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]');
        return argv.slice(1, -1);
      })();
if (args['node-flags'] !== undefined) args['no-write'] = true;
const MIXED_TOOLS = args['mixed-tools'].split(',');
if (MIXED_TOOLS.length < 2) args['no-write'] = true;

const peers = locatePeers();
const log = (msg) => process.stdout.write(`[bench:peers ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
log(`peers from ${peers.dir}`);

const { plane, dir } = await startOwnControlPlane('cert-rotator-peers-', { controllerManager: false });
const admin = transportFromKubeconfig(plane.kubeconfigPath, { qps: 0 });
const api = makeClients(admin);
const apiPort = new URL(plane.apiServerUrl).port;

/** Sum of apiserver_request_total, and of its 4xx/5xx part. */
async function apiTotals() {
  const text = await admin.request('GET', '/metrics');
  let total = 0;
  let errors = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    total += v;
    const code = /code="(\d+)"/.exec(line)?.[1];
    if (code && Number(code) >= 400) errors += v;
  }
  return { total, errors, own: admin.stats.requests, at: performance.now() };
}

let idleRatePerS = 0;
/** Requests others made between two apiTotals(): the benchmark's own and the idle rate taken out. */
function apiDelta(a, b) {
  const own = b.own - a.own;
  const idle = (idleRatePerS * (b.at - a.at)) / 1000;
  return { requests: Math.max(0, Math.round(b.total - a.total - own - idle)), errors: b.errors - a.errors };
}

async function ensureNamespace(name) {
  await api.core.createNamespace({ body: { metadata: { name } } }).catch((e) => {
    if (e.code !== 409) throw e;
  });
}

async function createAll(
  namespace,
  bodies,
  create = (ns, body) => api.core.createNamespacedSecret({ namespace: ns, body }),
) {
  await pool(bodies, 24, async (body) => {
    await create(namespace, body).catch((e) => {
      if (e.code !== 409) throw e;
    });
  });
}

async function getText(url) {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

// ---- the in-cluster credential path the chart uses, simulated on loopback ----
const saDir = join(dir, 'serviceaccount');
await mkdir(saDir, { recursive: true });
await ensureNamespace('cert-rotator');
await api.core.createNamespacedServiceAccount({
  namespace: 'cert-rotator',
  body: { metadata: { name: 'cert-rotator' } },
});
await admin.request('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
  body: {
    metadata: { name: 'cert-rotator-bench' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
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
const homeDir = join(dir, 'home');
await mkdir(homeDir, { recursive: true });

let runSeq = 0;
async function startCertRotator(config, { name = 'cert-rotator' } = {}) {
  const configPath = join(dir, `config-${++runSeq}.yaml`);
  await writeFile(configPath, stringify({ leaderElection: { enabled: false }, ...config }));
  const port = await freePort();
  const t0 = performance.now();
  const p = await startPeer(
    `${name}-${runSeq}`,
    process.execPath,
    [
      ...IMAGE_NODE_FLAGS,
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
        KUBERNETES_SERVICE_PORT: apiPort,
        CERT_ROTATOR_SERVICEACCOUNT_DIR: saDir,
        KUBECONFIG: '',
        HOME: homeDir,
      },
    },
  );
  return { p, t0, port, url: `http://127.0.0.1:${port}` };
}

async function startBinary(bin, argv, name) {
  const t0 = performance.now();
  const p = await startPeer(`${name}-${++runSeq}`, bin, argv, {
    logDir: join(dir, 'logs'),
    env: { KUBECONFIG: plane.kubeconfigPath, HOME: homeDir },
  });
  return { p, t0 };
}

async function logOf(p) {
  return await readFile(p.logFile, 'utf8').catch(() => '');
}

const results = { exporter: {}, reloader: undefined, certmanager: undefined, mixed: undefined };

// ---- idle request rate of the API server itself ----
{
  const a = await apiTotals();
  await sleep(10_000);
  const b = await apiTotals();
  idleRatePerS = Math.max(0, (b.total - a.total - (b.own - a.own)) / ((b.at - a.at) / 1000));
  log(`API server idle rate: ${idleRatePerS.toFixed(2)} requests/s`);
}

// ---- data ----
const ca = await makeCA('bench CA');
const fresh = await makePairs(200, { fromMs: -DAY, toMs: 89 * DAY, ca });
let tlsCount = 0;
async function topUpTlsSecrets(n) {
  const nss = 10;
  for (let i = 0; i < nss; i++) await ensureNamespace(`mon-${i}`);
  const want = [];
  for (let i = tlsCount; i < n; i++) want.push(i);
  await pool(want, 24, async (i) => {
    await api.core
      .createNamespacedSecret({
        namespace: `mon-${i % nss}`,
        body: tlsSecret(`s-${i}`, fresh[i % fresh.length]),
      })
      .catch((e) => {
        if (e.code !== 409) throw e;
      });
  });
  tlsCount = Math.max(tlsCount, n);
}

// ---- 2. Reloader: one Secret, FANOUT Deployments using it, WORKLOADS present ----
function deployment(name, secretName, annotations = {}) {
  return {
    metadata: { name, annotations },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name: 'app',
              image: 'registry.invalid/app',
              volumeMounts: [{ name: 'tls', mountPath: '/tls' }],
            },
          ],
          volumes: [{ name: 'tls', secret: { secretName } }],
        },
      },
    },
  };
}

async function reloaderScenario() {
  // Two targets, one per tool, so neither ever sees the other's change; both see all workloads.
  const targets = { 'cert-rotator': 'fan-cr', reloader: 'fan-rl' };
  for (const ns of [...Object.values(targets), 'fill']) await ensureNamespace(ns);
  for (const [tool, ns] of Object.entries(targets)) {
    // cert-rotator rolls the workloads of Secrets it manages (docs/rollouts.md); not due for renewal.
    const managed = tool === 'cert-rotator' ? { 'cert-rotator.io/enabled': 'true' } : {};
    await createAll(ns, [tlsSecret('shared-tls', fresh[0], managed)]);
    const ann = tool === 'reloader' ? { 'reloader.stakater.com/auto': 'true' } : {};
    await createAll(
      ns,
      Array.from({ length: FANOUT }, (_, i) => deployment(`d-${i}`, 'shared-tls', ann)),
      (namespace, body) => api.apps.createNamespacedDeployment({ namespace, body }),
    );
  }
  const filler = Math.max(0, WORKLOADS - 2 * FANOUT);
  await createAll(
    'fill',
    Array.from({ length: filler }, (_, i) => deployment(`f-${i}`, `other-${i % 50}`)),
    (namespace, body) => api.apps.createNamespacedDeployment({ namespace, body }),
  );
  const generations = async (ns) => {
    const list = await api.apps.listNamespacedDeployment({ namespace: ns, limit: 1000 });
    return new Map(list.items.map((d) => [d.metadata.name, d.metadata.generation]));
  };
  let pairIndex = 1;
  const runOne = async (tool) => {
    const ns = targets[tool];
    const proc =
      tool === 'cert-rotator'
        ? await startCertRotator({ rollout: { debounce: '0' }, issuers: [{ name: 'self', selfSigned: {} }] })
        : await startBinary(peers.bins.reloader, ['--log-level', 'info'], 'reloader');
    if (tool === 'cert-rotator') {
      await waitUntil(
        'cert-rotator ready',
        async () => (await getText(`${proc.url}/readyz`).catch(() => ({}))).status === 200,
      );
      await waitUntil('cert-rotator rollout index', async () =>
        (await logOf(proc.p)).includes('rollout index ready'),
      );
    } else {
      await waitUntil('Reloader watching', async () =>
        /Starting Controller to watch resource type: secrets/i.test(await logOf(proc.p)),
      );
    }
    await sleep(5_000); // let both settle after their initial lists
    const before = await generations(ns);
    const steady = procFigures(proc.p.pid);
    const a = await apiTotals();
    const pair = fresh[pairIndex++ % fresh.length];
    const t0 = performance.now();
    const current = await api.core.readNamespacedSecret({ namespace: ns, name: 'shared-tls' });
    await api.core.replaceNamespacedSecret({
      namespace: ns,
      name: 'shared-tls',
      body: { ...current, data: tlsSecret('x', pair).data },
    });
    await waitUntil(
      `${tool}: all ${FANOUT} templates changed`,
      async () => {
        const now = await generations(ns);
        return [...before].every(([n, g]) => (now.get(n) ?? 0) > g);
      },
      { timeoutMs: 180_000, intervalMs: 200 },
    );
    const seconds = (performance.now() - t0) / 1000;
    await sleep(2_000);
    const b = await apiTotals();
    const after = procFigures(proc.p.pid);
    const patched = await generations(ns);
    const extra = [...before].filter(([n, g]) => (patched.get(n) ?? 0) > g + 1).length;
    await proc.p.stop();
    return {
      seconds,
      rssSteadyMiB: steady.rssMiB,
      rssAfterMiB: after.rssMiB,
      peakMiB: after.peakMiB,
      cpuSeconds: after.cpuSeconds - steady.cpuSeconds,
      apiRequests: apiDelta(a, b).requests,
      workloadsPatchedTwice: extra,
    };
  };
  const runs = { 'cert-rotator': [], reloader: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ['cert-rotator', 'reloader'] : ['reloader', 'cert-rotator'];
    for (const tool of order) {
      const fig = await runOne(tool);
      log(`reloader round ${r + 1} ${tool}: ${JSON.stringify(fig)}`);
      runs[tool].push(fig);
    }
  }
  return runs;
}

// ---- 1. x509-certificate-exporter: expiry metrics for N TLS Secrets ----
async function exporterScenario(n) {
  await topUpTlsSecrets(n - 2); // + the two shared-tls Secrets of the Reloader scenario
  const runOne = async (tool) => {
    const a = await apiTotals();
    let proc;
    let complete;
    if (tool === 'cert-rotator') {
      proc = await startCertRotator({ issuers: [{ name: 'self', selfSigned: {} }] });
      await waitUntil(
        'cert-rotator ready',
        async () => (await getText(`${proc.url}/readyz`).catch(() => ({}))).status === 200,
        {
          intervalMs: 50,
        },
      );
      complete = await waitUntil('cert-rotator /metrics complete', async () => {
        const { text } = await getText(`${proc.url}/metrics`);
        const series = text.split('\ncert_rotator_certificate_not_after_timestamp_seconds{').length - 1;
        return series >= n ? { at: performance.now(), bytes: Buffer.byteLength(text) } : undefined;
      });
    } else {
      const port = await freePort();
      proc = await startBinary(
        peers.bins['x509-certificate-exporter'],
        ['--watch-kube-secrets', '--listen-address', `127.0.0.1:${port}`],
        'x509-certificate-exporter',
      );
      proc.url = `http://127.0.0.1:${port}`;
      complete = await waitUntil(
        'x509-certificate-exporter /metrics complete',
        async () => {
          const r = await getText(`${proc.url}/metrics`).catch(() => undefined);
          if (r?.status !== 200) return undefined;
          const series = r.text.split('\nx509_cert_not_after{').length - 1;
          return series >= n ? { at: performance.now(), bytes: Buffer.byteLength(r.text) } : undefined;
        },
        { intervalMs: 500, timeoutMs: 600_000 },
      );
    }
    const seconds = (complete.at - proc.t0) / 1000;
    await sleep(STEADY_S * 1000);
    const fig = procFigures(proc.p.pid);
    const b = await apiTotals();
    await proc.p.stop();
    return {
      seconds,
      rssSteadyMiB: fig.rssMiB,
      peakMiB: fig.peakMiB,
      cpuSeconds: fig.cpuSeconds,
      apiRequests: apiDelta(a, b).requests,
      bytesPerScrape: complete.bytes,
    };
  };
  const runs = { 'cert-rotator': [], 'x509-certificate-exporter': [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order =
      r % 2 === 0
        ? ['cert-rotator', 'x509-certificate-exporter']
        : ['x509-certificate-exporter', 'cert-rotator'];
    for (const tool of order) {
      const fig = await runOne(tool);
      log(`exporter ${n} round ${r + 1} ${tool}: ${JSON.stringify(fig)}`);
      runs[tool].push(fig);
    }
  }
  return runs;
}

// ---- 3. cert-manager: BURST certificates at once from a CA issuer ----
async function applyCertManagerCrds() {
  for (const f of (await readdir(peers.crdDir)).filter((x) => x.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(await readFile(join(peers.crdDir, f), 'utf8'))) {
      const crd = doc.toJS();
      if (!crd?.kind) continue;
      await admin
        .request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: crd })
        .catch((e) => {
          if (e.code !== 409) throw e;
        });
    }
  }
  await waitUntil('cert-manager CRDs established', async () => {
    const list = await admin.request('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions');
    const cm = list.items.filter((c) => c.spec.group.endsWith('cert-manager.io'));
    return (
      cm.length >= 6 &&
      cm.every((c) => c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True'))
    );
  });
  // The API server serves new groups a moment after they are established.
  await waitUntil('cert-manager.io served', async () =>
    admin.request('GET', '/apis/cert-manager.io/v1').then(
      () => true,
      () => false,
    ),
  );
}

/** Counts Secrets in `ns` (but the CA's) whose tls.crt is non-empty, through one watch. */
function watchWritten(ns, want) {
  const written = new Set();
  const abort = new AbortController();
  let resolveDone;
  const done = new Promise((r) => {
    resolveDone = r;
  });
  const watching = admin
    .watch(
      `/api/v1/namespaces/${ns}/secrets`,
      {},
      (type, obj) => {
        const name = obj?.metadata?.name;
        if (!name || name === 'bench-ca' || type === 'DELETED' || type === 'BOOKMARK') return;
        if (obj.data?.['tls.crt']) written.add(name);
        if (written.size >= want) resolveDone(performance.now());
      },
      abort.signal,
    )
    .catch((err) => log(`watch of ${ns} ended: ${err.message}`));
  return {
    done,
    written,
    stop: () => {
      abort.abort();
      return watching;
    },
  };
}

async function certManagerScenario() {
  await applyCertManagerCrds();
  let seq = 0;
  const runOne = async (tool, kubeAPI) => {
    const ns = `burst-${++seq}`;
    await ensureNamespace(ns);
    await api.core.createNamespacedSecret({ namespace: ns, body: tlsSecret('bench-ca', ca) });
    if (tool === 'cert-rotator') {
      await createAll(
        ns,
        Array.from({ length: BURST }, (_, i) =>
          tlsSecret(`c-${i}`, undefined, {
            'cert-rotator.io/enabled': 'true',
            'cert-rotator.io/dns-names': `c-${i}.burst.example.com`,
          }),
        ),
      );
    } else {
      await admin.request('POST', `/apis/cert-manager.io/v1/namespaces/${ns}/issuers`, {
        body: {
          apiVersion: 'cert-manager.io/v1',
          kind: 'Issuer',
          metadata: { name: 'ca' },
          spec: { ca: { secretName: 'bench-ca' } },
        },
      });
      await pool(
        Array.from({ length: BURST }, (_, i) => i),
        24,
        (i) =>
          admin.request('POST', `/apis/cert-manager.io/v1/namespaces/${ns}/certificates`, {
            body: {
              apiVersion: 'cert-manager.io/v1',
              kind: 'Certificate',
              metadata: { name: `c-${i}` },
              spec: {
                secretName: `c-${i}`,
                dnsNames: [`c-${i}.burst.example.com`],
                issuerRef: { name: 'ca', kind: 'Issuer' },
                privateKey: { algorithm: 'ECDSA', size: 256 },
                duration: '2160h',
              },
            },
          }),
      );
    }
    const w = watchWritten(ns, BURST);
    await sleep(500); // the watch is open before the process starts
    const a = await apiTotals();
    let proc;
    if (tool === 'cert-rotator') {
      proc = await startCertRotator({
        namespaces: [ns],
        concurrency: 8,
        issuers: [{ name: 'ca', ca: { secret: { namespace: ns, name: 'bench-ca' } } }],
        defaults: { issuer: 'ca' },
        ...(kubeAPI ? { kubeAPI } : {}),
      });
    } else {
      const port = await freePort();
      proc = await startBinary(
        peers.bins['cert-manager-controller'],
        [
          '--kubeconfig',
          plane.kubeconfigPath,
          '--leader-elect=false',
          `--namespace=${ns}`,
          `--cluster-resource-namespace=${ns}`,
          `--metrics-listen-address=127.0.0.1:${port}`,
        ],
        'cert-manager',
      );
    }
    const doneAt = await Promise.race([
      w.done,
      sleep(600_000).then(() => {
        throw new Error(`${tool}: ${BURST} Secrets not written within 600 s (${w.written.size})`);
      }),
    ]);
    const seconds = (doneAt - proc.t0) / 1000;
    const end = procFigures(proc.p.pid);
    const b = await apiTotals();
    await w.stop();
    await sleep(BURST_SETTLE_S * 1000);
    const later = procFigures(proc.p.pid);
    let apiErrorsLogged;
    if (tool === 'cert-rotator') {
      const text = await logOf(proc.p);
      apiErrorsLogged = (
        text.match(
          /reconcile failed|Secret changed while renewing|list\/watch failed|could not record|HTTP 429|HTTP 5\d\d/g,
        ) ?? []
      ).length;
    }
    await proc.p.stop();
    const d = apiDelta(a, b);
    return {
      seconds,
      rssEndMiB: end.rssMiB,
      rssLaterMiB: later.rssMiB,
      peakMiB: later.peakMiB,
      cpuSeconds: end.cpuSeconds,
      apiRequests: d.requests,
      apiErrorResponses: d.errors,
      ...(apiErrorsLogged !== undefined ? { apiErrorsLogged } : {}),
    };
  };
  const runs = { 'cert-rotator': [], 'cert-manager': [], higher: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? ['cert-rotator', 'cert-manager'] : ['cert-manager', 'cert-rotator'];
    for (const tool of order) {
      const fig = await runOne(tool);
      log(`burst round ${r + 1} ${tool}: ${JSON.stringify(fig)}`);
      runs[tool].push(fig);
    }
  }
  const higher = { qps: Number(args['higher-qps']), burst: Number(args['higher-burst']) };
  for (let r = 0; r < ROUNDS; r++) {
    const fig = await runOne('cert-rotator', higher);
    log(
      `burst round ${r + 1} cert-rotator at qps ${higher.qps}/burst ${higher.burst}: ${JSON.stringify(fig)}`,
    );
    runs.higher.push(fig);
  }
  runs.higherSetting = higher;
  return runs;
}

// ---- 4. the mixed set: every source of issue 22, side by side with x509-certificate-exporter ----
const [MIX_TLS, MIX_OPAQUE, MIX_CM, MIX_P12, MIX_KC, MIX_HOOKS] = args.mixed.split(',').map(Number);
let mixedCounts;
async function createMixed() {
  const nss = 10;
  for (let i = 0; i < nss; i++) await ensureNamespace(`mix-${i}`);
  await topUpTlsSecrets(MIX_TLS);
  const p12 = readFileSync(join(REPO, 'test/unit/monitor/fixtures/modern.p12')).toString('base64');
  const b64 = (t) => Buffer.from(t).toString('base64');
  const pem = (i) =>
    fresh[i % fresh.length].certPem.split('-----END CERTIFICATE-----')[0] + '-----END CERTIFICATE-----\n';
  const byNs = (count, make) => {
    const out = Array.from({ length: nss }, () => []);
    for (let i = 0; i < count; i++) out[i % nss].push(make(i));
    return out;
  };
  const secret = (name, data) => ({ metadata: { name }, type: 'Opaque', data });
  const groups = [
    ...byNs(MIX_OPAQUE, (i) => secret(`bundle-${i}`, { 'bundle.pem': b64(pem(i) + ca.certPem) })),
    ...byNs(MIX_P12, (i) => secret(`p12-${i}`, { 'keystore.p12': p12, password: b64('s3cret') })),
    ...byNs(MIX_KC, (i) =>
      secret(`kc-${i}`, {
        kubeconfig: b64(
          stringify({
            apiVersion: 'v1',
            kind: 'Config',
            clusters: [
              {
                name: 'c',
                cluster: { server: 'https://127.0.0.1:1', 'certificate-authority-data': b64(ca.certPem) },
              },
            ],
            users: [{ name: 'u', user: { 'client-certificate-data': b64(pem(i)) } }],
          }),
        ),
      }),
    ),
  ];
  for (const [i, bodies] of groups.entries()) await createAll(`mix-${i % nss}`, bodies);
  const cms = byNs(MIX_CM, (i) => ({
    metadata: { name: `trust-${i}` },
    data: { 'ca.crt': pem(i) + pem(i + 1) + ca.certPem },
  }));
  for (const [i, bodies] of cms.entries())
    await createAll(`mix-${i}`, bodies, (ns, body) =>
      api.core.createNamespacedConfigMap({ namespace: ns, body }),
    );
  const hooks = Array.from({ length: MIX_HOOKS }, (_, i) => i);
  await pool(hooks, 8, async (i) => {
    await admin
      .request('POST', '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations', {
        body: {
          metadata: { name: `bench-hook-${i}` },
          webhooks: [
            {
              name: `check-${i}.bench.example.com`,
              clientConfig: { url: 'https://127.0.0.1:1/never', caBundle: b64(ca.certPem) },
              rules: [
                {
                  apiGroups: ['bench.example.com'],
                  apiVersions: ['v1'],
                  operations: ['CREATE'],
                  resources: ['nothing'],
                },
              ],
              failurePolicy: 'Ignore',
              sideEffects: 'None',
              admissionReviewVersions: ['v1'],
            },
          ],
        },
      })
      .catch((e) => {
        if (e.code !== 409 && e.statusCode !== 409) throw e;
      });
  });
  mixedCounts = {
    tlsSecrets: tlsCount,
    opaqueSecrets: MIX_OPAQUE,
    configMaps: MIX_CM,
    pkcs12Secrets: MIX_P12,
    kubeconfigSecrets: MIX_KC,
    webhookConfigurations: MIX_HOOKS,
  };
}

/** Polls `count()` until it has reached `atLeast` and not grown for 3 s; the time it first reached its final value. */
async function whenStable(what, count) {
  let best = { n: -1, at: 0, bytes: 0 };
  let since = performance.now();
  return await waitUntil(
    what,
    async () => {
      const c = await count().catch(() => undefined);
      if (!c) return undefined;
      if (c.n > best.n) {
        best = { n: c.n, at: performance.now(), bytes: c.bytes };
        since = performance.now();
        return undefined;
      }
      return c.ready && performance.now() - since > 3000 ? { ...best, bytes: c.bytes } : undefined;
    },
    { intervalMs: 500, timeoutMs: 900_000 },
  );
}

async function mixedScenario() {
  await createMixed();
  log(`mixed set: ${JSON.stringify(mixedCounts)}`);
  const objects = Object.values(mixedCounts).reduce((a, b) => a + b, 0);
  const runOne = async (tool) => {
    const a = await apiTotals();
    let proc;
    let complete;
    if (tool === 'cert-rotator') {
      proc = await startCertRotator({
        issuers: [{ name: 'self', selfSigned: {} }],
        monitoring: {
          secrets: { enabled: true, keys: ['bundle.pem'] },
          configMaps: { enabled: true, keys: ['ca.crt'] },
          keystores: { enabled: true, keys: ['keystore.p12'], password: { key: 'password' } },
          kubeconfigs: { enabled: true, keys: ['kubeconfig'] },
          webhooks: { enabled: true, kinds: ['ValidatingWebhookConfiguration'] },
        },
      });
      complete = await whenStable('cert-rotator /metrics complete', async () => {
        const ready = (await getText(`${proc.url}/readyz`)).status === 200;
        const { text } = await getText(`${proc.url}/metrics`);
        const n =
          text.split('\ncert_rotator_certificate_not_after_timestamp_seconds{').length -
          1 +
          text.split('\ncert_rotator_x509_not_after_timestamp_seconds{').length -
          1;
        return { n, ready: ready && n >= mixedCounts.tlsSecrets, bytes: Buffer.byteLength(text) };
      });
    } else {
      const port = await freePort();
      const configPath = join(dir, `exporter-mixed-${++runSeq}.yaml`);
      await writeFile(
        configPath,
        stringify({
          server: { listen: `127.0.0.1:${port}` },
          log: { level: 'info', format: 'text' },
          sources: [
            {
              kind: 'kubernetes',
              name: 'cluster-secrets',
              namespaces: { include: ['*'], exclude: [] },
              secrets: {
                include: ['*'],
                exclude: [],
                types: [
                  { type: 'kubernetes.io/tls', keyPatterns: ['^tls\\.crt$'], format: 'pem' },
                  { type: 'Opaque', keyPatterns: ['^bundle\\.pem$'], format: 'pem' },
                  {
                    type: 'Opaque',
                    keyPatterns: ['^keystore\\.p12$'],
                    format: 'pkcs12',
                    pkcs12: { passphraseKey: 'password' },
                  },
                ],
              },
              configMaps: { include: ['*'], exclude: [], keyPatterns: ['^ca\\.crt$'], format: 'pem' },
            },
            {
              kind: 'cabundle',
              name: 'cluster-cabundles',
              cabundles: {
                resources: { validating: true, mutating: false, apiservice: false, crdConversion: false },
                include: ['*'],
                exclude: [],
              },
            },
          ],
        }),
      );
      proc = await startBinary(
        peers.bins['x509-certificate-exporter'],
        ['--config', configPath],
        'x509-certificate-exporter-mixed',
      );
      proc.url = `http://127.0.0.1:${port}`;
      complete = await whenStable('x509-certificate-exporter /metrics complete', async () => {
        const r = await getText(`${proc.url}/metrics`);
        if (r.status !== 200) return undefined;
        const n = r.text.split('\nx509_cert_not_after{').length - 1;
        return { n, ready: n >= mixedCounts.tlsSecrets, bytes: Buffer.byteLength(r.text) };
      });
    }
    const seconds = (complete.at - proc.t0) / 1000;
    await sleep(STEADY_S * 1000);
    const fig = procFigures(proc.p.pid);
    const b = await apiTotals();
    await proc.p.stop();
    return {
      seconds,
      series: complete.n,
      rssSteadyMiB: fig.rssMiB,
      peakMiB: fig.peakMiB,
      cpuSeconds: fig.cpuSeconds,
      apiRequests: apiDelta(a, b).requests,
      bytesPerScrape: complete.bytes,
    };
  };
  const runs = { 'cert-rotator': [], 'x509-certificate-exporter': [], objects, counts: mixedCounts };
  for (let r = 0; r < ROUNDS; r++) {
    const order =
      r % 2 === 0
        ? ['cert-rotator', 'x509-certificate-exporter']
        : ['x509-certificate-exporter', 'cert-rotator'];
    for (const tool of order.filter((t) => MIXED_TOOLS.includes(t))) {
      const fig = await runOne(tool);
      log(`mixed round ${r + 1} ${tool}: ${JSON.stringify(fig)}`);
      runs[tool].push(fig);
    }
  }
  return runs;
}

const startedAt = new Date();
const loadBefore = machine().loadAverage1m;
try {
  if (ONLY.has('reloader')) {
    await topUpTlsSecrets(Math.min(...SIZES) - 2);
    results.reloader = await reloaderScenario();
  }
  if (ONLY.has('exporter')) for (const n of SIZES) results.exporter[n] = await exporterScenario(n);
  if (ONLY.has('certmanager')) results.certmanager = await certManagerScenario();
  // Last: its objects would change what the others list.
  if (ONLY.has('mixed')) results.mixed = await mixedScenario();
} finally {
  admin.close();
  await plane.stop();
}
const loadAfter = machine().loadAverage1m;

// ---- report ----
const med = (runs, k) => median(runs.map((x) => x[k]));
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const mb = (x) => (Number.isFinite(x) ? `${(x / 1e6).toFixed(2)} MB` : 'n/a');
const int = (x) => (Number.isFinite(x) ? String(Math.round(x)) : 'n/a');
const rows = [];
function row(work, what, ours, theirs, fmt, lowerIsBetter = true) {
  const ratio = ours / theirs;
  let verdict = 'n/a';
  if (Number.isFinite(ratio) && ours > 0 && theirs > 0) {
    verdict = lowerIsBetter
      ? ratio <= 1
        ? `${(1 / ratio).toFixed(1 / ratio < 2 ? 2 : 1)}× less`
        : `${ratio.toFixed(ratio < 2 ? 2 : 1)}× more`
      : `${ratio.toFixed(1)}×`;
  } else if (ours === 0 && theirs > 0) verdict = 'none vs some';
  rows.push(`| ${work} | ${what} | ${fmt(ours)} | ${fmt(theirs)} | ${verdict} |`);
}
const peerV = peerVersions(peers.readme);
for (const [n, runs] of Object.entries(results.exporter)) {
  const o = runs['cert-rotator'];
  const t = runs['x509-certificate-exporter'];
  const w = `expiry metrics, ${Number(n).toLocaleString('en')} TLS Secrets (vs x509-certificate-exporter)`;
  row(w, 'start → complete `/metrics`, s', med(o, 'seconds'), med(t, 'seconds'), f2);
  row(w, `RSS ${STEADY_S} s after complete, MiB`, med(o, 'rssSteadyMiB'), med(t, 'rssSteadyMiB'), f1);
  row(w, 'peak RSS, MiB', med(o, 'peakMiB'), med(t, 'peakMiB'), f1);
  row(w, 'CPU seconds', med(o, 'cpuSeconds'), med(t, 'cpuSeconds'), f2);
  row(w, 'API requests', med(o, 'apiRequests'), med(t, 'apiRequests'), int);
  row(w, 'bytes per scrape', med(o, 'bytesPerScrape'), med(t, 'bytesPerScrape'), mb);
}
if (results.mixed) {
  const o = results.mixed['cert-rotator'];
  const t = results.mixed['x509-certificate-exporter'];
  const c = results.mixed.counts;
  const w = `expiry metrics, mixed set of ${results.mixed.objects.toLocaleString('en')} objects: ${c.tlsSecrets} TLS, ${c.opaqueSecrets} Opaque PEM, ${c.configMaps} ConfigMaps, ${c.pkcs12Secrets} PKCS#12, ${c.kubeconfigSecrets} kubeconfig Secrets, ${c.webhookConfigurations} webhooks (vs x509-certificate-exporter, which reads no kubeconfig Secret)`;
  row(w, 'start → complete `/metrics`, s', med(o, 'seconds'), med(t, 'seconds'), f2);
  row(w, 'certificate series', med(o, 'series'), med(t, 'series'), int, false);
  row(w, `RSS ${STEADY_S} s after complete, MiB`, med(o, 'rssSteadyMiB'), med(t, 'rssSteadyMiB'), f1);
  row(w, 'peak RSS, MiB', med(o, 'peakMiB'), med(t, 'peakMiB'), f1);
  row(w, 'CPU seconds', med(o, 'cpuSeconds'), med(t, 'cpuSeconds'), f2);
  row(w, 'API requests', med(o, 'apiRequests'), med(t, 'apiRequests'), int);
  row(w, 'bytes per scrape', med(o, 'bytesPerScrape'), med(t, 'bytesPerScrape'), mb);
}
if (results.reloader) {
  const o = results.reloader['cert-rotator'];
  const t = results.reloader.reloader;
  const w = `one Secret replaced, used by ${FANOUT} Deployments; ${WORKLOADS.toLocaleString('en')} workloads and ${Math.min(...SIZES).toLocaleString('en')} TLS Secrets present (vs Reloader; cert-rotator debounce 0)`;
  row(w, 'change → all templates changed, s', med(o, 'seconds'), med(t, 'seconds'), f2);
  row(w, 'RSS before the change, MiB', med(o, 'rssSteadyMiB'), med(t, 'rssSteadyMiB'), f1);
  row(w, 'RSS after, MiB', med(o, 'rssAfterMiB'), med(t, 'rssAfterMiB'), f1);
  row(w, 'peak RSS, MiB', med(o, 'peakMiB'), med(t, 'peakMiB'), f1);
  row(w, 'CPU seconds for the change', med(o, 'cpuSeconds'), med(t, 'cpuSeconds'), f2);
  row(w, 'API requests for the change', med(o, 'apiRequests'), med(t, 'apiRequests'), int);
  row(
    w,
    'templates patched more than once',
    med(o, 'workloadsPatchedTwice'),
    med(t, 'workloadsPatchedTwice'),
    int,
  );
}
if (results.certmanager) {
  const o = results.certmanager['cert-rotator'];
  const t = results.certmanager['cert-manager'];
  const w = `${BURST.toLocaleString('en')} certificates wanted at once, CA issuer, ECDSA P-256 (vs cert-manager, one Certificate each)`;
  row(w, 'start → all Secrets written, s', med(o, 'seconds'), med(t, 'seconds'), f2);
  row(w, 'RSS at the end, MiB', med(o, 'rssEndMiB'), med(t, 'rssEndMiB'), f1);
  row(w, `RSS ${BURST_SETTLE_S} s later, MiB`, med(o, 'rssLaterMiB'), med(t, 'rssLaterMiB'), f1);
  row(w, 'peak RSS, MiB', med(o, 'peakMiB'), med(t, 'peakMiB'), f1);
  row(w, 'CPU seconds', med(o, 'cpuSeconds'), med(t, 'cpuSeconds'), f2);
  row(w, 'API requests', med(o, 'apiRequests'), med(t, 'apiRequests'), int);
  row(w, 'API error responses (4xx/5xx)', med(o, 'apiErrorResponses'), med(t, 'apiErrorResponses'), int);
}
const m = machine();
const loaded = Math.max(loadBefore, loadAfter) > 1.5;
const hi = results.certmanager?.higher;
const md = [
  '# Performance: cert-rotator next to the tools it replaces',
  '',
  '<!-- Generated by `npm run bench:peers` (bench/peers/run.mjs). Do not edit by hand. -->',
  '',
  `Measured ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC on ${m.cpu}, ${m.memoryGiB} GiB, Node ${m.node}, against one`,
  'kube-apiserver + etcd on loopback (no kube-controller-manager), each tool alone against it, the two',
  `of each comparison alternating, median of ${ROUNDS} rounds. cert-rotator runs from \`dist/\` with the image's node`,
  `flags (\`${IMAGE_NODE_FLAGS.join(' ')}\`) on the in-cluster credential path (service host/port environment, token`,
  "and CA files); the peers use a kubeconfig, as their README says. API requests are the API server's",
  "`apiserver_request_total` over the run, less the benchmark's own requests and the server's idle rate",
  '(watches are counted when they end, so the few still open are missing).',
  '',
  loaded
    ? `**Timings were taken on a loaded machine** (1-minute load average ${loadBefore} before, ${loadAfter} after, on ${cpus()} cores): other work shared the CPU, so times and CPU seconds are noisy; RSS is hardly affected.`
    : `Load average ${loadBefore} before, ${loadAfter} after.`,
  '',
  '| work | measure | cert-rotator | peer | ratio (cert-rotator / peer) |',
  '|---|---|---|---|---|',
  ...rows,
  '',
  ...(hi
    ? [
        `cert-rotator's client rate limit in the burst: the default \`kubeAPI\` (qps ${CONFIG_DEFAULTS.kubeApiQps}, burst ${CONFIG_DEFAULTS.kubeApiBurst}) above; with`,
        `qps ${results.certmanager.higherSetting.qps}/burst ${results.certmanager.higherSetting.burst}: ${f2(med(hi, 'seconds'))} s, ${int(med(hi, 'apiErrorResponses'))} API error responses, RSS at the end ${f1(med(hi, 'rssEndMiB'))} MiB (median of ${hi.length}). cert-manager runs with its defaults (qps 20, burst 50).`,
        '',
      ]
    : []),
  'Versions:',
  `- cert-rotator ${JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')).version} (this checkout)`,
  ...Object.entries(peerV).map(([k, v]) => `- ${k}: ${v} (from ${peers.dir}/README.md)`),
  '',
  'Every run, as measured (seconds, MiB, counts):',
  '',
  '```json',
  JSON.stringify(results, (_k, v) => (typeof v === 'number' ? Number(v.toFixed(3)) : v), 1),
  '```',
  '',
];
function cpus() {
  return m.cpu.split('× ')[1];
}
if (!args['no-write']) {
  await writeFile(join(REPO, 'docs/performance.md'), md.join('\n'));
  log('wrote docs/performance.md');
}
process.stdout.write(`${rows.join('\n')}\n`);
process.exit(0);
