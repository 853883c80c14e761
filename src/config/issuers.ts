/** Reading and checking the `issuers` list of the configuration file. */
import { isIP } from 'node:net';
import { parseDuration } from '../pki/policy.ts';
import { join, type Mapping, type Reader } from './reader.ts';
import type {
  AcmeIssuerConfig,
  AcmeSolverConfig,
  Http01SolverConfig,
  IssuerConfig,
  IssuerKind,
  Rfc2136Config,
  SecretKeyRef,
  SecretRef,
  SolverSelector,
} from './schema.ts';
import { CONFIG_DEFAULTS } from './schema.ts';
import {
  certificateDnsNameProblem,
  globProblem,
  isDnsLabel,
  namespaceProblem,
  objectNameProblem,
  secretDataKeyProblem,
} from './syntax.ts';

const ISSUER_KINDS: readonly IssuerKind[] = ['ca', 'selfSigned', 'acme', 'kubernetesCSR'];
const ISSUER_KEYS = [
  'name',
  ...ISSUER_KINDS,
  'duration',
  'allowedNamespaces',
  'allowedDomains',
  'fallback',
  'fallbackAfter',
];
const TEN_YEARS_SECONDS = 3650 * 24 * 3600;

/** Requested certificate lifetime: a duration of at least one hour. */
export function parseCertificateDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms < parseDuration(CONFIG_DEFAULTS.minCertificateDuration)) {
    throw new Error(`"${text}" is too short; a certificate lifetime must be at least 1h`);
  }
  return ms;
}

export function readIssuers(r: Reader, value: unknown): IssuerConfig[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    r.report('issuers', 'must be a list');
    return [];
  }
  const issuers: IssuerConfig[] = [];
  // Judged on the raw names, so a duplicate is reported even when the first entry has errors.
  const firstIndexOfName = new Map<string, number>();
  value.forEach((item: unknown, index) => {
    const path = `issuers[${index}]`;
    const name = rawName(item);
    const seen = name === undefined ? undefined : firstIndexOfName.get(name);
    if (name !== undefined && seen === undefined) firstIndexOfName.set(name, index);
    const issuer = readIssuer(r, item, path);
    if (seen !== undefined) {
      r.report(join(path, 'name'), `duplicate issuer name "${name}" (also issuers[${seen}])`);
    } else if (issuer) {
      issuers.push(issuer);
    }
  });
  return issuers;
}

/** Cross-references that need the whole list: fallbacks must name another issuer, without cycles. */
export function checkFallbacks(r: Reader, rawIssuers: unknown): void {
  if (!Array.isArray(rawIssuers)) return;
  // Judged on the raw entries, so an issuer with its own errors does not hide or cause others.
  const names = new Set(rawIssuerNames(rawIssuers));
  const fallbackOf = new Map<string, string>();
  for (const item of rawIssuers) {
    const name = rawName(item);
    const fallback = (item as Mapping | null)?.fallback;
    if (name !== undefined && typeof fallback === 'string' && !fallbackOf.has(name)) {
      fallbackOf.set(name, fallback.trim());
    }
  }
  rawIssuers.forEach((item: unknown, index) => {
    const name = rawName(item);
    const fallback = name === undefined ? undefined : fallbackOf.get(name);
    if (name === undefined || fallback === undefined || fallback === '') return;
    const path = `issuers[${index}].fallback`;
    if (fallback === name) {
      r.report(path, 'must name another issuer, not the issuer itself');
    } else if (!names.has(fallback)) {
      r.report(path, `unknown issuer "${fallback}"`);
    } else {
      const chain = [name];
      let next: string | undefined = fallback;
      while (next !== undefined && !chain.includes(next)) {
        chain.push(next);
        next = fallbackOf.get(next);
      }
      if (next === name) r.report(path, `fallback cycle: ${[...chain, next].join(' -> ')}`);
    }
  });
}

function rawName(item: unknown): string | undefined {
  const name = (item as Mapping | null)?.name;
  return typeof name === 'string' && name.trim() !== '' ? name.trim() : undefined;
}

/** The `name` of every issuer entry that has a string name, valid or not. */
export function rawIssuerNames(rawIssuers: unknown): string[] {
  if (!Array.isArray(rawIssuers)) return [];
  return [...new Set(rawIssuers.flatMap((item: unknown) => rawName(item) ?? []))];
}

