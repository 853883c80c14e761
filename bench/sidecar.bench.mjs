// Sidecar figures, against a real kube-apiserver started for the benchmark, the sidecar run from
// dist/ with the image's node flags on the in-cluster path (ServiceAccount token limited by a
// Role to the one Secret):
//  - RSS steady (VmRSS 15 s after the first swap), median of --rounds, for --secret and --self-signed;
//  - Secret replaced (the API call answered) → files swapped (the sidecar's log time), p50/p90;
//  - files swapped → the application reloaded (SIGHUP, and POST to its admin port), p50/p90.
//
//   npm run build && node bench/sidecar.bench.mjs [--rounds 3] [--swaps 20]
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { generateKey, issueCertificate } from '../dist/pki/index.js';
import { startOwnControlPlane } from '../test/testenv/env.ts';

const IMAGE_NODE_FLAGS = (() => {
  const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8');
  const argv = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]');
  return argv.slice(1, -1);
})();
const CLI = new URL('../dist/cli.js', import.meta.url).pathname;
const TLS_APP = new URL('../test/integration/fixtures/tls-app.ts', import.meta.url).pathname;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function child(cmd, args, env) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const logs = [];
  let partial = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (c) => {
    partial += c;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      try {
        logs.push(JSON.parse(l));
      } catch {
        logs.push({ msg: l });
      }
    }
  });
  let err = '';
  proc.stderr.on('data', (c) => {
    err += c;
  });
  const waitLog = async (pred, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = logs.find(pred);
      if (hit) return hit;
      if (proc.exitCode !== null) throw new Error(`${cmd} exited ${proc.exitCode}: ${err}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting in ${args.join(' ')}`);
      await sleep(5);
    }
  };
  return { proc, logs, waitLog, stop: () => proc.kill('SIGTERM') };
}

function vmRssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)[1]) / 1024;
}

async function leaf(ca, name) {
  const key = (await generateKey('ecdsa-p256')).privateKeyPem;
  const now = Date.now();
  const c = await issueCertificate({
    subjectKeyPem: key,
    identity: { dnsNames: [name], ipAddresses: [], uris: [] },
    notBefore: now - 60_000,
    notAfter: now + 3_600_000,
    issuer: ca,
  });
  return { certPem: c.chainPem, keyPem: key };
}

