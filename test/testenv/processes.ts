import { stopAllPeersNow } from '../../src/devcluster/processes.ts';

// The peer launcher (leash included) is part of the product (`cert-rotator demo`).
export * from '../../src/devcluster/processes.ts';

// A test run interrupted by Ctrl-C (or a CI runner's SIGTERM) stops every peer and exits at
// once; the demo installs its own handlers because it also removes its directory.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    stopAllPeersNow();
    process.exit(130);
  });
}
