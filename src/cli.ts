#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import type { CommandEntry } from './app/command.ts';
import { MONITOR_USAGE } from './app/monitor-usage.ts';
import { StartupError } from './app/startup-error.ts';
import { SIDECAR_USAGE } from './sidecar/usage.ts';

/**
 * The commands, each loaded only when picked: a small command (the sidecar in every pod) never
 * pays for the modules of a large one (the controller's Kubernetes client). One entry per command.
 */
const COMMANDS: Record<string, CommandEntry> = {
  controller: {
    usage: `  controller --config FILE   Run the controller.
      --kubeconfig FILE      Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster).
      --metrics-address A    [host]:port for /metrics, /healthz, /readyz (default: config metrics.address).
      --log-level LEVEL      trace, debug, info, warn, error (default: info).
`,
    load: () => import('./app/controller-command.ts'),
  },
  demo: {
    usage: `  demo [--keep]              See a rotation live: a local control plane, a Secret about to
                             expire, a Deployment that mounts it, the renewal and the rollout.
      --keep                 Leave the control plane and controller up; print the KUBECONFIG.
`,
    load: () => import('./app/demo.ts'),
  },
  scan: {
    usage: `  scan [--namespace N] [--expiring-within D] [--output table|wide|json] [--config FILE]
                             Every TLS Secret: expiry, planned renewal, state, problem (needs only
                             "list" on secrets). Exit 1 when one expires within D (e.g. 14d).
      --kubeconfig FILE      Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster).
                             With --config, also the config's monitoring sources (docs/monitoring.md).
  scan PATH... [--password-file F]
                             The same for PEM files, bundles, DER certificates, kubeconfigs and
                             PKCS#12/JKS keystores (directories recursively).
`,
    load: () => import('./app/scan.ts'),
  },
  renew: {
    usage: `  renew NAMESPACE/NAME [--no-wait] [--timeout D]
                             Ask the running controller to renew a managed Secret now (annotation
                             cert-rotator.io/renew-requested-at) and wait for the new revision.
`,
    load: () => import('./app/renew.ts'),
  },
  monitor: {
    usage: MONITOR_USAGE,
    load: () => import('./app/monitor-command.ts'),
  },
  ca: {
    usage: `  ca status ISSUER --config FILE [--output text|json]
                             A ca issuer's CA rollover: phase, CAs, how many Secrets hold the
                             trust and the new leaves, workloads rolled/pending/unconfirmed.
`,
    load: () => import('./app/ca-status.ts'),
  },
  sidecar: {
    usage: SIDECAR_USAGE,
    load: () => import('./app/sidecar-command.ts'),
  },
};

const USAGE = `Usage: cert-rotator <command> [options]

Commands:
${Object.values(COMMANDS)
  .map((c) => c.usage)
  .join('\n')}
  help                       Show this text.
  version                    Print the version.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const entry = command === undefined ? undefined : COMMANDS[command];
  if (entry) return await (await entry.load()).run(rest);
  switch (command) {
    case 'version':
    case '--version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`cert-rotator: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof StartupError || (err instanceof TypeError && 'code' in err)) {
      process.stderr.write(`cert-rotator: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(
      `cert-rotator: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
