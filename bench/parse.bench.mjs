// Throughput of certificate parsing: the pki fast path (readCertificateSummary) against
// node:crypto's X509Certificate and @peculiar/x509, each reading the same facts (validity,
// serial, SANs, basicConstraints, and for the fast path also the SPKI SHA-256).
//
//   npm run build && node bench/parse.bench.mjs [--certs 2000] [--rounds 7]
//
// Exports run(options) for bench/run.mjs; prints a table when executed directly.
import 'reflect-metadata';
import { hash, X509Certificate } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import * as x509 from '@peculiar/x509';
import * as pki from '../dist/pki/index.js';

const {
  certificateParts,
  certificatesFromPem,
  generateKey,
  issueCertificate,
  KEY_ALGORITHMS,
  readCertificateSummary,
} = pki;

const DAY = 86_400_000;

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Issues `count` varied certificates: every key type as subject and issuer, SAN mixes, CA/leaf, UTCTime and GeneralizedTime. */
export async function makeCertificates(count, seed = 1) {
  const rand = rng(seed);
  const pick = (arr) => arr[Math.floor(rand() * arr.length)];
  const keys = {};
  for (const alg of KEY_ALGORITHMS) keys[alg] = (await generateKey(alg)).privateKeyPem;
  const now = Date.now();
  const cas = [];
  for (const alg of KEY_ALGORITHMS) {
    const ca = await issueCertificate({
      subjectKeyPem: keys[alg],
      identity: { commonName: `Bench Root ${alg}`, dnsNames: [], ipAddresses: [], uris: [] },
      notBefore: now - DAY,
      notAfter: now + 3650 * DAY,
      issuer: 'self',
      isCA: true,
    });
    cas.push({ certPem: ca.certPem, keyPem: keys[alg] });
  }
  const ders = cas.map((c) => certificatesFromPem(c.certPem)[0]);
  const pending = [];
  for (let i = ders.length; i < count; i++) {
    const n = Math.floor(rand() * 6);
    const dnsNames = Array.from({ length: n }, (_, j) => `svc${i}-${j}.ns${i % 17}.svc.cluster.local`);
    const ipAddresses = [];
    if (rand() < 0.4) ipAddresses.push(`10.${i & 255}.${(i >> 8) & 255}.${j4(rand)}`);
    if (rand() < 0.3) ipAddresses.push(`fd00:${(i & 0xffff).toString(16)}::${j4(rand).toString(16)}`);
    const uris = rand() < 0.3 ? [`spiffe://cluster.local/ns/ns${i % 17}/sa/sa${i}`] : [];
    const hasCn = rand() < 0.6 || n + ipAddresses.length + uris.length === 0;
    const notBefore =
      rand() < 0.15 ? Date.UTC(2050 + Math.floor(rand() * 50), 0, 1) : now - Math.floor(rand() * 30) * DAY;
    pending.push(
      issueCertificate({
        subjectKeyPem: keys[pick(KEY_ALGORITHMS)],
        identity: { ...(hasCn ? { commonName: `bench-${i}` } : {}), dnsNames, ipAddresses, uris },
        notBefore,
        notAfter: notBefore + (1 + Math.floor(rand() * 400)) * DAY,
        issuer: rand() < 0.1 ? 'self' : pick(cas),
        isCA: rand() < 0.05,
      }),
    );
    if (pending.length >= 64)
      ders.push(...(await Promise.all(pending.splice(0))).map((c) => certificatesFromPem(c.certPem)[0]));
  }
  ders.push(...(await Promise.all(pending)).map((c) => certificatesFromPem(c.certPem)[0]));
  return ders;
}

function j4(rand) {
  return 1 + Math.floor(rand() * 250);
}

