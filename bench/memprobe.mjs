// Preloaded (--import) into a controller by bench/memory.bench.mjs: on SIGUSR2, two full GCs
// (needs --expose-gc) and one JSON line of memory figures appended to $MEMPROBE_OUT.
import { appendFileSync, readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';

// Resident memory by kind of mapping: the node binary's pages, the malloc heap, the rest.
function smaps() {
  const by = { nodeBinaryMiB: 0, mallocHeapMiB: 0, otherAnonMiB: 0, otherFilesMiB: 0 };
  let kind = 'otherAnonMiB';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const name = m[1];
      kind = name.endsWith('/node')
        ? 'nodeBinaryMiB'
        : name === '[heap]'
          ? 'mallocHeapMiB'
          : name.startsWith('/')
            ? 'otherFilesMiB'
            : 'otherAnonMiB';
      continue;
    }
    const r = /^Rss:\s+(\d+)/.exec(line);
    if (r) by[kind] += Number(r[1]) / 1024;
  }
  for (const k of Object.keys(by)) by[k] = Number(by[k].toFixed(1));
  return by;
}

process.on('SIGUSR2', () => {
  globalThis.gc?.();
  globalThis.gc?.();
  const m = process.memoryUsage();
  const mib = (x) => Number((x / 1048576).toFixed(1));
  appendFileSync(
    process.env.MEMPROBE_OUT,
    `${JSON.stringify({ rssMiB: mib(m.rss), heapUsedMiB: mib(m.heapUsed), heapTotalMiB: mib(m.heapTotal), heapCommittedMiB: mib(getHeapStatistics().total_physical_size), externalMiB: mib(m.external), ...smaps() })}\n`,
  );
});
