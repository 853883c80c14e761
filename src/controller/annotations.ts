/**
 * Reads a Secret's `cert-rotator.io/*` annotations into a renewal policy. Annotations are
 * untrusted input: every value is checked and bounded, and every problem is reported (the
 * controller turns them into one InvalidAnnotation event and leaves the Secret untouched).
 */
import { isIP } from 'node:net';
import { parseCertificateDuration } from '../config/issuers.ts';
import { type Config, findIssuer } from '../config/schema.ts';
import { certificateDnsNameProblem, objectNameProblem } from '../config/syntax.ts';
import {
  ANNOTATION_PREFIX,
  Annotation,
  KEY_ALGORITHMS,
  RESTART_KINDS,
  type RestartKind,
  STATUS_ANNOTATION_PREFIX,
  StatusAnnotation,
} from '../names.ts';
import { canonicalIp } from '../pki/ip.ts';
import type { KeyAlgorithm } from '../pki/keys.ts';
import {
  cronProblem,
  parseDuration,
  parseRenewBefore,
  type RenewBefore,
  timezoneProblem,
  type Window,
} from '../policy/renewal.ts';
import type { RestartPolicy } from '../policy/restart.ts';

export type { RestartPolicy } from '../policy/restart.ts';

/** Longest annotation value read, in bytes. */
export const MAX_ANNOTATION_BYTES = 4096;
/** Most entries in one list annotation (dns-names, ip-addresses, uris, restart). */
export const MAX_LIST_ENTRIES = 100;
/** X.509's upper bound for a common name. */
const MAX_COMMON_NAME = 64;
const DEFAULT_WINDOW_DURATION = '1h';
const MAX_WINDOW_DURATION = 31 * 24 * 3600 * 1000;
/** Longest `ca-path-length`: deeper CA hierarchies than this are not something to automate. */
export const MAX_CA_PATH_LENGTH = 8;

export interface IdentityOverride {
  commonName?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  uris?: string[];
}

export interface SecretPolicy {
  /** false: the Secret is only monitored, never written. */
  enabled: boolean;
  /** Issuer name; '' only for a Secret that is not enabled and has no issuer to fall back on. */
  issuer: string;
  renewBefore: RenewBefore;
  /** Requested lifetime: annotation, else config defaults.duration, else the issuer's default. */
  durationMs?: number;
  /** Identity fields set by annotation; the rest is copied from the current certificate. */
  identityOverride: IdentityOverride;
  /** From the annotation only; absent means "same as the current key". */
  keyAlgorithm?: KeyAlgorithm;
  /** For a Secret with no usable current key and no annotation: config defaults.keyAlgorithm. */
  fallbackKeyAlgorithm: KeyAlgorithm;
  rotateKey: boolean;
  restart: RestartPolicy;
  window?: Window;
  /**
   * The `renew-requested-at` token when it differs from the one already handled
   * (`status.cert-rotator.io/renew-request-handled`): the Secret is due now, once.
   */
  renewRequest?: string;
  /**
   * `is-ca: "true"`: the Secret holds a CA certificate (issuers with `allowCA` only), with this
   * path length (undefined: none for a root, the parent's less one for an intermediate).
   */
  ca?: { pathLength?: number };
}

export interface AnnotationError {
  /** Full annotation key, e.g. `cert-rotator.io/dns-names`. */
  annotation: string;
  message: string;
}

export type SecretPolicyResult =
  | { ok: true; policy: SecretPolicy }
  | { ok: false; errors: AnnotationError[] };

const INPUT_KEYS = new Set<string>(Object.values(Annotation));
const STATUS_KEYS = new Set<string>(Object.values(StatusAnnotation));

