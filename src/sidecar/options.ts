/**
 * The flags of `cert-rotator sidecar`, defined once: the parser, `--help` and the docs check
 * (test/unit/sidecar/options.test.ts) all read SIDECAR_FLAGS. Parsing collects every problem
 * and reports them together; the command exits 2 on any.
 */

import { parseListenAddress } from '../listen-address.ts';
import { parseIp } from '../pki/ip.ts';
import { isKeyAlgorithm, KEY_ALGORITHMS, type KeyAlgorithm } from '../pki/key-algorithms.ts';
import { parseDuration } from '../policy/duration.ts';
import { validFileName } from './atomic-writer.ts';
import { isLogLevel, type LogLevel } from './log.ts';
import { normaliseSignal } from './reloaders.ts';

interface FlagSpec {
  name: string;
  /** Placeholder of the value; absent for a boolean flag. */
  value?: string;
  help: string;
  repeatable?: boolean;
  /** Takes every following argument up to a lone `--` (the program and its arguments). */
  rest?: boolean;
}

export const SIDECAR_FLAGS: readonly FlagSpec[] = [
  { name: 'dir', value: 'DIR', help: 'Directory for tls.crt, tls.key, ca.crt (an emptyDir). Required.' },
  {
    name: 'secret',
    value: 'NAME',
    help: "Source: mirror this kubernetes.io/tls Secret of the pod's namespace.",
  },
  {
    name: 'csr-signer',
    value: 'NAME',
    help: "Source: request the pod's own certificate from this CSR signerName (key stays in the pod).",
  },
  { name: 'self-signed', help: 'Source: issue self-signed certificates locally.' },
  {
    name: 'ca-bundle-configmap',
    value: 'NAME[/KEY]',
    help: "With --secret or --csr-signer: write ca.crt from this ConfigMap key of the pod's namespace (default key ca.crt), e.g. a trust bundle, following its changes.",
  },
  { name: 'ca-cert', value: 'FILE', help: 'Source (with --ca-key): issue locally from this CA certificate.' },
  { name: 'ca-key', value: 'FILE', help: 'Private key of --ca-cert.' },
  {
    name: 'dns-names',
    value: 'LIST',
    help: 'Comma-separated DNS names to issue for (or require of a Secret); {namespace}, {serviceaccount}, {podname} are replaced.',
  },
  { name: 'ip-addresses', value: 'LIST', help: 'Comma-separated IP addresses to issue for (or require).' },
  { name: 'common-name', value: 'CN', help: 'Subject common name to issue for (or require).' },
  {
    name: 'trust-domain',
    value: 'DOMAIN',
    help: 'SPIFFE trust domain of the --csr-signer URI spiffe://DOMAIN/ns/NS/sa/SA (default cluster.local).',
  },
  {
    name: 'duration',
    value: 'D',
    help: 'Requested lifetime of issued certificates, e.g. 1m, 90m, 24h (default 24h; --csr-signer: at least 10m).',
  },
  {
    name: 'key-algorithm',
    value: 'ALG',
    help: `Key of issued certificates: ${KEY_ALGORITHMS.join(', ')} (default ecdsa-p256).`,
  },
  {
    name: 'key-mode',
    value: 'MODE',
    help: 'Octal mode of tls.key and the bundle file (default 0600; certificates 0644).',
  },
  { name: 'bundle-file', value: 'NAME', help: 'Also write key + chain in one PEM file of this name.' },
  {
    name: 'namespace',
    value: 'NS',
    help: "The pod's namespace (default $POD_NAMESPACE, then the in-cluster namespace file).",
  },
  { name: 'pod-name', value: 'NAME', help: 'The pod name for {podname} (default $POD_NAME).' },
  {
    name: 'service-account',
    value: 'NAME',
    help: "The pod's ServiceAccount for --csr-signer and {serviceaccount} (default $POD_SERVICE_ACCOUNT, then the token's claims).",
  },
  {
    name: 'kubeconfig',
    value: 'FILE',
    help: 'Kubeconfig for running outside a cluster (default: in-cluster credentials).',
  },
  { name: 'signal', value: 'SIG', help: 'Signal sent to --process after each swap (default HUP).' },
  {
    name: 'process',
    value: 'NAME',
    repeatable: true,
    help: 'Signal the oldest process with this /proc/PID/comm name (needs shareProcessNamespace: true).',
  },
  { name: 'all', help: 'Signal every process named --process, not only the oldest.' },
  {
    name: 'http-post',
    value: 'URL',
    repeatable: true,
    help: 'POST to this URL after each swap; non-2xx is a failure.',
  },
  {
    name: 'exec',
    value: 'CMD ARG...',
    repeatable: true,
    rest: true,
    help: 'Run CMD with ARGs (no shell) after each swap; ends at a lone -- or the end of the line.',
  },
  {
    name: 'once',
    help: 'Write the first certificate and exit 0 (an init container); exit 1 after --timeout.',
  },
  { name: 'timeout', value: 'D', help: 'With --once: give up after this long (default 2m).' },
  {
    name: 'metrics-address',
    value: 'ADDR',
    help: '[host]:port for /healthz, /readyz, /metrics (default :9403; "off" for none).',
  },
  { name: 'log-level', value: 'LEVEL', help: 'debug, info, warn, error (default info).' },
  { name: 'help', help: 'Show this text.' },
];