function readIssuer(r: Reader, item: unknown, path: string): IssuerConfig | undefined {
  const m = r.mapping(item, path, ISSUER_KEYS);
  if (!m) return undefined;
  const name = r.string(m, 'name', path, true);
  if (name !== undefined && !isDnsLabel(name)) {
    r.report(
      join(path, 'name'),
      `"${name}" is not a valid issuer name (lowercase letters, digits and "-", at most 63 characters)`,
    );
  }
  const kinds = ISSUER_KINDS.filter((kind) => kind in m);
  if (kinds.length !== 1) {
    r.report(
      path,
      kinds.length === 0
        ? `needs exactly one of ${ISSUER_KINDS.join(', ')}`
        : `has ${kinds.join(' and ')}; choose exactly one of ${ISSUER_KINDS.join(', ')}`,
    );
  }
  const kind = kinds[0];

  const common = {
    name: name ?? '',
    allowedNamespaces: r.stringList(m, 'allowedNamespaces', path, globProblem) ?? [
      ...CONFIG_DEFAULTS.allowedNamespaces,
    ],
    allowedDomains: r.stringList(m, 'allowedDomains', path, globProblem),
    fallback: r.string(m, 'fallback', path),
    fallbackAfter: r.integer(m, 'fallbackAfter', path, 1, 100),
    durationMs: r.parsed(m, 'duration', path, parseCertificateDuration),
  };

  let issuer: IssuerConfig | undefined;
  switch (kind) {
    case 'ca': {
      const ca = r.optionalMapping(m.ca, join(path, 'ca'), ['secret']);
      const secret = ca && readSecretRef(r, ca, 'secret', join(path, 'ca'));
      if (secret) issuer = { ...common, kind, ca: { secret } };
      break;
    }
    case 'selfSigned':
      r.optionalMapping(m.selfSigned, join(path, 'selfSigned'), []);
      issuer = { ...common, kind };
      break;
    case 'acme': {
      if (common.durationMs !== undefined) {
        r.report(
          join(path, 'duration'),
          'not supported for acme issuers (the ACME server chooses the lifetime)',
        );
      }
      const acme = readAcme(r, m.acme, join(path, 'acme'));
      if (acme) issuer = { ...common, kind, acme };
      break;
    }
    case 'kubernetesCSR': {
      const at = join(path, 'kubernetesCSR');
      const csr = r.mapping(m.kubernetesCSR, at, ['signerName', 'autoApprove', 'expirationSeconds']);
      if (!csr) break;
      const signerName = r.string(csr, 'signerName', at, true);
      if (signerName !== undefined && !/^[a-z0-9.-]+\/[A-Za-z0-9._/-]+$/.test(signerName)) {
        r.report(
          join(at, 'signerName'),
          `"${signerName}" must look like "example.com/serving" (domain/path)`,
        );
      }
      const expirationSeconds = r.integer(
        csr,
        'expirationSeconds',
        at,
        CONFIG_DEFAULTS.minExpirationSeconds,
        TEN_YEARS_SECONDS,
      );
      if (expirationSeconds !== undefined && common.durationMs !== undefined) {
        r.report(join(path, 'duration'), 'set either duration or kubernetesCSR.expirationSeconds, not both');
      }
      if (signerName !== undefined) {
        issuer = {
          ...common,
          durationMs:
            common.durationMs ?? (expirationSeconds === undefined ? undefined : expirationSeconds * 1000),
          kind,
          kubernetesCSR: {
            signerName,
            autoApprove: r.boolean(csr, 'autoApprove', at) ?? false,
            expirationSeconds,
          },
        };
      }
      break;
    }
    case undefined:
      break;
  }
  if (issuer && (issuer.kind === 'ca' || issuer.kind === 'selfSigned')) {
    issuer.durationMs ??= parseDuration(CONFIG_DEFAULTS.issuerDuration);
  }
  return name === undefined ? undefined : dropUndefined(issuer);
}

