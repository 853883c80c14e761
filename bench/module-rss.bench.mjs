// What loading each dependency costs: RSS and live heap after import and a full GC, in a fresh
// Node process with the image's node flags, over a bare process. Also the controller's own entry
// points from dist/ (npm run build first).
//   node bench/module-rss.bench.mjs
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const IMAGE_NODE_FLAGS = (() => {
  const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8');
  return JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]').slice(1, -1);
})();
const DIST = new URL('../dist/', import.meta.url).href;

const PROBE = `
const specs = process.argv.slice(1).filter((s) => s !== 'none');
for (const s of specs) await import(s);
gc(); await new Promise((r) => setTimeout(r, 300)); gc();
const st = (await import('node:fs')).readFileSync('/proc/self/status', 'utf8');
const kib = (k) => Number(new RegExp(k + ':\\\\s+(\\\\d+)').exec(st)[1]);
process.stdout.write(JSON.stringify({ rss: kib('VmRSS') / 1024, heap: process.memoryUsage().heapUsed / 1048576 }));
`;

function probe(specs) {
  const out = execFileSync(
    process.execPath,
    [...IMAGE_NODE_FLAGS, '--expose-gc', '--input-type=module', '-e', PROBE, ...specs],
    { encoding: 'utf8', cwd: new URL('..', import.meta.url).pathname },
  );
  return JSON.parse(out);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

export async function run({ rounds = 3 } = {}) {
  const cases = {
    'bare node': ['none'],
    '@kubernetes/client-node': ['@kubernetes/client-node'],
    'acme-client': ['acme-client'],
    undici: ['undici'],
    'prom-client': ['prom-client'],
    '@peculiar/x509 + reflect-metadata': ['reflect-metadata', '@peculiar/x509'],
    yaml: ['yaml'],
    pino: ['pino'],
    cron: ['cron'],
    "import 'node:http' (ESM)": ['node:http'],
    "import 'node:https' (ESM)": ['node:https'],
    'dist/kube/client.js (light client)': [`${DIST}kube/client.js`],
    'dist/app/controller.js (what the controller loads)': [`${DIST}app/controller.js`],
  };
  const out = {};
  for (const [name, specs] of Object.entries(cases)) {
    let runs;
    try {
      runs = Array.from({ length: rounds }, () => probe(specs));
    } catch {
      // prom-client is no longer a dependency: its figure in docs/operations.md was taken before.
      out[name] = { notInstalled: true };
      continue;
    }
    out[name] = {
      rssMiB: Number(median(runs.map((r) => r.rss)).toFixed(1)),
      heapMiB: Number(median(runs.map((r) => r.heap)).toFixed(1)),
    };
  }
  const bare = out['bare node'].rssMiB;
  for (const v of Object.values(out))
    if (!v.notInstalled) v.overBareMiB = Number((v.rssMiB - bare).toFixed(1));
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await run();
  for (const [k, v] of Object.entries(r))
    process.stdout.write(
      v.notInstalled
        ? `${k.padEnd(52)} not installed\n`
        : `${k.padEnd(52)} ${v.rssMiB} MiB (+${v.overBareMiB}), heap ${v.heapMiB} MiB\n`,
    );
}
