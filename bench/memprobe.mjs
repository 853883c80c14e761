// Preloaded (--import) into a controller by bench/memory.bench.mjs: on SIGUSR2, two full GCs
// (needs --expose-gc) and one JSON line of memory figures appended to $MEMPROBE_OUT.
import { appendFileSync } from 'node:fs';

process.on('SIGUSR2', () => {
  globalThis.gc?.();
  globalThis.gc?.();
  const m = process.memoryUsage();
  const mib = (x) => Number((x / 1048576).toFixed(1));
  appendFileSync(
    process.env.MEMPROBE_OUT,
    `${JSON.stringify({ rssMiB: mib(m.rss), heapUsedMiB: mib(m.heapUsed), heapTotalMiB: mib(m.heapTotal), externalMiB: mib(m.external) })}\n`,
  );
});