// Each parser reads the same facts; the sink keeps the JIT from discarding the work.
let sink = 0;
const parsers = {
  fast(der) {
    const s = readCertificateSummary(der);
    sink += s.notAfter + s.dnsNames.length + s.spkiSha256.length;
  },
  node(der) {
    const c = new X509Certificate(der);
    sink += Date.parse(c.validTo) + (c.subjectAltName?.length ?? 0) + c.serialNumber.length + (c.ca ? 1 : 0);
  },
  peculiar(der) {
    const c = new x509.X509Certificate(der);
    const san = c.getExtension(x509.SubjectAlternativeNameExtension);
    const bc = c.getExtension(x509.BasicConstraintsExtension);
    sink += c.notAfter.getTime() + (san?.names.items.length ?? 0) + c.serialNumber.length + (bc?.ca ? 1 : 0);
  },
  /**
   * What the controller does for an opted-in Secret since #19: the fast path, then node:crypto's
   * reading of the same certificate compared with it (pki/x509-check.ts). Absent before #19.
   */
  ...(pki.withOpenSslCheck
    ? {
        fastAndOpenSslCheck(der) {
          const s = pki.withOpenSslCheck(der, readCertificateSummary(der));
          sink += s.notAfter + s.problems.length;
        },
      }
    : {}),
  /** Only the SPKI hash the fast path includes, to show its share of the cost. */
  spkiHashOnly(_der, spki) {
    sink += hash('sha256', spki, 'hex').length;
  },
};

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function timeRound(fn, ders, spkis) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ders.length; i++) fn(ders[i], spkis[i]);
  const ns = Number(process.hrtime.bigint() - t0);
  return ders.length / (ns / 1e9);
}

/**
 * Runs the benchmark. Returns certs/s medians per parser and the ratios fast/node and
 * fast/peculiar. Options: certs (default 2000), rounds (7), seed, ders (reuse a corpus).
 */
export async function run({ certs = 2000, rounds = 7, seed = 1, ders } = {}) {
  const corpus = ders ?? (await makeCertificates(certs, seed));
  // @peculiar/x509 takes ArrayBuffer/Buffer views; node takes Buffer-compatible views; the fast path takes Uint8Array.
  const spkis = corpus.map((d) => certificateParts(d).spki);
  const results = {};
  for (const [name, fn] of Object.entries(parsers)) {
    // Warm up until the JIT has settled (at least 3 passes and 500 ms).
    const warmUntil = Date.now() + 500;
    for (let w = 0; w < 3 || Date.now() < warmUntil; w++) timeRound(fn, corpus, spkis);
    const perRound = [];
    for (let r = 0; r < rounds; r++) perRound.push(timeRound(fn, corpus, spkis));
    results[name] = { medianCertsPerSec: Math.round(median(perRound)), rounds: perRound.map(Math.round) };
  }
  const fast = results.fast.medianCertsPerSec;
  return {
    certs: corpus.length,
    rounds,
    node: process.version,
    results,
    ratios: {
      fastOverNode: +(fast / results.node.medianCertsPerSec).toFixed(2),
      fastOverPeculiar: +(fast / results.peculiar.medianCertsPerSec).toFixed(2),
      spkiHashShareOfFast: +(fast / results.spkiHashOnly.medianCertsPerSec).toFixed(3),
    },
    // The cross-check's added CPU for 20,000 opted-in Secrets (one core), from the two medians.
    ...(results.fastAndOpenSslCheck
      ? {
          openSslCheckUsPerCert: +(1e6 / results.fastAndOpenSslCheck.medianCertsPerSec - 1e6 / fast).toFixed(
            1,
          ),
          openSslCheckMsAt20000: Math.round(
            20_000 * (1 / results.fastAndOpenSslCheck.medianCertsPerSec - 1 / fast) * 1000,
          ),
        }
      : {}),
    sink: sink > 0,
  };
}

function argValue(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : fallback;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const t0 = Date.now();
  const out = await run({ certs: argValue('certs', 2000), rounds: argValue('rounds', 7) });
  console.log(`parse benchmark: ${out.certs} certificates, ${out.rounds} rounds, node ${out.node}`);
  for (const [name, r] of Object.entries(out.results)) {
    console.log(
      `  ${name.padEnd(14)} median ${String(r.medianCertsPerSec).padStart(9)} certs/s   rounds ${r.rounds.join(' ')}`,
    );
  }
  console.log(
    `  fast/node ${out.ratios.fastOverNode}x   fast/peculiar ${out.ratios.fastOverPeculiar}x   ` +
      `SPKI hash share of fast path ${(out.ratios.spkiHashShareOfFast * 100).toFixed(1)}%   (${Date.now() - t0} ms total)`,
  );
  if (out.openSslCheckUsPerCert !== undefined)
    console.log(
      `  node:crypto cross-check: +${out.openSslCheckUsPerCert} µs per certificate, +${out.openSslCheckMsAt20000} ms for 20,000 opted-in Secrets`,
    );
}
