/**
 * `cert-rotator monitor --path DIR...`: the node mode. Reads the certificate files under the
 * given paths every --interval and exports them as the x509 family labelled with the node's
 * name. Needs no Kubernetes API access at all.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { scanFiles } from '../monitor/file-monitor.ts';
import { registerX509Metrics } from '../monitor/metrics.ts';
import type { ObjectSummary } from '../monitor/summary.ts';
import { METRIC_PREFIX } from '../names.ts';
import { createLogger } from '../observability/logger.ts';
import { collectDefaultMetrics, Registry } from '../observability/prom.ts';
import { startHttpServer } from '../observability/server.ts';
import { PolicyInputError, parseDuration } from '../policy/renewal.ts';
import { MONITOR_USAGE } from './monitor-usage.ts';

function fail(message: string): number {
  process.stderr.write(`cert-rotator monitor: ${message}\n${MONITOR_USAGE}`);
  return 2;
}

export async function run(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(argv).values;
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
  const paths = values.path ?? [];
  if (paths.length === 0) return fail('at least one --path is required');
  let intervalMs: number;
  try {
    intervalMs = parseDuration(values.interval ?? '5m');
  } catch (err) {
    if (err instanceof PolicyInputError) return fail(`--interval: ${err.message}`);
    throw err;
  }
  if (intervalMs < 1000) return fail('--interval must be at least 1s');
  let password: string | undefined;
  if (values['password-file']) {
    try {
      // One trailing newline is what `echo` and editors add; it is not part of the password.
      password = (await readFile(values['password-file'], 'utf8')).replace(/\r?\n$/, '');
    } catch (err) {
      return fail(`cannot read --password-file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  const node = values.node ?? process.env.NODE_NAME ?? hostname();
  const log = createLogger(values['log-level'] ? { level: values['log-level'] } : {});
  const registry = new Registry();
  let current: ObjectSummary[] = [];
  let scanned = false;
  registerX509Metrics(registry, () => current, node);
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  const { server, port } = await startHttpServer(
    values['metrics-address'] ?? ':9403',
    { registry },
    {
      ready: () => scanned,
    },
  );
  const scan = async () => {
    const started = Date.now();
    current = await scanFiles({
      paths,
      ...(values['strip-prefix'] ? { stripPrefix: values['strip-prefix'] } : {}),
      ...(password !== undefined ? { password } : {}),
    });
    let certs = 0;
    for (const s of current) {
      certs += s.certs.length;
      for (const p of s.problems) log.warn({ file: s.name, reason: p.reason }, p.message);
    }
    if (!scanned)
      log.info(
        { node, files: current.length, certificates: certs, ms: Date.now() - started, metricsPort: port },
        'cert-rotator monitor started',
      );
    scanned = true;
  };
  await scan();
  const timer = setInterval(() => {
    scan().catch((err) => log.error({ error: String(err) }, 'scan failed'));
  }, intervalMs);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  clearInterval(timer);
  await new Promise<void>((r) => server.close(() => r()));
  server.closeAllConnections();
  return 0;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      path: { type: 'string', multiple: true },
      node: { type: 'string' },
      'strip-prefix': { type: 'string' },
      'password-file': { type: 'string' },
      interval: { type: 'string' },
      'metrics-address': { type: 'string' },
      'log-level': { type: 'string' },
    },
    strict: true,
  });
}
