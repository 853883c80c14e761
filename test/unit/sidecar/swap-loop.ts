/**
 * Child process for the writer tests: swaps DIR between the pairs in FIXTURES (a JSON array of
 * {chainPem, keyPem}) COUNT times (0 = until killed), printing "ready" after the first swap and
 * "done N" at the end. Runs the real CertificateFiles/AtomicWriter from the sources.
 */
import { readFileSync } from 'node:fs';
import { CertificateFiles } from '../../../src/sidecar/cert-files.ts';
import { NO_NAMES, verifyMaterial } from '../../../src/sidecar/material.ts';

const [dir, fixtures, countArg] = process.argv.slice(2) as [string, string, string];
const pairs = (JSON.parse(readFileSync(fixtures, 'utf8')) as Array<{ chainPem: string; keyPem: string }>).map(
  (p) => verifyMaterial(p, NO_NAMES, Date.now()),
);
const count = Number(countArg);
const files = new CertificateFiles(dir, { keyMode: 0o600, bundleFile: 'bundle.pem' });
let n = 0;
for (;;) {
  await files.install(pairs[n % pairs.length]!);
  n++;
  if (n === 1) process.stdout.write('ready\n');
  if (count > 0 && n >= count) break;
}
process.stdout.write(`done ${n}\n`);
