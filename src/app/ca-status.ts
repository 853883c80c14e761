import { parseArgs } from 'node:util';
import { findIssuer } from '../config/schema.ts';
import { describeApiError, isNotFound, loadKubeConfig, makeClients } from '../kube/client.ts';
import { formatStatus, rolloverStatus } from '../rollover/status.ts';
import { readConfigFile } from './controller.ts';
import { issuedRecordStores, recordsFor } from './issued-records.ts';

const USAGE = 'usage: cert-rotator ca status ISSUER --config FILE [--output text|json] [--kubeconfig FILE]';

function fail(message: string, code = 2): number {
  process.stderr.write(`cert-rotator ca: ${message}\n`);
  return code;
}

/** `cert-rotator ca status ISSUER`: the CA rollover of a `ca` issuer, read from the cluster. */
export async function run(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  } catch (err) {
    return fail(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const [sub, name] = positionals;
  if (sub !== 'status' || name === undefined || positionals.length !== 2) return fail(USAGE);
  if (values.config === undefined) return fail(`--config is required\n${USAGE}`);
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') return fail(`--output must be text or json\n${USAGE}`);
  let config: Awaited<ReturnType<typeof readConfigFile>>;
  try {
    config = await readConfigFile(values.config);
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
  const issuer = findIssuer(config, name);
  if (issuer?.kind !== 'ca') {
    const cas = config.issuers.filter((i) => i.kind === 'ca').map((i) => i.name);
    return fail(
      `"${name}" is not a ca issuer of ${values.config} (ca issuers: ${cas.join(', ') || 'none'})`,
      1,
    );
  }
  const kc = loadKubeConfig(values.kubeconfig, config.kubeAPI);
  const clients = makeClients(kc);
  // The signers' records live where the controller keeps its Lease (the chart sets that namespace).
  const recordNamespace = config.leaderElection.namespace ?? process.env.POD_NAMESPACE ?? 'default';
  try {
    const status = await rolloverStatus(
      clients,
      config,
      issuer,
      recordsFor(issuer, issuedRecordStores(kc, recordNamespace)),
    );
    process.stdout.write(output === 'json' ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
    return 0;
  } catch (err) {
    if (isNotFound(err)) {
      const { namespace, name: secret } = issuer.ca.secret;
      return fail(`the CA Secret ${namespace}/${secret} of issuer "${name}" does not exist`, 1);
    }
    return fail(describeApiError(err), 1);
  }
}

const OPTIONS = {
  config: { type: 'string' },
  output: { type: 'string', short: 'o' },
  kubeconfig: { type: 'string' },
} as const;
