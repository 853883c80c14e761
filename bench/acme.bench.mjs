// ACME figures against a real Pebble (PEBBLE_VA_NOSLEEP=1) started for the benchmark:
//  - end-to-end issuance latency of the acme issuer (account ready, two names, HTTP-01 answered
//    by the solver listener), side by side with acme-client's own auto() at its default polling;
//  - 100 Secrets due at once via HTTP-01 through the controller against a real kube-apiserver:
//    time until all are written.
//
//   npm run build && node bench/acme.bench.mjs [--issues 20] [--defaults 3] [--secrets 100]
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import * as acme from 'acme-client';
import { stringify } from 'yaml';
import { closeHttp01Listeners } from '../dist/issuers/acme/http01.js';
import { AcmeIssuer } from '../dist/issuers/acme/issuer.js';
import { generateKey, issueCertificate } from '../dist/pki/index.js';
import { makeCA } from '../test/testenv/certs.ts';
import { binaries, startOwnControlPlane } from '../test/testenv/env.ts';
import { freePort } from '../test/testenv/net.ts';
import { startPebble } from '../test/testenv/pebble.ts';

const CLI = new URL('../dist/cli.js', import.meta.url).pathname;
const DAY = 86_400_000;
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs) => pct(xs, 50);

/** In-memory AcmeKube: the latency figure measures ACME, not the API server. */
function memoryKube() {
  const secrets = new Map();
  return {
    async readSecret(ns, name) {
      return secrets.get(`${ns}/${name}`);
    },
    async createSecret(ns, name, data) {
      if (secrets.has(`${ns}/${name}`)) return false;
      secrets.set(`${ns}/${name}`, { resourceVersion: '1', data, annotations: {} });
      return true;
    },
    async updateSecret() {
      return true;
    },
    async deleteSecret(ns, name) {
      secrets.delete(`${ns}/${name}`);
    },
    async createHttp01Route() {},
    async deleteHttp01Route() {},
  };
}

async function issuerLatency(pebble, issues) {
  const issuer = new AcmeIssuer(
    'bench',
    {
      server: pebble.directoryUrl,
      caBundle: pebble.tlsCaPem,
      accountKeySecret: { namespace: 'bench', name: 'account' },
      solvers: [{ kind: 'http01', address: `127.0.0.1:${pebble.httpPort}`, ingress: false }],
    },
    { kube: memoryKube() },
  );
  const ms = [];
  for (let i = 0; i < issues + 1; i++) {
    const key = (await generateKey('ecdsa-p256')).privateKeyPem;
    const t0 = performance.now();
    await issuer.issue({
      namespace: 'bench',
      secretName: `s${i}`,
      identity: { dnsNames: [`a${i}.bench.test`, `b${i}.bench.test`], ipAddresses: [], uris: [] },
      keyPem: key,
      now: Date.now(),
    });
    // The first issuance also registers the account; it is reported apart.
    ms.push(performance.now() - t0);
  }
  await closeHttp01Listeners();
  return { first: ms[0], steady: ms.slice(1) };
}

async function acmeClientDefaults(pebble, rounds) {
  const tokens = new Map();
  const server = createServer((req, res) => {
    const body = tokens.get((req.url ?? '').split('/').pop());
    res.writeHead(body ? 200 : 404).end(body ?? '');
  });
  await new Promise((r) => server.listen(pebble.httpPort, '127.0.0.1', r));
  acme.axios.defaults.httpsAgent = new Agent({ ca: pebble.tlsCaPem }); // the library's global: bench only
  const client = new acme.Client({
    directoryUrl: pebble.directoryUrl,
    accountKey: await acme.crypto.createPrivateEcdsaKey(),
  });
  await client.createAccount({ termsOfServiceAgreed: true });
  const ms = [];
  for (let i = 0; i < rounds; i++) {
    const [, csr] = await acme.crypto.createCsr(
      { altNames: [`d${i}.bench.test`, `e${i}.bench.test`] },
      await acme.crypto.createPrivateEcdsaKey(),
    );
    const t0 = performance.now();
    await client.auto({
      csr,
      termsOfServiceAgreed: true,
      skipChallengeVerification: true,
      challengePriority: ['http-01'],
      challengeCreateFn: async (_a, c, k) => tokens.set(c.token, k),
      challengeRemoveFn: async (_a, c) => tokens.delete(c.token),
    });
    ms.push(performance.now() - t0);
  }
  server.close();
  return ms;
}