function readAcme(r: Reader, value: unknown, path: string): AcmeIssuerConfig | undefined {
  const m = r.mapping(value, path, [
    'server',
    'email',
    'accountKeySecret',
    'externalAccountBinding',
    'solvers',
    'caBundle',
    'maxOrdersPerHour',
    'ari',
  ]);
  if (!m) return undefined;
  const server = r.string(m, 'server', path, true);
  if (server !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(server);
    } catch {
      url = undefined;
    }
    if (url?.protocol !== 'https:') {
      r.report(join(path, 'server'), `"${server}" must be an https:// URL of an ACME directory`);
    }
  }
  const email = r.string(m, 'email', path);
  if (email !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
    r.report(join(path, 'email'), `"${email}" is not an email address`);
  }
  const accountKeySecret = readSecretRef(r, m, 'accountKeySecret', path);

  let externalAccountBinding: AcmeIssuerConfig['externalAccountBinding'];
  if (m.externalAccountBinding !== undefined) {
    const at = join(path, 'externalAccountBinding');
    const eab = r.mapping(m.externalAccountBinding, at, ['keyId', 'hmacKeySecret']);
    if (eab) {
      const keyId = r.string(eab, 'keyId', at, true);
      const hmacKeySecret = readSecretKeyRef(r, eab, 'hmacKeySecret', at);
      if (keyId !== undefined && hmacKeySecret) externalAccountBinding = { keyId, hmacKeySecret };
    }
  }

  const solvers = readSolvers(r, m.solvers, join(path, 'solvers'));
  const caBundle = r.string(m, 'caBundle', path);
  if (caBundle !== undefined && !caBundle.includes('-----BEGIN CERTIFICATE-----')) {
    r.report(
      join(path, 'caBundle'),
      'must be PEM text with at least one "-----BEGIN CERTIFICATE-----" block',
    );
  }
  const maxOrdersPerHour =
    r.integer(m, 'maxOrdersPerHour', path, 1, 1000) ?? CONFIG_DEFAULTS.acmeMaxOrdersPerHour;
  const ari = r.boolean(m, 'ari', path) ?? true;
  if (server === undefined || !accountKeySecret || !solvers) return undefined;
  return dropUndefined({
    server,
    email,
    accountKeySecret,
    externalAccountBinding,
    solvers,
    caBundle,
    maxOrdersPerHour,
    ari,
  });
}

function readSolvers(r: Reader, value: unknown, path: string): AcmeSolverConfig[] | undefined {
  if (value === undefined || value === null) {
    r.report(path, 'required: list at least one solver (http01 or dns01)');
    return undefined;
  }
  if (!Array.isArray(value) || value.length === 0) {
    r.report(path, 'must be a non-empty list of solvers (http01 or dns01)');
    return undefined;
  }
  const solvers: AcmeSolverConfig[] = [];
  value.forEach((item: unknown, index) => {
    const at = `${path}[${index}]`;
    const m = r.mapping(item, at, ['http01', 'dns01', 'selector']);
    if (!m) return;
    const selector = readSelector(r, m.selector, join(at, 'selector'));
    const kinds = ['http01', 'dns01'].filter((k) => k in m);
    if (kinds.length !== 1) {
      r.report(at, kinds.length === 0 ? 'needs exactly one of http01, dns01' : 'has both http01 and dns01');
      return;
    }
    if (kinds[0] === 'http01') {
      const h = readHttp01(r, m.http01, join(at, 'http01'));
      if (h) solvers.push(dropUndefined({ kind: 'http01' as const, ...h, selector }));
      return;
    }
    const dns01At = join(at, 'dns01');
    const dns01 = r.mapping(m.dns01, dns01At, ['rfc2136']);
    const rfc2136 = dns01 && readRfc2136(r, dns01.rfc2136, join(dns01At, 'rfc2136'));
    if (rfc2136) solvers.push(dropUndefined({ kind: 'dns01' as const, rfc2136, selector }));
  });
  return solvers.length === value.length ? solvers : undefined;
}

function readHttp01(r: Reader, value: unknown, path: string): Http01SolverConfig | undefined {
  const m = r.optionalMapping(value, path, [
    'address',
    'podIP',
    'ingress',
    'ingressClassName',
    'ingressAnnotations',
  ]);
  if (!m) return undefined;
  const address = r.string(m, 'address', path);
  if (address !== undefined && !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/.test(address)) {
    r.report(join(path, 'address'), `"${address}" must be [host]:port, e.g. ":8089"`);
  }
  const podIP = r.string(m, 'podIP', path);
  if (podIP !== undefined && isIP(podIP) === 0)
    r.report(join(path, 'podIP'), `"${podIP}" is not an IP address`);
  const ingressClassName = r.string(m, 'ingressClassName', path);
  const nameProblem = ingressClassName === undefined ? undefined : objectNameProblem(ingressClassName);
  if (nameProblem) r.report(join(path, 'ingressClassName'), nameProblem);
  let ingressAnnotations: Record<string, string> | undefined;
  if (m.ingressAnnotations !== undefined && m.ingressAnnotations !== null) {
    const at = join(path, 'ingressAnnotations');
    const raw = m.ingressAnnotations;
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      r.report(at, 'must be a mapping of annotation names to strings');
    } else {
      ingressAnnotations = {};
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') r.report(join(at, k), 'must be a string');
        else ingressAnnotations[k] = v;
      }
    }
  }
  return dropUndefined({
    address,
    podIP,
    ingress: r.boolean(m, 'ingress', path),
    ingressClassName,
    ingressAnnotations,
  });
}

