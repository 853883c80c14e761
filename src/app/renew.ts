import { parseArgs } from 'node:util';
import type * as k8s from '@kubernetes/client-node';
import { loadConfig } from '../config/load.ts';
import { type CoreV1Api, describeApiError, loadKubeConfig, makeClients } from '../kube/client.ts';
import { annotateSecret, readSecret } from '../kube/secret-annotate.ts';
import { Annotation, SecretKey, StatusAnnotation, TLS_SECRET_TYPE } from '../names.ts';
import { certificatesFromPem, readCertificateSummary } from '../pki/index.ts';
import { PolicyInputError, parseDuration } from '../policy/renewal.ts';
import { rowFromSecret } from './scan-rows.ts';

const USAGE = 'usage: cert-rotator renew NAMESPACE/NAME [--no-wait] [--timeout D] [--kubeconfig FILE]';
const POLL_MS = 500;

function fail(message: string, code = 2): number {
  process.stderr.write(`cert-rotator renew: ${message}\n`);
  return code;
}

const revisionOf = (s: k8s.V1Secret) =>
  Number(s.metadata?.annotations?.[StatusAnnotation.revision] ?? '0') || 0;
const failuresOf = (s: k8s.V1Secret) =>
  Number(s.metadata?.annotations?.[StatusAnnotation.failures] ?? '0') || 0;

/**
 * A fresh token: the current time in RFC 3339 with milliseconds, moved on by a millisecond if the
 * Secret already carries that very value (the controller acts once per new value).
 */
export function freshToken(previous: string | undefined, now = Date.now()): string {
  let at = now;
  while (new Date(at).toISOString() === previous) at++;
  return new Date(at).toISOString();
}

function certLine(secret: k8s.V1Secret): string {
  try {
    const pem = Buffer.from(secret.data?.[SecretKey.certificate] ?? '', 'base64').toString('latin1');
    const s = readCertificateSummary(certificatesFromPem(pem)[0] as Uint8Array);
    return `serial ${s.serialHex}, notAfter ${new Date(s.notAfter).toISOString()}`;
  } catch (err) {
    return `certificate unreadable (${err instanceof Error ? err.message : String(err)})`;
  }
}

export async function run(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    return fail(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const target = positionals[0];
  const slash = target?.indexOf('/') ?? -1;
  if (
    positionals.length !== 1 ||
    !target ||
    slash <= 0 ||
    slash === target.length - 1 ||
    target.indexOf('/', slash + 1) >= 0
  ) {
    return fail(`name the Secret as NAMESPACE/NAME\n${USAGE}`);
  }
  const namespace = target.slice(0, slash);
  const name = target.slice(slash + 1);
  let timeoutMs = 5 * 60_000;
  if (values.timeout !== undefined) {
    try {
      timeoutMs = parseDuration(values.timeout);
    } catch (err) {
      if (err instanceof PolicyInputError) return fail(`--timeout: ${err.message}`);
      throw err;
    }
  }
  let core: CoreV1Api;
  try {
    core = makeClients(loadKubeConfig(values.kubeconfig)).core;
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }

  let before: k8s.V1Secret | undefined;
  try {
    before = await readSecret(core, namespace, name);
  } catch (err) {
    return fail(`cannot read Secret ${target}: ${describeApiError(err)}`);
  }
  if (!before) return fail(`Secret ${target} not found`);
  if (before.type !== TLS_SECRET_TYPE) {
    return fail(
      `Secret ${target} is of type ${before.type ?? '(none)'}, not ${TLS_SECRET_TYPE}: cert-rotator manages only TLS Secrets`,
    );
  }
  const annotations = before.metadata?.annotations ?? {};
  if (annotations[Annotation.enabled] !== 'true') {
    return fail(
      `Secret ${target} is not managed by cert-rotator (no ${Annotation.enabled}: "true"); opt it in with: kubectl annotate secret -n ${namespace} ${name} ${Annotation.enabled}=true`,
    );
  }

  // The controller leaves a Secret with a bad annotation untouched: say so now instead of waiting.
  const bad = rowFromSecret(before, loadConfig(''), false, Date.now()).problems.filter((p) =>
    p.startsWith('bad annotation '),
  );
  if (bad.length > 0) {
    return fail(
      `Secret ${target} has annotations the controller refuses, so it would not renew it: ${bad.join('; ')}`,
    );
  }

  const token = freshToken(annotations[Annotation.renewRequestedAt]);
  let after: k8s.V1Secret;
  try {
    after = await annotateSecret(core, namespace, name, { [Annotation.renewRequestedAt]: token });
  } catch (err) {
    return fail(`cannot annotate Secret ${target}: ${describeApiError(err)}`);
  }
  const revision = revisionOf(before);
  const failures = failuresOf(after);
  process.stdout.write(
    `renewal of ${target} requested (${Annotation.renewRequestedAt}=${token}); revision now ${revision}\n`,
  );
  if (values['no-wait']) return 0;

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    let now: k8s.V1Secret | undefined;
    try {
      now = await readSecret(core, namespace, name);
    } catch (err) {
      process.stderr.write(
        `cert-rotator renew: reading ${target} failed: ${describeApiError(err)} (retrying)\n`,
      );
      continue;
    }
    if (!now) return fail(`Secret ${target} was deleted while waiting`, 1);
    const a = now.metadata?.annotations ?? {};
    if (revisionOf(now) > revision && a[StatusAnnotation.renewRequestHandled] === token) {
      process.stdout.write(`renewed ${target}: revision ${revisionOf(now)}, ${certLine(now)}\n`);
      return 0;
    }
    if (a[Annotation.renewRequestedAt] !== token) {
      return fail(
        `${Annotation.renewRequestedAt} on ${target} was changed to "${a[Annotation.renewRequestedAt] ?? ''}" by someone else; not waiting for it`,
        1,
      );
    }
    if (failuresOf(now) > failures) {
      return fail(
        `the controller's renewal of ${target} failed: ${a[StatusAnnotation.lastError] ?? 'no reason given'}; the request stays pending and is retried after the controller's backoff`,
        1,
      );
    }
    if (Date.now() > deadline) {
      return fail(
        `no renewal of ${target} within ${values.timeout ?? '5m'}: is a cert-rotator controller running and watching namespace ${namespace}? (the request stays pending; --no-wait returns at once)`,
        1,
      );
    }
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'no-wait': { type: 'boolean', default: false },
      timeout: { type: 'string' },
      kubeconfig: { type: 'string' },
    },
    strict: true,
  });
}
