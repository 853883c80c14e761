// Shared plumbing of `npm run bench:peers`: finding the peer binaries, one control plane, the
// light transport for the benchmark's own requests (counted, so they can be taken out of the API
// server's request totals), process figures from /proc, and test data.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { generateKey, issueCertificate } from '../../dist/pki/index.js';
import { cacheDir } from '../../test/testenv/env.ts';
import { freePort } from '../../test/testenv/net.ts';

export const PEER_BINARIES = ['x509-certificate-exporter', 'reloader', 'cert-manager-controller'];
export const DAY = 86_400_000;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const median = (xs) => {
  const s = [...xs].filter((x) => x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const REPO = resolve(new URL('../..', import.meta.url).pathname);

/** Where `../shared/peers` is: next to the main checkout (worktrees share its .git). */
function candidateDirs() {
  const out = [];
  try {
    const common = execFileSync('git', ['rev-parse', '--path-format=absolute', '--git-common-dir'], {
      cwd: REPO,
      encoding: 'utf8',
    }).trim();
    out.push(join(dirname(common), '..', 'shared', 'peers'));
  } catch {
    // not a git checkout
  }
  out.push(join(REPO, '..', 'shared', 'peers'));
  return [...new Set(out.map((p) => resolve(p)))];
}

/**
 * The peer binaries: from $PEERS_DIR, else `../shared/peers` (each `NAME` or `NAME.xz`, the .xz
 * unpacked into the cache and checked against SHA256SUMS). Throws naming every place looked at
 * and what was missing there.
 */
export function locatePeers() {
  const dirs = process.env.PEERS_DIR ? [resolve(process.env.PEERS_DIR)] : candidateDirs();
  const problems = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) {
      problems.push(`${dir}: does not exist`);
      continue;
    }
    const missing = PEER_BINARIES.filter(
      (b) => !existsSync(join(dir, b)) && !existsSync(join(dir, `${b}.xz`)),
    );
    if (!existsSync(join(dir, 'cert-manager-crds'))) missing.push('cert-manager-crds/');
    if (missing.length) {
      problems.push(`${dir}: missing ${missing.join(', ')}`);
      continue;
    }
    const sums = existsSync(join(dir, 'SHA256SUMS'))
      ? Object.fromEntries(
          readFileSync(join(dir, 'SHA256SUMS'), 'utf8')
            .trim()
            .split('\n')
            .map((l) => l.trim().split(/\s+/).reverse()),
        )
      : {};
    const unpackTo = join(cacheDir(), 'peers');
    mkdirSync(unpackTo, { recursive: true });
    const bins = {};
    for (const b of PEER_BINARIES) {
      if (existsSync(join(dir, b))) {
        bins[b] = join(dir, b);
        continue;
      }
      const target = join(unpackTo, b);
      const sum = (p) => createHash('sha256').update(readFileSync(p)).digest('hex');
      if (!existsSync(target) || (sums[b] && sum(target) !== sums[b])) {
        process.stdout.write(`[bench:peers] unpacking ${b}.xz into ${unpackTo}\n`);
        const data = execFileSync('xz', ['-dc', join(dir, `${b}.xz`)], { maxBuffer: 512 * 1024 * 1024 });
        writeFileSync(`${target}.tmp`, data);
        chmodSync(`${target}.tmp`, 0o755);
        renameSync(`${target}.tmp`, target);
        if (sums[b] && sum(target) !== sums[b])
          throw new Error(`${target}: SHA-256 does not match ${dir}/SHA256SUMS`);
      }
      bins[b] = target;
    }
    return { dir, bins, crdDir: join(dir, 'cert-manager-crds'), readme: join(dir, 'README.md') };
  }
  throw new Error(
    `bench:peers needs the peer binaries (${PEER_BINARIES.join(', ')}) and cert-manager-crds/.\n` +
      `Looked in:\n  ${problems.join('\n  ')}\n` +
      'Set PEERS_DIR to a directory holding them (NAME or NAME.xz), e.g. the shared peers directory next to the main checkout.',
  );
}

/** Peer versions from the README table of the peers directory (`| binary | upstream | tag, commit | ...`). */
export function peerVersions(readme) {
  const out = {};
  if (!existsSync(readme)) return out;
  for (const line of readFileSync(readme, 'utf8').split('\n')) {
    const m = /^\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|/.exec(line);
    if (m && PEER_BINARIES.includes(m[1])) out[m[1]] = `${m[2]} ${m[3]}`;
  }
  return out;
}

/** RSS now and at its peak, and CPU seconds so far, of a running process. */
export function procFigures(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return {
    rssMiB: kib('VmRSS') / 1024,
    peakMiB: kib('VmHWM') / 1024,
    cpuSeconds: (Number(stat[11]) + Number(stat[12])) / 100,
  };
}

export function machine() {
  const c = cpus();
  return {
    cpu: `${c[0]?.model ?? 'unknown'} × ${c.length}`,
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    node: process.version,
    loadAverage1m: Number(loadavg()[0].toFixed(2)),
  };
}

/** `count` ECDSA P-256 certificates (reused across Secrets), valid [now+fromMs, now+toMs]. */
export async function makePairs(count, { fromMs, toMs, ca, prefix = 'host' }) {
  const now = Date.now();
  const out = [];
  for (let i = 0; i < count; i++) {
    const key = (await generateKey('ecdsa-p256')).privateKeyPem;
    const cert = await issueCertificate({
      subjectKeyPem: key,
      identity: { dnsNames: [`${prefix}-${i}.bench.example.com`], ipAddresses: [], uris: [] },
      notBefore: now + fromMs,
      notAfter: now + toMs,
      issuer: ca ?? 'self',
      isCA: false,
    });
    out.push({ certPem: cert.chainPem, keyPem: key });
  }
  return out;
}

export async function makeCA(commonName) {
  const keyPem = (await generateKey('ecdsa-p256')).privateKeyPem;
  const cert = await issueCertificate({
    subjectKeyPem: keyPem,
    identity: { commonName, dnsNames: [], ipAddresses: [], uris: [] },
    notBefore: Date.now() - DAY,
    notAfter: Date.now() + 3650 * DAY,
    issuer: 'self',
    isCA: true,
  });
  return { certPem: cert.certPem, keyPem };
}

export function tlsSecret(name, pair, annotations = {}) {
  return {
    metadata: { name, annotations },
    type: 'kubernetes.io/tls',
    data: {
      'tls.crt': Buffer.from(pair?.certPem ?? '').toString('base64'),
      'tls.key': Buffer.from(pair?.keyPem ?? '').toString('base64'),
    },
  };
}

/** Runs `f` over `items` with `parallel` workers. */
export async function pool(items, parallel, f) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await f(items[i], i);
      }
    }),
  );
}

export async function waitUntil(what, f, { timeoutMs = 120_000, intervalMs = 100 } = {}) {
  const t0 = performance.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export { freePort };
