import { parseArgs } from 'node:util';
import { startController } from './controller.ts';

export async function run(argv: string[]): Promise<number> {
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