export function sidecarHelp(): string {
  const lines = SIDECAR_FLAGS.map((f) => {
    const head = `  --${f.name}${f.value ? ` ${f.value}` : ''}`;
    return `${head.padEnd(30)} ${f.help}${f.repeatable ? ' Repeatable.' : ''}`;
  });
  return `Usage: cert-rotator sidecar --dir DIR (--secret NAME | --csr-signer NAME | --self-signed | --ca-cert FILE --ca-key FILE) [options]

Keeps tls.crt, tls.key and ca.crt in DIR fresh (kubelet's ..data symlink swap) and tells the
application to reload. Exits 2 on bad flags, naming each problem.

${lines.join('\n')}
`;
}

export type SourceOption =
  | { kind: 'secret'; name: string }
  | { kind: 'csr'; signerName: string }
  | { kind: 'self-signed' }
  | { kind: 'ca'; certFile: string; keyFile: string };

export interface SidecarOptions {
  dir: string;
  source: SourceOption;
  /** Raw templates; expanded by the app once namespace, pod and ServiceAccount are known. */
  dnsNameTemplates: string[];
  ipAddresses: string[];
  commonName?: string | undefined;
  trustDomain: string;
  durationMs: number;
  keyAlgorithm: KeyAlgorithm;
  keyMode: number;
  bundleFile?: string | undefined;
  /** `--ca-bundle-configmap`: ca.crt comes from this ConfigMap key. */
  caBundle?: { name: string; key: string } | undefined;
  namespace?: string | undefined;
  podName?: string | undefined;
  serviceAccount?: string | undefined;
  kubeconfig?: string | undefined;
  signal: NodeJS.Signals;
  processes: string[];
  signalAll: boolean;
  httpPosts: URL[];
  execs: Array<{ command: string; args: string[] }>;
  once: boolean;
  timeoutMs: number;
  metricsAddress: string | undefined;
  logLevel: LogLevel;
}

export type ParseResult = { help: true } | { help: false; options: SidecarOptions } | { problems: string[] };

const BY_NAME = new Map(SIDECAR_FLAGS.map((f) => [f.name, f]));
const CSR_MIN_DURATION_MS = 10 * 60_000;
const LOCAL_MIN_DURATION_MS = 60_000;
const DNS_TEMPLATE = /^[A-Za-z0-9*{}._-]+$/;
const PLACEHOLDERS = new Set(['{namespace}', '{serviceaccount}', '{podname}']);