function readSelector(r: Reader, value: unknown, path: string): SolverSelector | undefined {
  if (value === undefined || value === null) return undefined;
  const m = r.mapping(value, path, ['dnsZones', 'dnsNames']);
  if (!m) return undefined;
  const dnsProblem = (name: string) => certificateDnsNameProblem(name.toLowerCase());
  return dropUndefined({
    dnsZones: r.stringList(m, 'dnsZones', path, dnsProblem)?.map((n) => n.toLowerCase()),
    dnsNames: r.stringList(m, 'dnsNames', path, dnsProblem)?.map((n) => n.toLowerCase()),
  });
}

function readRfc2136(r: Reader, value: unknown, path: string): Rfc2136Config | undefined {
  const m = r.mapping(value, path, ['nameserver', 'tsigKeyName', 'tsigAlgorithm', 'tsigSecret']);
  if (!m) return undefined;
  const raw = r.string(m, 'nameserver', path, true);
  const nameserver = raw === undefined ? undefined : normalizeHostPort(raw);
  if (raw !== undefined && nameserver === undefined) {
    r.report(join(path, 'nameserver'), `"${raw}" must be host:port, e.g. 10.0.0.53:53 or [fd00::53]:53`);
  }
  const keyName = r.string(m, 'tsigKeyName', path);
  const algorithm = r.string(m, 'tsigAlgorithm', path) ?? CONFIG_DEFAULTS.tsigAlgorithm;
  if (algorithm !== 'hmac-sha256' && algorithm !== 'hmac-sha512') {
    r.report(join(path, 'tsigAlgorithm'), `"${algorithm}" must be hmac-sha256 or hmac-sha512`);
  }
  const secret = m.tsigSecret === undefined ? undefined : readSecretKeyRef(r, m, 'tsigSecret', path);
  if ((keyName === undefined) !== (m.tsigSecret === undefined)) {
    r.report(
      join(path, keyName === undefined ? 'tsigKeyName' : 'tsigSecret'),
      'required when the other TSIG setting is given (set tsigKeyName and tsigSecret together)',
    );
  }
  if (nameserver === undefined) return undefined;
  if (keyName !== undefined && secret && (algorithm === 'hmac-sha256' || algorithm === 'hmac-sha512')) {
    return { nameserver, tsig: { keyName, algorithm, secret } };
  }
  return { nameserver };
}

/** `host:port` with the port defaulting to 53; undefined when malformed. */
function normalizeHostPort(text: string): string | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(text);
  if (!match) return undefined;
  const host = match[1] ?? '';
  if (host.startsWith('[') && isIP(host.slice(1, -1)) !== 6) return undefined;
  const port = match[2] === undefined ? CONFIG_DEFAULTS.rfc2136Port : Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return `${host}:${port}`;
}

export function readSecretRef(r: Reader, parent: Mapping, key: string, path: string): SecretRef | undefined {
  const at = join(path, key);
  if (parent[key] === undefined || parent[key] === null) {
    r.report(at, 'required');
    return undefined;
  }
  const m = r.mapping(parent[key], at, ['namespace', 'name']);
  return m && readRefFields(r, m, at, false);
}

function readSecretKeyRef(r: Reader, parent: Mapping, key: string, path: string): SecretKeyRef | undefined {
  const at = join(path, key);
  if (parent[key] === undefined || parent[key] === null) {
    r.report(at, 'required');
    return undefined;
  }
  const m = r.mapping(parent[key], at, ['namespace', 'name', 'key']);
  const ref = m && readRefFields(r, m, at, true);
  return ref && 'key' in ref ? ref : undefined;
}

function readRefFields(
  r: Reader,
  m: Mapping,
  at: string,
  withKey: boolean,
): SecretRef | SecretKeyRef | undefined {
  const namespace = r.string(m, 'namespace', at, true);
  const name = r.string(m, 'name', at, true);
  const key = withKey ? r.string(m, 'key', at, true) : undefined;
  const problems: [string, string | undefined][] = [
    ['namespace', namespace === undefined ? undefined : namespaceProblem(namespace)],
    ['name', name === undefined ? undefined : objectNameProblem(name)],
    ['key', key === undefined ? undefined : secretDataKeyProblem(key)],
  ];
  let ok = namespace !== undefined && name !== undefined && (!withKey || key !== undefined);
  for (const [field, problem] of problems) {
    if (problem) {
      r.report(join(at, field), problem);
      ok = false;
    }
  }
  if (!ok || namespace === undefined || name === undefined) return undefined;
  return key === undefined ? { namespace, name } : { namespace, name, key };
}

/** Removes keys whose value is undefined, so loaded objects compare and print cleanly. */
export function dropUndefined<T extends object>(value: T): T;
export function dropUndefined<T extends object>(value: T | undefined): T | undefined;
export function dropUndefined<T extends object>(value: T | undefined): T | undefined {
  if (value === undefined) return undefined;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (record[key] === undefined) delete record[key];
  }
  return value;
}
