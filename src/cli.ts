#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { StartupError, startController } from './controller/run.ts';

const USAGE = `Usage: cert-rotator <command> [options]

Commands:
  controller --config FILE   Run the controller.
      --kubeconfig FILE      Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, in-cluster).
      --metrics-address A    [host]:port for /metrics, /healthz, /readyz (default: config metrics.address).
      --log-level LEVEL      trace, debug, info, warn, error (default: info).

  help                       Show this text.
  version                    Print the version.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function controller(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      kubeconfig: { type: 'string' },
      'metrics-address': { type: 'string' },
      'log-level': { type: 'string' },
    },
    strict: true,
  });
  if (!values.config) {
    process.stderr.write('cert-rotator controller: --config FILE is required\n');
    return 2;
  }
  const running = await startController({
    configPath: values.config,
    ...(values.kubeconfig ? { kubeconfigPath: values.kubeconfig } : {}),
    ...(values['metrics-address'] ? { metricsAddress: values['metrics-address'] } : {}),
    ...(values['log-level'] ? { logLevel: values['log-level'] } : {}),
  });
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      running.log.info({ signal }, 'shutting down');
      running.stop().then(resolve, resolve);
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  running.log.info('stopped');
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'controller':
      return await controller(rest);
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