export function parseSecretPolicy(
  annotations: Record<string, string> | undefined,
  config: Pick<Config, 'defaults' | 'issuers'>,
): SecretPolicyResult {
  const errors: AnnotationError[] = [];
  const fail = (annotation: string, message: string): undefined => {
    errors.push({ annotation, message });
    return undefined;
  };
  const all = annotations ?? {};

  for (const key of Object.keys(all)) {
    // What the controller writes is never input, whichever version wrote it: the status keys it
    // knows, and anything under `status.cert-rotator.io/` (a newer version's status annotation).
    if (key.startsWith(STATUS_ANNOTATION_PREFIX) || STATUS_KEYS.has(key)) continue;
    if (key.startsWith(ANNOTATION_PREFIX) && !INPUT_KEYS.has(key)) {
      fail(
        key,
        `unknown annotation; known: ${[...INPUT_KEYS].map((k) => k.slice(ANNOTATION_PREFIX.length)).join(', ')}`,
      );
    }
  }
  /** The trimmed value, or undefined when absent or too large (reported). */
  const read = (key: string): string | undefined => {
    const value = all[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') return fail(key, 'must be a string');
    if (Buffer.byteLength(value, 'utf8') > MAX_ANNOTATION_BYTES) {
      return fail(key, `is longer than ${MAX_ANNOTATION_BYTES} bytes`);
    }
    return value.trim();
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const value = read(key);
    if (value === undefined) return fallback;
    if (value === 'true') return true;
    if (value === 'false') return false;
    fail(key, `"${clip(value)}" must be "true" or "false"`);
    return fallback;
  };
  const list = (key: string): string[] | undefined => {
    const value = read(key);
    if (value === undefined) return undefined;
    const items = value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
    if (items.length === 0) return fail(key, 'is empty; remove the annotation or list at least one entry');
    if (items.length > MAX_LIST_ENTRIES)
      return fail(key, `has ${items.length} entries; the maximum is ${MAX_LIST_ENTRIES}`);
    return items;
  };
  /** Checks each entry; reports all bad ones in one message; returns the canonical, de-duplicated list. */
  const checkedList = (key: string, canonical: (item: string) => string | { problem: string }) => {
    const items = list(key);
    if (items === undefined) return undefined;
    const out: string[] = [];
    const problems: string[] = [];
    for (const item of items) {
      const result = canonical(item);
      if (typeof result === 'string') out.push(result);
      else problems.push(result.problem);
    }
    if (problems.length > 0) return fail(key, problems.join('; '));
    return [...new Set(out)];
  };

  const enabled = bool(Annotation.enabled, false);

  // Issuer
  let issuer = read(Annotation.issuer);
  if (issuer !== undefined && !findIssuer(config, issuer)) {
    const known = config.issuers.map((i) => i.name).join(', ') || 'none configured';
    issuer = fail(Annotation.issuer, `unknown issuer "${clip(issuer)}" (issuers: ${known})`);
  } else if (issuer === undefined && !(Annotation.issuer in all)) {
    issuer = config.defaults.issuer;
    if (issuer === undefined && enabled) {
      fail(Annotation.issuer, 'required: the config sets no defaults.issuer');
    }
  }
  const issuerConfig = issuer === undefined ? undefined : findIssuer(config, issuer);

  // Renewal timing
  const renewBeforeText = read(Annotation.renewBefore);
  const renewBefore =
    renewBeforeText === undefined
      ? config.defaults.renewBefore
      : attempt(
          () => parseRenewBefore(renewBeforeText),
          (m) => fail(Annotation.renewBefore, m),
        );

  const durationText = read(Annotation.duration);
  let durationMs: number | undefined;
  if (durationText !== undefined) {
    if (issuerConfig?.kind === 'acme') {
      fail(
        Annotation.duration,
        `issuer "${issuerConfig.name}" is an ACME issuer; the ACME server chooses the lifetime`,
      );
    } else {
      durationMs = attempt(
        () => parseCertificateDuration(durationText),
        (m) => fail(Annotation.duration, m),
      );
    }
  } else if (issuerConfig?.kind !== 'acme') {
    durationMs = config.defaults.durationMs ?? issuerConfig?.durationMs;
  }

  // Identity
  const identityOverride: IdentityOverride = {};
  const commonName = read(Annotation.commonName);
  if (commonName !== undefined) {
    if (commonName === '') fail(Annotation.commonName, 'is empty');
    else if ([...commonName].length > MAX_COMMON_NAME) {
      fail(Annotation.commonName, `is longer than ${MAX_COMMON_NAME} characters`);
    } else if (/\p{Cc}/u.test(commonName)) fail(Annotation.commonName, 'contains control characters');
    else identityOverride.commonName = commonName;
  }
  const dnsNames = checkedList(Annotation.dnsNames, (item) => {
    const name = item.toLowerCase();
    const problem = certificateDnsNameProblem(name);
    return problem === undefined ? name : { problem };
  });
  if (dnsNames) identityOverride.dnsNames = dnsNames;
  const ipAddresses = checkedList(Annotation.ipAddresses, (item) => {
    const ip = isIP(item) === 0 ? undefined : canonicalIp(item);
    return ip ?? { problem: `"${clip(item)}" is not an IPv4 or IPv6 address` };
  });
  if (ipAddresses) identityOverride.ipAddresses = ipAddresses;
  const uris = checkedList(Annotation.uris, uriOrProblem);
  if (uris) identityOverride.uris = uris;

  // Key
  const keyText = read(Annotation.keyAlgorithm);
  const keyAlgorithm =
    keyText === undefined
      ? undefined
      : (KEY_ALGORITHMS.find((a) => a === keyText) ??
        fail(Annotation.keyAlgorithm, `"${clip(keyText)}" must be one of ${KEY_ALGORITHMS.join(', ')}`));
  const rotateKey = bool(Annotation.rotateKey, true);

  // Restart
  const restart = readRestart(read(Annotation.restart), config.defaults.restart, (m) =>
    fail(Annotation.restart, m),
  );

  // Window
  const window = readWindow(
    read(Annotation.window),
    read(Annotation.windowDuration),
    read(Annotation.windowTimezone),
    fail,
  );

  // A CA certificate
  const isCa = bool(Annotation.isCa, false);
  const pathText = read(Annotation.caPathLength);
  let pathLength: number | undefined;
  if (pathText !== undefined) {
    if (!isCa) fail(Annotation.caPathLength, `only with ${Annotation.isCa}: "true"`);
    else if (!/^\d{1,2}$/.test(pathText) || Number(pathText) > MAX_CA_PATH_LENGTH) {
      fail(Annotation.caPathLength, `"${clip(pathText)}" must be an integer from 0 to ${MAX_CA_PATH_LENGTH}`);
    } else pathLength = Number(pathText);
  }
  if (isCa && !rotateKey) {
    fail(Annotation.rotateKey, `a CA gets a new key at every renewal; remove "false" or ${Annotation.isCa}`);
  }

  // Renewal on request: an opaque token, acted on once per new value.
  const requested = read(Annotation.renewRequestedAt);
  const renewRequest =
    requested === undefined || requested === '' || requested === all[StatusAnnotation.renewRequestHandled]
      ? undefined
      : requested;

  if (errors.length > 0) return { ok: false, errors };
  const policy: SecretPolicy = {
    enabled,
    issuer: issuer ?? '',
    renewBefore: renewBefore ?? config.defaults.renewBefore,
    identityOverride,
    fallbackKeyAlgorithm: config.defaults.keyAlgorithm,
    rotateKey,
    restart: restart ?? { mode: config.defaults.restart },
  };
  if (durationMs !== undefined) policy.durationMs = durationMs;
  if (keyAlgorithm !== undefined) policy.keyAlgorithm = keyAlgorithm;
  if (window !== undefined) policy.window = window;
  if (renewRequest !== undefined) policy.renewRequest = renewRequest;
  if (isCa) policy.ca = pathLength === undefined ? {} : { pathLength };
  return { ok: true, policy };
}

function readRestart(
  value: string | undefined,
  fallback: 'auto' | 'none',
  fail: (message: string) => undefined,
): RestartPolicy | undefined {
  if (value === undefined) return { mode: fallback };
  if (value === 'auto' || value === 'none') return { mode: value };
  const entries = value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  const usage = 'use auto, none, or a list such as deployment/web,statefulset/db,daemonset/agent';
  if (entries.length === 0) return fail(`is empty; ${usage}`);
  if (entries.length > MAX_LIST_ENTRIES)
    return fail(`has ${entries.length} entries; the maximum is ${MAX_LIST_ENTRIES}`);
  const targets: { kind: RestartKind; name: string }[] = [];
  const problems: string[] = [];
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const kindText = entry.slice(0, Math.max(0, slash)).toLowerCase();
    const name = entry.slice(slash + 1);
    const kind = RESTART_KINDS.find((k) => k === kindText);
    if (slash < 0 || !kind) {
      problems.push(`"${clip(entry)}" is not kind/name with kind ${RESTART_KINDS.join(', ')}`);
    } else if (name.includes('/')) {
      problems.push(
        `"${clip(entry)}" names another namespace; only workloads in the Secret's own namespace can be restarted`,
      );
    } else if (objectNameProblem(name)) {
      problems.push(`"${clip(entry)}": ${objectNameProblem(name)}`);
    } else if (!targets.some((t) => t.kind === kind && t.name === name)) {
      targets.push({ kind, name });
    }
  }
  if (problems.length > 0) return fail(`${problems.join('; ')}; ${usage}`);
  return { mode: 'list', targets };
}