export async function run(argv = process.argv.slice(2)) {
  const { values } = parseArgs({
    args: argv,
    options: { rounds: { type: 'string', default: '3' }, swaps: { type: 'string', default: '20' } },
    allowPositionals: true,
  });
  const rounds = Number(values.rounds);
  const swaps = Number(values.swaps);
  const { plane, kubeConfig, dir } = await startOwnControlPlane('cert-rotator-bench-sidecar-');
  const work = await mkdtemp(join(tmpdir(), 'cert-rotator-bench-sidecar-'));
  try {
    const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
    const rbac = kubeConfig.makeApiClient(k8s.RbacAuthorizationV1Api);
    const ns = 'bench-sidecar';
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'app' } } });
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: 'sidecar' },
        rules: [
          {
            apiGroups: [''],
            resources: ['secrets'],
            resourceNames: ['app-tls'],
            verbs: ['get', 'list', 'watch'],
          },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'sidecar' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'sidecar' },
        subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: ns }],
      },
    });
    const tr = await core.createNamespacedServiceAccountToken({
      namespace: ns,
      name: 'app',
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const saDir = join(work, 'sa');
    await mkdir(saDir);
    await writeFile(join(saDir, 'token'), tr.status.token);
    await writeFile(join(saDir, 'ca.crt'), plane.caPem);
    const api = new URL(plane.apiServerUrl);
    const env = {
      CERT_ROTATOR_SERVICEACCOUNT_DIR: saDir,
      KUBERNETES_SERVICE_HOST: api.hostname,
      KUBERNETES_SERVICE_PORT: api.port,
      POD_NAMESPACE: ns,
    };
    const caKey = (await generateKey('ecdsa-p256')).privateKeyPem;
    const now = Date.now();
    const caCert = await issueCertificate({
      subjectKeyPem: caKey,
      identity: { commonName: 'bench CA', dnsNames: [], ipAddresses: [], uris: [] },
      notBefore: now - 60_000,
      notAfter: now + 86_400_000,
      issuer: 'self',
      isCA: true,
    });
    const ca = { certPem: caCert.certPem, keyPem: caKey };
    const first = await leaf(ca, 'app.bench');
    const secretBody = (pair) => ({
      metadata: { name: 'app-tls' },
      type: 'kubernetes.io/tls',
      data: {
        'tls.crt': Buffer.from(pair.certPem).toString('base64'),
        'tls.key': Buffer.from(pair.keyPem).toString('base64'),
      },
    });
    await core.createNamespacedSecret({ namespace: ns, body: secretBody(first) });

    const rss = { secret: [], selfSigned: [] };
    for (let r = 0; r < rounds; r++) {
      for (const kind of ['secret', 'selfSigned']) {
        const args =
          kind === 'secret'
            ? ['--secret', 'app-tls']
            : ['--self-signed', '--dns-names', 'app.bench', '--duration', '1m'];
        const s = child(
          process.execPath,
          [
            ...IMAGE_NODE_FLAGS,
            CLI,
            'sidecar',
            ...args,
            '--dir',
            join(work, `${kind}-${r}`),
            '--metrics-address',
            '127.0.0.1:0',
          ],
          env,
        );
        await s.waitLog((l) => l.msg === 'files swapped');
        await sleep(15_000);
        rss[kind].push(vmRssMiB(s.proc.pid));
        s.stop();
        await new Promise((res) => s.proc.once('exit', res));
      }
    }

    // Latencies: one sidecar with two applications, SIGHUP and POST.
    const certDir = join(work, 'latency');
    const s = child(
      process.execPath,
      [
        ...IMAGE_NODE_FLAGS,
        CLI,
        'sidecar',
        '--secret',
        'app-tls',
        '--dir',
        certDir,
        '--metrics-address',
        'off',
      ],
      env,
    );
    await s.waitLog((l) => l.msg === 'files swapped');
    s.stop();
    await new Promise((res) => s.proc.once('exit', res));
    const hup = child(process.execPath, [TLS_APP, certDir, 'bench-app-hup'], {});
    const post = child(process.execPath, [TLS_APP, certDir, 'bench-app-post'], {});
    const postPort = (await post.waitLog((l) => typeof l.adminPort === 'number')).adminPort;
    await hup.waitLog((l) => typeof l.tlsPort === 'number');
    const sc = child(
      process.execPath,
      [
        ...IMAGE_NODE_FLAGS,
        CLI,
        'sidecar',
        '--secret',
        'app-tls',
        '--dir',
        certDir,
        '--metrics-address',
        'off',
        '--process',
        'bench-app-hup',
        '--http-post',
        `http://127.0.0.1:${postPort}/reload`,
      ],
      env,
    );
    await sc.waitLog(
      (l) => l.msg === 'kept the valid certificate already on disk' || l.msg === 'files swapped',
    );
    const toSwap = [];
    const toHup = [];
    const toPost = [];
    for (let i = 0; i < swaps; i++) {
      const pair = await leaf(ca, `swap-${i}.bench`);
      const serial = new X509Certificate(pair.certPem).serialNumber.toLowerCase().replace(/^0+/, '');
      const hupBefore = hup.logs.filter((l) => typeof l.reloaded === 'number').length;
      const postBefore = post.logs.filter((l) => typeof l.reloaded === 'number').length;
      await core.replaceNamespacedSecret({ namespace: ns, name: 'app-tls', body: secretBody(pair) });
      const changedAt = Date.now();
      const swap = await sc.waitLog(
        (l) => l.msg === 'files swapped' && String(l.serial).replace(/^0+/, '') === serial,
      );
      const swapAt = Date.parse(swap.time);
      toSwap.push(swapAt - changedAt);
      const h = await hup.waitLog(
        (l) =>
          typeof l.reloaded === 'number' &&
          hup.logs.filter((x) => typeof x.reloaded === 'number').indexOf(l) >= hupBefore,
      );
      const p = await post.waitLog(
        (l) =>
          typeof l.reloaded === 'number' &&
          post.logs.filter((x) => typeof x.reloaded === 'number').indexOf(l) >= postBefore,
      );
      toHup.push(h.at - swapAt);
      toPost.push(p.at - swapAt);
      await sleep(200);
    }
    for (const c of [sc, hup, post]) c.stop();
    const summary = (xs) => ({ n: xs.length, p50: pct(xs, 50), p90: pct(xs, 90), max: Math.max(...xs) });
    return {
      nodeFlags: IMAGE_NODE_FLAGS.join(' '),
      rssSteadyMiB: {
        secret: {
          median: Number(median(rss.secret).toFixed(1)),
          runs: rss.secret.map((x) => Number(x.toFixed(1))),
        },
        selfSigned: {
          median: Number(median(rss.selfSigned).toFixed(1)),
          runs: rss.selfSigned.map((x) => Number(x.toFixed(1))),
        },
      },
      secretReplacedToFilesSwappedMs: summary(toSwap),
      filesSwappedToReloadedMs: { sighup: summary(toHup), httpPost: summary(toPost) },
    };
  } finally {
    await plane.stop();
    void dir;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run(), null, 2));
  process.exit(0);
}
