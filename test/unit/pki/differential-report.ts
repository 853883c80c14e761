/**
 * Prints the differential figures for docs and the issue's closing note: per corpus file the two
 * verdicts, the agreement table per field over the generated and corpus certificates, and mutant
 * outcomes. Not a test (no assertions); run with Node 24 (type stripping):
 *
 *   node test/unit/pki/differential-report.ts [--mutants 50000] [--reader PATH-TO-A-der.ts]
 *
 * `--reader` points at another copy of der.ts (e.g. the one before the two levels) to compare.
 */
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import type { CertSummary } from '../../../src/pki/der.ts';
import {
  buildCertificate,
  CN,
  corpus,
  derOutcome,
  disagreements,
  everyGeneralName,
  everyStringType,
  FIELDS,
  keys,
  mutants,
  name,
  opensslOutcome,
  rsaSpkiWithoutNull,
} from './differential.ts';

const { values } = parseArgs({
  options: { mutants: { type: 'string', default: '20000' }, reader: { type: 'string' } },
});
const mod = (await import(values.reader ?? '../../../src/pki/der.ts')) as {
  readCertificateSummary: (d: Uint8Array) => CertSummary;
};
const read = mod.readCertificateSummary;

const generated: Uint8Array[] = [];
const ks = keys();
for (const { key } of ks) {
  generated.push(buildCertificate({ key, san: everyGeneralName().map((g) => g.tlv) }));
  generated.push(buildCertificate({ key, ca: true }));
  for (const g of everyGeneralName()) generated.push(buildCertificate({ key, san: [g.tlv] }));
}
const rsa = ks.find((k) => k.name === 'rsa-2048')!.key;
generated.push(buildCertificate({ key: rsa, spki: rsaSpkiWithoutNull(rsa) }));
for (const s of everyStringType())
  generated.push(buildCertificate({ key: ks[0]!.key, subject: name([[[CN, s.tag, s.value]]]) }));

const agree: Record<string, number> = Object.fromEntries(FIELDS.map((f) => [f, 0]));
let both = 0;
const verdicts: string[] = [];
for (const { name: n, der } of [
  ...corpus(),
  ...generated.map((der, i) => ({ name: `generated-${i}`, der })),
]) {
  const o = derOutcome(read, der);
  const r = opensslOutcome(der);
  if (n.endsWith('.pem'))
    verdicts.push(
      `| ${n} | ${o.kind}${o.kind === 'readable' ? ` (${o.summary.problems.map((p) => p.field).join(', ')})` : ''} | ${r ? 'accepts' : 'refuses'} |`,
    );
  if (o.kind === 'acceptable' && r) {
    both++;
    const d = disagreements(o.summary, r, der);
    for (const f of FIELDS) if (!d.includes(f)) agree[f]!++;
  }
}
console.log('| corpus file | der.ts | OpenSSL |\n|---|---|---|');
console.log(verdicts.join('\n'));
console.log(`\nagreement over ${both} certificates both accept (corpus + generated):`);
console.log('| field | agree |\n|---|---|');
for (const f of FIELDS) console.log(`| ${f} | ${agree[f]}/${both} |`);

const n = Number(values.mutants);
const counts = {
  malformed: 0,
  readable: 0,
  acceptable: 0,
  acceptableRefusedByOpenSsl: 0,
  acceptableOtherIdentity: 0,
  opensslAcceptsDerMalformed: 0,
};
const fieldMiss: Record<string, number> = {};
const bases = [
  ...generated.slice(0, 4),
  ...corpus()
    .map((c) => c.der)
    .filter((d) => opensslOutcome(d) !== undefined),
];
const t0 = performance.now();
for (const m of fc.sample(mutants(bases), { numRuns: n, seed: 19 })) {
  const o = derOutcome(read, m);
  const r = opensslOutcome(m);
  counts[o.kind]++;
  if (o.kind === 'malformed' && r) counts.opensslAcceptsDerMalformed++;
  if (o.kind === 'acceptable') {
    if (!r) counts.acceptableRefusedByOpenSsl++;
    else {
      const d = disagreements(o.summary, r, m);
      if (d.length > 0) counts.acceptableOtherIdentity++;
      for (const f of d) fieldMiss[f] = (fieldMiss[f] ?? 0) + 1;
    }
  }
}
console.log(`\n${n} mutants (seed 19) in ${((performance.now() - t0) / 1000).toFixed(1)} s:`);
console.log(JSON.stringify(counts, null, 1));
console.log('disagreeing fields among acceptable mutants OpenSSL accepts:', JSON.stringify(fieldMiss));
