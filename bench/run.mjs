// `npm run bench`: every benchmark in this folder, one after the other, in one process run so
// the figures are measured side by side. Each prints medians; ratios are computed within a run.
//   npm run bench [-- --only parse,queue,controller]
import { readdir } from 'node:fs/promises';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { only: { type: 'string' } } });
const only = values.only ? new Set(values.only.split(',')) : undefined;
const files = (await readdir(new URL('.', import.meta.url))).filter((f) => f.endsWith('.bench.mjs')).sort();
const results = {};
for (const file of files) {
  const name = file.replace(/\.bench\.mjs$/, '');
  if (only && !only.has(name)) continue;
  const mod = await import(new URL(file, import.meta.url).href);
  if (typeof mod.run !== 'function') continue;
  const t0 = performance.now();
  process.stdout.write(`[bench] ${name}...\n`);
  results[name] = await mod.run();
  process.stdout.write(`[bench] ${name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  process.stdout.write(`${JSON.stringify(results[name], null, 2)}\n`);
}
process.exit(0);
