import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type * as k8s from '@kubernetes/client-node';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { describeApiError, httpStatus, type KubeTransport, loadKubeConfig } from '../kube/client.ts';
import { listTlsSecrets } from '../kube/secret-list.ts';
import { monitoringEnabled } from '../monitor/cluster-monitor.ts';
import { PolicyInputError, parseDuration } from '../policy/renewal.ts';
import { scanPaths } from './scan-files.ts';
import { scanMonitored } from './scan-monitored.ts';
import { formatJson, formatTable, OUTPUT_FORMATS, type OutputFormat } from './scan-output.ts';
import { rowFromSecret, type ScanRow, sortRows } from './scan-rows.ts';

export interface ScanClusterOptions {
  namespace?: string;
  /** The controller's config (from --config), else the built-in defaults. */
  config: Config;
  configFromFile: boolean;
  now: number;
  pageSize?: number;
  /** Told the number of Secrets read so far after each page. */
  onProgress?: (secrets: number) => void;
}

/** One row per TLS Secret of the cluster (or of one namespace), in the order listed. */
export async function scanCluster(
  kc: KubeTransport | k8s.KubeConfig,
  options: ScanClusterOptions,
): Promise<ScanRow[]> {
  const rows: ScanRow[] = [];
  await listTlsSecrets(kc, {
    ...(options.namespace ? { namespace: options.namespace } : {}),
    ...(options.pageSize ? { pageSize: options.pageSize } : {}),
    onRestart: () => {
      rows.length = 0;
    },
    onPage: (items) => {
      for (const secret of items)
        rows.push(rowFromSecret(secret, options.config, options.configFromFile, options.now));
      options.onProgress?.(rows.length);
    },
  });
  return rows;
}

function fail(message: string): number {
  process.stderr.write(`cert-rotator scan: ${message}\n`);
  return 2;
}

async function readConfig(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    return loadConfig(text);
  } catch (err) {
    if (err instanceof ConfigError) throw new Error(`invalid config file ${path}:\n${err.message}`);
    throw err;
  }
}

/** A progress line on stderr once the scan has taken a second, refreshed each second. */
function progressReporter(): { update(n: number): void; done(): void } {
  const started = Date.now();
  let count = 0;
  let shown = false;
  const tty = process.stderr.isTTY === true;
  const show = () => {
    const text = `scanning: ${count} Secrets read (${Math.round((Date.now() - started) / 1000)}s)`;
    process.stderr.write(tty ? `\r${text}\x1b[K` : `${text}\n`);
    shown = true;
  };
  const timer = setInterval(show, 1_000);
  timer.unref();
  return {
    update(n) {
      count = n;
    },
    done() {
      clearInterval(timer);
      if (shown && tty) process.stderr.write('\r\x1b[K');
    },
  };
}

export async function run(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    return fail(
      `${err instanceof Error ? err.message : String(err)}\nusage: cert-rotator scan [--namespace N] [--expiring-within D] [--output table|wide|json] [--config FILE] | scan PATH... [--password-file F]`,
    );
  }
  const { values, positionals } = parsed;
  const output = (values.output ?? 'table') as OutputFormat;
  if (!OUTPUT_FORMATS.includes(output))
    return fail(`--output must be one of ${OUTPUT_FORMATS.join(', ')}, got "${values.output}"`);
  let withinMs: number | undefined;
  if (values['expiring-within'] !== undefined) {
    try {
      withinMs = parseDuration(values['expiring-within']);
    } catch (err) {
      if (err instanceof PolicyInputError) return fail(`--expiring-within: ${err.message}`);
      throw err;
    }
  }
  if (positionals.length === 0 && values['password-file']) {
    return fail('--password-file applies to keystore files: scan PATH... --password-file F');
  }
  if (positionals.length > 0 && (values.namespace || values.kubeconfig || values.config)) {
    return fail(
      'scan PATH... reads files: --namespace, --kubeconfig and --config apply to a cluster scan only',
    );
  }
  const now = Date.now();
  let rows: ScanRow[];
  if (positionals.length > 0) {
    let password: string | undefined;
    if (values['password-file']) {
      try {
        // One trailing newline is what `echo` and editors add; it is not part of the password.
        password = (await readFile(values['password-file'], 'utf8')).replace(/\r?\n$/, '');
      } catch (err) {
        return fail(`cannot read --password-file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
    }
    rows = await scanPaths(positionals, now, password);
  } else {
    let config: Config;
    let kc: KubeTransport;
    try {
      config = values.config ? await readConfig(values.config) : loadConfig('');
      kc = loadKubeConfig(values.kubeconfig);
    } catch (err) {
      return fail(err instanceof Error ? err.message : String(err));
    }
    const progress = progressReporter();
    try {
      rows = await scanCluster(kc, {
        ...(values.namespace ? { namespace: values.namespace } : {}),
        config,
        configFromFile: values.config !== undefined,
        now,
        onProgress: (n) => progress.update(n),
      });
      // The config's monitoring sources too (Secret keys, ConfigMaps, keystores, webhooks).
      if (monitoringEnabled(config.monitoring)) {
        try {
          rows.push(
            ...(await scanMonitored(kc, config.monitoring, {
              ...(values.namespace ? { namespace: values.namespace } : {}),
              now,
            })),
          );
        } catch (err) {
          return fail(
            `cannot list the monitoring sources of the config: ${describeApiError(err)} (docs/monitoring.md lists the grants each needs)`,
          );
        }
      }
    } catch (err) {
      const where = values.namespace
        ? `in namespace ${values.namespace}`
        : 'in all namespaces (use --namespace N with only a Role)';
      const hint = httpStatus(err) === 403 ? `; scan needs "list" on secrets ${where}` : '';
      return fail(`cannot list Secrets: ${describeApiError(err)}${hint}`);
    } finally {
      progress.done();
    }
  }
  sortRows(rows);
  const within = values['expiring-within'];
  process.stdout.write(
    output === 'json'
      ? formatJson(rows, {
          scannedAt: new Date(now).toISOString(),
          ...(within ? { expiringWithin: within } : {}),
        })
      : formatTable(rows, output === 'wide'),
  );
  if (withinMs !== undefined) {
    const limit = now + withinMs;
    const expiring = rows.filter((r) => r.notAfter !== null && Date.parse(r.notAfter) <= limit);
    if (expiring.length > 0) {
      process.stderr.write(
        `cert-rotator scan: ${expiring.length} certificate${expiring.length === 1 ? '' : 's'} expire${expiring.length === 1 ? 's' : ''} within ${within}\n`,
      );
      return 1;
    }
  }
  return 0;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      namespace: { type: 'string', short: 'n' },
      'expiring-within': { type: 'string' },
      output: { type: 'string', short: 'o' },
      config: { type: 'string' },
      kubeconfig: { type: 'string' },
      'password-file': { type: 'string' },
    },
    strict: true,
  });
}