async function manySecrets(pebble, count) {
  const { plane, kubeConfig: kc, dir } = await startOwnControlPlane('cert-rotator-acme-bench-');
  try {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'acme' } } });
    const now = Date.now();
    for (let i = 0; i < count; i++) {
      const key = (await generateKey('ecdsa-p256')).privateKeyPem;
      const cert = await issueCertificate({
        subjectKeyPem: key,
        identity: { dnsNames: [`host-${i}.bench.test`, `alt-${i}.bench.test`], ipAddresses: [], uris: [] },
        notBefore: now - DAY,
        notAfter: now + 60_000,
        issuer: 'self',
      });
      await core.createNamespacedSecret({
        namespace: 'acme',
        body: {
          metadata: { name: `due-${i}`, annotations: { 'cert-rotator.io/enabled': 'true' } },
          type: 'kubernetes.io/tls',
          data: {
            'tls.crt': Buffer.from(cert.chainPem).toString('base64'),
            'tls.key': Buffer.from(key).toString('base64'),
          },
        },
      });
    }
    const configPath = join(dir, 'config.yaml');
    await writeFile(
      configPath,
      stringify({
        namespaces: ['acme'],
        concurrency: 16,
        leaderElection: { enabled: false },
        issuers: [
          {
            name: 'pebble',
            acme: {
              server: pebble.directoryUrl,
              caBundle: pebble.tlsCaPem,
              accountKeySecret: { namespace: 'acme', name: 'account' },
              solvers: [{ http01: { address: `127.0.0.1:${pebble.httpPort}`, podIP: '10.0.0.1' } }],
            },
          },
        ],
      }),
    );
    const t0 = performance.now();
    const proc = spawn(
      process.execPath,
      [
        CLI,
        'controller',
        '--config',
        configPath,
        '--kubeconfig',
        plane.kubeconfigPath,
        '--metrics-address',
        `127.0.0.1:${await freePort()}`,
        '--log-level',
        'info',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    proc.stdout.on('data', (c) => {
      out += c;
    });
    proc.stderr.on('data', (c) => {
      out += c;
    });
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`controller exited: ${out.slice(-2000)}`);
      const done = out.split('"msg":"certificate renewed"').length - 1;
      if (done >= count) break;
      if (performance.now() - t0 > 180_000)
        throw new Error(`${count} renewals did not finish in 180 s (${done})`);
      await new Promise((r) => setTimeout(r, 25));
    }
    const seconds = (performance.now() - t0) / 1000;
    const failures = out.split('"code":"ISSUER_FAILED"').length - 1;
    proc.kill('SIGTERM');
    return {
      secrets: count,
      allWrittenSeconds: Number(seconds.toFixed(1)),
      failedAttempts: failures,
      goalSeconds: 60,
    };
  } finally {
    await plane.stop();
  }
}

export async function run({ issues = 20, defaults = 3, secrets = 100 } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-acme-bench-'));
  const bins = binaries();
  const pebble = await startPebble(
    { pebble: bins.pebble, challtestsrv: bins.challtestsrv },
    await makeCA('bench-pebble-tls'),
    join(dir, 'pebble'),
  );
  try {
    const ours = await issuerLatency(pebble, issues);
    const lib = await acmeClientDefaults(pebble, defaults);
    const many = await manySecrets(pebble, secrets);
    return {
      latency: {
        issues,
        p50Ms: Math.round(median(ours.steady)),
        p90Ms: Math.round(pct(ours.steady, 90)),
        firstWithAccountMs: Math.round(ours.first),
        goalP50Ms: 1500,
        acmeClientDefaultPollingP50Ms: Math.round(median(lib)),
        ratio: Number((median(lib) / median(ours.steady)).toFixed(1)),
      },
      many,
    };
  } finally {
    await pebble.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: { issues: { type: 'string' }, defaults: { type: 'string' }, secrets: { type: 'string' } },
  });
  const r = await run({
    issues: Number(values.issues ?? 20),
    defaults: Number(values.defaults ?? 3),
    secrets: Number(values.secrets ?? 100),
  });
  process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  process.exit(0);
}
