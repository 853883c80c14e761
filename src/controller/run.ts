import { readFile } from 'node:fs/promises';
import type * as k8s from '@kubernetes/client-node';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { buildIssuers } from '../issuers/index.ts';
import { describeApiError, httpStatus, loadKubeConfig, makeClients } from '../kube/client.ts';
import { EventRecorder } from '../kube/events.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { Metrics } from '../observability/metrics.ts';
import { startHttpServer } from '../observability/server.ts';
import { SecretController } from './controller.ts';

export interface ControllerOptions {
  configPath: string;
  kubeconfigPath?: string;
  metricsAddress?: string;
  logLevel?: string;
}

/** A start-up problem a user must fix; the CLI prints the message and exits non-zero. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

export async function readConfigFile(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new StartupError(
      `cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  try {
    return loadConfig(text);
  } catch (err) {
    if (err instanceof ConfigError) throw new StartupError(`invalid config file ${path}:\n${err.message}`);
    throw err;
  }
}

export interface RunningController {
  controller: SecretController;
  metricsPort: number;
  log: Logger;
  stop(): Promise<void>;
}

export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const config = await readConfigFile(opts.configPath);
  const log = createLogger(opts.logLevel ? { level: opts.logLevel } : {});
  let kc: k8s.KubeConfig;
  try {
    kc = loadKubeConfig(opts.kubeconfigPath);
  } catch (err) {
    throw new StartupError(err instanceof Error ? err.message : String(err));
  }
  const clients = makeClients(kc);
  const metrics = new Metrics();
  const events = new EventRecorder(clients.core, log);
  const { issuers, unsupported } = buildIssuers(config, {
    readSecret: async (namespace, name) => {
      try {
        const s = await clients.core.readNamespacedSecret({ namespace, name });
        const data: Record<string, string> = {};
        for (const [k, v] of Object.entries(s.data ?? {}))
          data[k] = Buffer.from(v, 'base64').toString('utf8');
        return { resourceVersion: s.metadata?.resourceVersion ?? '', data };
      } catch (err) {
        if (httpStatus(err) === 404) return undefined;
        throw new Error(describeApiError(err));
      }
    },
  });
  for (const [name, why] of unsupported) log.warn({ issuer: name }, why);
  const controller = new SecretController({
    config,
    clients,
    issuers,
    unsupportedIssuers: unsupported,
    events,
    log,
    metrics,
  });
  const { server, port } = await startHttpServer(
    opts.metricsAddress ?? config.metrics.address,
    metrics,
    controller,
  );
  controller.start();
  log.info(
    {
      namespaces: config.namespaces,
      issuers: config.issuers.map((i) => `${i.name}(${i.kind})`),
      metricsPort: port,
      concurrency: config.concurrency,
    },
    'cert-rotator controller started',
  );
  return {
    controller,
    metricsPort: port,
    log,
    async stop() {
      await controller.stop();
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
    },
  };
}
