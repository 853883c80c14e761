// The status page at 5,000 certificates: the controller's per-Secret view (evaluate + why) and the
// HTML/SVG render, as one request to `/` does them, and the size of the page.
// Needs a build first: `npm run build && node_modules/.bin/node bench/status-page.bench.mjs`.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { loadConfig } from '../dist/config/load.js';
import { evaluate } from '../dist/controller/evaluate.js';
import { certificateView } from '../dist/controller/status-view.js';
import { renderStatusPage } from '../dist/ui/status-page.js';

const N = 5_000;
const ROUNDS = 9;
const DAY = 86_400_000;

/** N records of a mixed fleet: 1 in 5 monitored only, windows, renew-before, failures, pending. */
function fleet(now) {
  const records = [];
  for (let i = 0; i < N; i++) {
    const notBefore = now - ((i * 7) % 60) * DAY;
    const notAfter = notBefore + (30 + ((i * 13) % 70)) * DAY;
    const managed = i % 5 !== 0;
    const annotations = managed ? { 'cert-rotator.io/enabled': 'true' } : {};
    if (i % 7 === 0) annotations['cert-rotator.io/renew-before'] = '10d';
    if (i % 11 === 0) {
      annotations['cert-rotator.io/window'] = '0 3 * * 6';
      annotations['cert-rotator.io/window-duration'] = '2h';
    }
    if (i % 17 === 0) annotations['cert-rotator.io/state'] = 'Failed';
    const name = `app-${i}-tls`;
    records.push({
      namespace: `team-${i % 40}`,
      name,
      uid: `uid-${i}`,
      resourceVersion: String(i),
      annotations,
      managed,
      cert: {
        notBefore,
        notAfter,
        serialHex: i.toString(16),
        subjectCommonName: `${name}.example.com`,
        issuerCommonName: 'internal CA',
        dnsNames: [`${name}.example.com`, `${name}.svc.cluster.local`],
        ipAddresses: [],
        uris: [],
        isCA: false,
        selfIssued: false,
        keyAlgorithm: 'ecdsa-p256',
      },
    });
  }
  return records;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function run({ rounds = ROUNDS } = {}) {
  const config = loadConfig('issuers: [{name: ca, selfSigned: {}}]\ndefaults: {issuer: ca}\n');
  const now = Date.now();
  const records = fleet(now);
  const recent = Array.from({ length: 100 }, (_, i) => ({
    at: now - i * 60_000,
    type: i % 9 ? 'Normal' : 'Warning',
    reason: i % 9 ? 'Renewed' : 'RenewalFailed',
    object: `team-${i % 40}/app-${i}-tls`,
    message: 'renewed by issuer "ca" (due); new certificate valid until 2031-01-01T00:00:00Z',
  }));
  const once = () => {
    const t0 = performance.now();
    const certificates = records.map((r, i) =>
      certificateView(
        r,
        evaluate(r, config, now),
        {
          failures: i % 17 === 0 ? 2 : 0,
          notBefore: i % 17 === 0 ? now + 3_600_000 : 0,
          pendingApproval: i % 23 === 0,
        },
        now,
      ),
    );
    const t1 = performance.now();
    const html = renderStatusPage({ now, certificates, recent, refreshSeconds: 30, leading: true });
    const t2 = performance.now();
    return { view: t1 - t0, render: t2 - t1, total: t2 - t0, html };
  };
  once(); // warm-up
  const samples = Array.from({ length: rounds }, once);
  const html = samples[0].html;
  return {
    certificates: N,
    rounds,
    medianMs: {
      view: Number(median(samples.map((s) => s.view)).toFixed(1)),
      render: Number(median(samples.map((s) => s.render)).toFixed(1)),
      total: Number(median(samples.map((s) => s.total)).toFixed(1)),
    },
    bytes: Buffer.byteLength(html),
    gzipBytes: gzipSync(html).length,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const f = await run();
  console.log(
    `status page bench: ${f.certificates.toLocaleString('en-US')} certificates, median of ${f.rounds} rounds`,
  );
  console.log(`  view (evaluate + why)  ${f.medianMs.view} ms`);
  console.log(`  render HTML + SVG      ${f.medianMs.render} ms`);
  console.log(`  total                  ${f.medianMs.total} ms`);
  console.log(
    `  page size              ${(f.bytes / 1e6).toFixed(2)} MB (${(f.gzipBytes / 1e3).toFixed(0)} kB gzipped)`,
  );
}
