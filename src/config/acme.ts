/** Reading the `acme` block of an issuer: server, account, external account binding, solvers. */
import { isIP } from 'node:net';
import { parseListenAddress } from '../listen-address.ts';
import { dropUndefined } from './drop-undefined.ts';
import { join, type Reader } from './reader.ts';
import type {
  AcmeIssuerConfig,
  AcmeSolverConfig,
  Http01SolverConfig,
  Rfc2136Config,
  SolverSelector,
} from './schema.ts';
import { CONFIG_DEFAULTS } from './schema.ts';
import { readSecretKeyRef, readSecretRef } from './secret-refs.ts';
import { certificateDnsNameProblem, objectNameProblem } from './syntax.ts';

export function readAcme(r: Reader, value: unknown, path: string): AcmeIssuerConfig | undefined {
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
  if (address !== undefined && parseListenAddress(address) === undefined) {
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

/**
 * Key algorithms ACME CAs issue for (RFC 8555 leaves it to the CA; Let's Encrypt, Pebble and the
 * public ACME CAs take RSA and ECDSA P-256/P-384, none takes Ed25519 for TLS certificates).
 * A Secret that would send another key to an acme issuer is refused at once, before any order,
 * instead of failing at finalize after the challenges were solved.
 */
const ACME_KEY_ALGORITHMS: ReadonlySet<string> = new Set([
  'ecdsa-p256',
  'ecdsa-p384',
  'rsa-2048',
  'rsa-3072',
  'rsa-4096',
]);

/**
 * Why `issuer` cannot issue for a key of `algorithm` (undefined = it can). `source` says where the
 * algorithm came from, for the message: the annotation, the current key, or the config default.
 */
export function issuerKeyAlgorithmProblem(
  issuer: { kind: string; name: string },
  algorithm: string,
  source: 'annotation' | 'current key' | 'defaults.keyAlgorithm',
): string | undefined {
  if (issuer.kind !== 'acme' || ACME_KEY_ALGORITHMS.has(algorithm)) return undefined;
  const from = source === 'annotation' ? '' : ` (from the ${source})`;
  return `${algorithm}${from} is not a key algorithm ACME issuer "${issuer.name}" can order a certificate for; use one of ${[...ACME_KEY_ALGORITHMS].join(', ')}`;
}