function list(v: string | undefined): string[] {
  return (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function parseSidecarArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ParseResult {
  const problems: string[] = [];
  const single = new Map<string, string | true>();
  const multi = new Map<string, string[]>();
  const execs: Array<{ command: string; args: string[] }> = [];

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--') || arg === '--') {
      problems.push(`unexpected argument "${arg}" (flags start with --; see --help)`);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = BY_NAME.get(name);
    if (!spec) {
      problems.push(`unknown flag --${name}`);
      continue;
    }
    if (spec.rest) {
      const rest: string[] = eq < 0 ? [] : [arg.slice(eq + 1)];
      while (i + 1 < argv.length && argv[i + 1] !== '--') rest.push(argv[++i]!);
      if (argv[i + 1] === '--') i++;
      if (rest.length === 0 || rest[0] === '') problems.push(`--${name} needs a program to run`);
      else execs.push({ command: rest[0]!, args: rest.slice(1) });
      continue;
    }
    let value: string | true;
    if (spec.value === undefined) {
      if (eq >= 0) {
        problems.push(`--${name} takes no value`);
        continue;
      }
      value = true;
    } else if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) {
      value = argv[++i]!;
    } else {
      problems.push(`--${name} needs a value (${spec.value})`);
      single.set(name, '');
      continue;
    }
    if (spec.repeatable) {
      multi.set(name, [...(multi.get(name) ?? []), value as string]);
    } else if (single.has(name)) {
      problems.push(`--${name} is given more than once`);
    } else {
      single.set(name, value);
    }
  }
  if (single.get('help') === true) return { help: true };

  const str = (n: string): string | undefined => {
    const v = single.get(n);
    return typeof v === 'string' ? v : undefined;
  };
  const flag = (n: string): boolean => single.get(n) === true;

  const dir = str('dir');
  if (dir === undefined) problems.push('--dir DIR is required');

  const sources: SourceOption[] = [];
  const secret = str('secret');
  if (secret !== undefined) {
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(secret))
      problems.push(`--secret "${secret}" is not a valid Secret name`);
    sources.push({ kind: 'secret', name: secret });
  }
  const signer = str('csr-signer');
  if (signer !== undefined) {
    if (!/^[a-z0-9.-]+\/[A-Za-z0-9.:_-]+$/.test(signer))
      problems.push(
        `--csr-signer "${signer}" is not a signerName (DOMAIN/NAME, e.g. cert-rotator.io/workload-ca)`,
      );
    sources.push({ kind: 'csr', signerName: signer });
  }
  if (flag('self-signed')) sources.push({ kind: 'self-signed' });
  const caCert = str('ca-cert');
  const caKey = str('ca-key');
  if (caCert !== undefined || caKey !== undefined) {
    if (caCert === undefined) problems.push('--ca-key needs --ca-cert');
    if (caKey === undefined) problems.push('--ca-cert needs --ca-key');
    sources.push({ kind: 'ca', certFile: caCert ?? '', keyFile: caKey ?? '' });
  }
  if (sources.length === 0)
    problems.push(
      'a source is required: --secret NAME, --csr-signer NAME, --self-signed or --ca-cert FILE --ca-key FILE',
    );
  if (sources.length > 1)
    problems.push(`exactly one source is allowed; got ${sources.map((s) => s.kind).join(', ')}`);
  const source = sources[0];
  const issuing = source !== undefined && source.kind !== 'secret';

  const dnsNameTemplates = list(str('dns-names'));
  for (const t of dnsNameTemplates) {
    const unknown = (t.match(/\{[^}]*\}/g) ?? []).filter((p) => !PLACEHOLDERS.has(p));
    if (!DNS_TEMPLATE.test(t) || unknown.length > 0)
      problems.push(
        `--dns-names "${t}" is not a DNS name${unknown.length ? ` (unknown placeholder ${unknown.join(', ')}; use {namespace}, {serviceaccount}, {podname})` : ''}`,
      );
  }
  const ipAddresses = list(str('ip-addresses'));
  for (const ip of ipAddresses)
    if (parseIp(ip) === undefined) problems.push(`--ip-addresses "${ip}" is not an IP address`);
  const commonName = str('common-name');
  if (commonName !== undefined && (commonName.length === 0 || commonName.length > 64))
    problems.push('--common-name must be 1 to 64 characters');
  if (
    (source?.kind === 'self-signed' || source?.kind === 'ca') &&
    dnsNameTemplates.length === 0 &&
    ipAddresses.length === 0 &&
    commonName === undefined
  )
    problems.push(
      `--${source.kind === 'ca' ? 'ca-cert' : 'self-signed'} needs --dns-names, --ip-addresses or --common-name`,
    );

  const trustDomain = str('trust-domain') ?? 'cluster.local';
  if (!/^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?$/.test(trustDomain))
    problems.push(
      `--trust-domain "${trustDomain}" is not a trust domain (lowercase letters, digits, dots, dashes)`,
    );

  let durationMs = 24 * 3_600_000;
  const durationText = str('duration');
  if (durationText !== undefined) {
    if (!issuing)
      problems.push('--duration applies to issuing sources only (a Secret has the lifetime it has)');
    try {
      durationMs = parseDuration(durationText);
      const min = source?.kind === 'csr' ? CSR_MIN_DURATION_MS : LOCAL_MIN_DURATION_MS;
      if (durationMs < min)
        problems.push(
          `--duration ${durationText} is too short; the minimum is ${source?.kind === 'csr' ? '10m (the CSR API refuses less)' : '1m'}`,
        );
    } catch (err) {
      problems.push(`--duration: ${(err as Error).message}`);
    }
  }

  const keyAlgorithmText = str('key-algorithm') ?? 'ecdsa-p256';
  if (!isKeyAlgorithm(keyAlgorithmText))
    problems.push(`--key-algorithm "${keyAlgorithmText}" is not one of ${KEY_ALGORITHMS.join(', ')}`);

  let keyMode = 0o600;
  const keyModeText = str('key-mode');
  if (keyModeText !== undefined) {
    if (!/^0?[0-7]{3}$/.test(keyModeText))
      problems.push(`--key-mode "${keyModeText}" is not an octal mode such as 0600 or 0640`);
    else {
      keyMode = Number.parseInt(keyModeText, 8);
      if (keyMode & 0o007)
        problems.push(`--key-mode ${keyModeText} would make the private key readable by every user`);
    }
  }
  const bundleFile = str('bundle-file');
  if (
    bundleFile !== undefined &&
    (!validFileName(bundleFile) || ['tls.crt', 'tls.key', 'ca.crt'].includes(bundleFile))
  )
    problems.push(
      `--bundle-file "${bundleFile}" must be a plain file name other than tls.crt, tls.key, ca.crt`,
    );

  const caBundleText = str('ca-bundle-configmap');
  let caBundle: SidecarOptions['caBundle'];
  if (caBundleText !== undefined) {
    const [name = '', key = 'ca.crt', ...extra] = caBundleText.split('/');
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name) || extra.length > 0)
      problems.push(
        `--ca-bundle-configmap "${caBundleText}" must be NAME or NAME/KEY (a ConfigMap name and key)`,
      );
    else if (!/^[-._a-zA-Z0-9]{1,253}$/.test(key))
      problems.push(`--ca-bundle-configmap: "${key}" is not a ConfigMap key`);
    else caBundle = { name, key };
    if (!(source?.kind === 'secret' || source?.kind === 'csr'))
      problems.push('--ca-bundle-configmap applies to --secret and --csr-signer only');
    if (flag('once'))
      problems.push(
        '--ca-bundle-configmap does not apply to --once: the running sidecar keeps ca.crt following the bundle',
      );
  }

  const namespace = str('namespace') ?? (env.POD_NAMESPACE || undefined);
  const podName = str('pod-name') ?? (env.POD_NAME || undefined);
  const serviceAccount = str('service-account') ?? (env.POD_SERVICE_ACCOUNT || undefined);
  const kubeconfig = str('kubeconfig');
  if (kubeconfig !== undefined && !(source?.kind === 'secret' || source?.kind === 'csr'))
    problems.push('--kubeconfig applies to --secret and --csr-signer only');

  const signalText = str('signal') ?? 'HUP';
  const signal = normaliseSignal(signalText);
  if (signal === undefined) problems.push(`--signal "${signalText}" is not a signal name (e.g. HUP, USR1)`);
  const processes = multi.get('process') ?? [];
  if (str('signal') !== undefined && processes.length === 0) problems.push('--signal needs --process NAME');
  if (flag('all') && processes.length === 0) problems.push('--all needs --process NAME');
  for (const p of processes)
    if (p === '' || p.includes('/')) problems.push(`--process "${p}" is not a process name`);
  const httpPosts: URL[] = [];
  for (const u of multi.get('http-post') ?? []) {
    const url = URL.canParse(u) ? new URL(u) : undefined;
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:'))
      problems.push(`--http-post "${u}" is not an http:// or https:// URL`);
    else httpPosts.push(url);
  }

  const once = flag('once');
  let timeoutMs = 120_000;
  const timeoutText = str('timeout');
  if (timeoutText !== undefined) {
    if (!once) problems.push('--timeout applies to --once only');
    try {
      timeoutMs = parseDuration(timeoutText);
    } catch (err) {
      problems.push(`--timeout: ${(err as Error).message}`);
    }
  }
  let metricsAddress: string | undefined = str('metrics-address') ?? ':9403';
  if (metricsAddress === 'off') metricsAddress = undefined;
  else if (parseListenAddress(metricsAddress) === undefined)
    problems.push(
      `--metrics-address "${metricsAddress}" must be [host]:port, e.g. :9403 or 127.0.0.1:9403, or off`,
    );
  const logLevel = str('log-level') ?? 'info';
  if (!isLogLevel(logLevel))
    problems.push(`--log-level "${logLevel}" is not one of debug, info, warn, error`);

  if (problems.length > 0 || source === undefined || dir === undefined) return { problems };
  return {
    help: false,
    options: {
      dir,
      source,
      dnsNameTemplates,
      ipAddresses,
      commonName,
      trustDomain,
      durationMs,
      keyAlgorithm: keyAlgorithmText as KeyAlgorithm,
      keyMode,
      bundleFile,
      caBundle,
      namespace,
      podName,
      serviceAccount,
      kubeconfig,
      signal: signal!,
      processes,
      signalAll: flag('all'),
      httpPosts,
      execs,
      once,
      timeoutMs,
      metricsAddress,
      logLevel: logLevel as LogLevel,
    },
  };
}

/** Replaces {namespace}, {serviceaccount}, {podname}; names the placeholder whose value is unknown. */
export function expandTemplate(
  template: string,
  values: {
    namespace?: string | undefined;
    serviceaccount?: string | undefined;
    podname?: string | undefined;
  },
): string {
  return template.replace(/\{(namespace|serviceaccount|podname)\}/g, (_m, key: keyof typeof values) => {
    const v = values[key];
    if (v === undefined || v === '') {
      const how = {
        namespace: '--namespace or $POD_NAMESPACE',
        serviceaccount: '--service-account or $POD_SERVICE_ACCOUNT',
        podname: '--pod-name or $POD_NAME',
      }[key];
      throw new Error(`--dns-names "${template}" uses {${key}}, but it is unknown: set ${how}`);
    }
    return v;
  });
}