function readWindow(
  cron: string | undefined,
  durationText: string | undefined,
  timezone: string | undefined,
  fail: (annotation: string, message: string) => undefined,
): Window | undefined {
  if (cron === undefined) {
    if (durationText !== undefined)
      fail(Annotation.windowDuration, `has no effect without ${Annotation.window}`);
    if (timezone !== undefined) fail(Annotation.windowTimezone, `has no effect without ${Annotation.window}`);
    return undefined;
  }
  const cronIssue = cronProblem(cron);
  if (cronIssue) fail(Annotation.window, cronIssue);
  const zoneIssue = timezone === undefined ? undefined : timezoneProblem(timezone);
  if (zoneIssue) fail(Annotation.windowTimezone, zoneIssue);
  const durationMs = attempt(
    () => parseDuration(durationText ?? DEFAULT_WINDOW_DURATION, { maxMs: MAX_WINDOW_DURATION }),
    (m) => fail(Annotation.windowDuration, m),
  );
  if (cronIssue || zoneIssue || durationMs === undefined) return undefined;
  return timezone === undefined ? { cron, durationMs } : { cron, durationMs, timezone };
}

const URI_SCHEME = /^[a-z][a-z0-9+.-]*:/i;

function uriOrProblem(item: string): string | { problem: string } {
  if (!URI_SCHEME.test(item))
    return { problem: `"${clip(item)}" is not a URI with a scheme (e.g. spiffe://…)` };
  if (/[\s\p{Cc}]/u.test(item))
    return { problem: `"${clip(item)}" contains whitespace or control characters` };
  try {
    new URL(item);
  } catch {
    return { problem: `"${clip(item)}" is not a valid URI` };
  }
  return item;
}

function attempt<T>(parse: () => T, fail: (message: string) => undefined): T | undefined {
  try {
    return parse();
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
