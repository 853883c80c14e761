/** Reading and checking the `issuers` list of the configuration file. */

import { cidrProblem } from '../policy/identity.ts';
import { parseDuration } from '../policy/renewal.ts';
import { cronProblem, nextWindowStart, timezoneProblem, type Window } from '../policy/windows.ts';
import { readAcme } from './acme.ts';
import { readApprove, readKubernetesCsr, readSigner } from './csr.ts';
import { dropUndefined } from './drop-undefined.ts';
import { readPodCertificates } from './pod-certificates.ts';
import { join, type Mapping, type Reader } from './reader.ts';
import type { CARolloverConfig, IssuerConfig, IssuerKind } from './schema.ts';
import { CONFIG_DEFAULTS } from './schema.ts';
import { readSecretRef } from './secret-refs.ts';
import { globProblem, isDnsLabel } from './syntax.ts';

const ISSUER_KINDS: readonly IssuerKind[] = ['ca', 'selfSigned', 'acme', 'kubernetesCSR'];
const ISSUER_KEYS = [
  'name',
  ...ISSUER_KINDS,
  'duration',
  'allowedNamespaces',
  'allowedDomains',
  'allowedIPs',
  'allowedURIs',
  'allowedCommonNames',
  'allowedOrganizations',
  'signer',
  'approve',
  'podCertificates',
  'fallback',
  'fallbackAfter',
  'allowCA',
];

/** A URI glob: printable ASCII that starts with a scheme (e.g. spiffe:// or https://). */
function uriGlobProblem(pattern: string): string | undefined {
  if (!/^[\x21-\x7e]{1,2048}$/.test(pattern)) return `"${pattern}" must be printable ASCII without spaces`;
  if (!/^[a-z][a-z0-9+.-]*:/.test(pattern))
    return `"${pattern}" must start with a scheme such as spiffe:// or https://`;
  return undefined;
}

/** A common-name or organization glob: 1 to 64 printable characters. */
function subjectGlobProblem(pattern: string): string | undefined {
  if (pattern.length > 64 || !/^[^\p{Cc}]+$/u.test(pattern))
    return `"${pattern}" must be 1 to 64 printable characters`;
  return undefined;
}

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
  // A PodCertificateRequest names one signer: two issuers answering it would both sign.
  const podSigners = new Map<string, string>();
  for (const issuer of issuers) {
    if (issuer.kind !== 'ca' || !issuer.podCertificates) continue;
    const other = podSigners.get(issuer.podCertificates.signerName);
    if (other !== undefined) {
      r.report(
        `issuers[${value.findIndex((i: unknown) => rawName(i) === issuer.name)}].podCertificates.signerName`,
        `"${issuer.podCertificates.signerName}" is also the pod certificate signer of issuer "${other}"`,
      );
    } else podSigners.set(issuer.podCertificates.signerName, issuer.name);
  }
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
    allowedIPs: r.stringList(m, 'allowedIPs', path, cidrProblem),
    allowedURIs: r.stringList(m, 'allowedURIs', path, uriGlobProblem),
    allowedCommonNames: r.stringList(m, 'allowedCommonNames', path, subjectGlobProblem),
    allowedOrganizations: r.stringList(m, 'allowedOrganizations', path, subjectGlobProblem),
    fallback: r.string(m, 'fallback', path),
    fallbackAfter: r.integer(m, 'fallbackAfter', path, 1, 100),
    durationMs: r.parsed(m, 'duration', path, parseCertificateDuration),
    // Only `true` is kept: an issuer issues CA certificates only when the config says so.
    allowCA: r.boolean(m, 'allowCA', path) === true ? true : undefined,
  };
  if (common.allowCA && kind !== 'selfSigned' && kind !== 'ca' && kind !== undefined) {
    r.report(
      join(path, 'allowCA'),
      `a ${kind} issuer cannot issue CA certificates; only selfSigned (a root) and ca (an intermediate) issuers can`,
    );
  }

  let issuer: IssuerConfig | undefined;
  switch (kind) {
    case 'ca': {
      const ca = r.optionalMapping(m.ca, join(path, 'ca'), ['secret', 'rollover']);
      const secret = ca && readSecretRef(r, ca, 'secret', join(path, 'ca'));
      const rollover = readRollover(r, ca?.rollover, join(join(path, 'ca'), 'rollover'));
      const signer =
        m.signer === undefined ? undefined : readSigner(r, m.signer, join(path, 'signer'), name ?? '');
      const approve = m.approve === undefined ? undefined : readApprove(r, m.approve, join(path, 'approve'));
      if (m.approve !== undefined && m.signer === undefined) {
        r.report(
          join(path, 'approve'),
          "needs signer: the approver approves requests for this issuer's signer",
        );
      }
      const podCertificates =
        m.podCertificates === undefined
          ? undefined
          : readPodCertificates(r, m.podCertificates, join(path, 'podCertificates'), name ?? '');
      if (podCertificates && signer?.signerName === podCertificates.signerName && m.signer !== undefined) {
        r.report(
          join(join(path, 'podCertificates'), 'signerName'),
          `"${podCertificates.signerName}" is also signer.signerName: a CSR signer and a pod certificate signer need names of their own`,
        );
      }
      if (secret)
        issuer = dropUndefined({
          ...common,
          kind,
          ca: { secret, rollover },
          signer,
          approve,
          podCertificates,
        });
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
      const csr = readKubernetesCsr(r, m.kubernetesCSR, at, common);
      if (csr?.expirationSeconds !== undefined && common.durationMs !== undefined) {
        r.report(join(path, 'duration'), 'set either duration or kubernetesCSR.expirationSeconds, not both');
      }
      if (csr) {
        issuer = {
          ...common,
          durationMs:
            common.durationMs ??
            (csr.expirationSeconds === undefined ? undefined : csr.expirationSeconds * 1000),
          kind,
          kubernetesCSR: csr,
        };
      }
      break;
    }
    case undefined:
      break;
  }
  if (kind !== 'ca') {
    for (const key of ['signer', 'approve'] as const) {
      if (m[key] !== undefined) r.report(join(path, key), 'only a ca issuer can sign CSRs');
    }
    if (m.podCertificates !== undefined)
      r.report(join(path, 'podCertificates'), 'only a ca issuer can sign PodCertificateRequests');
  }
  if (issuer && (issuer.kind === 'ca' || issuer.kind === 'selfSigned')) {
    issuer.durationMs ??= parseDuration(CONFIG_DEFAULTS.issuerDuration);
  }
  return name === undefined ? undefined : dropUndefined(issuer);
}

const ROLLOVER_KEYS = [
  'enabled',
  'trustPropagation',
  'maxWait',
  'onMaxWait',
  'reissue',
  'retireAfter',
  'checkInterval',
];

/** `ca.rollover`: every key optional; durations may be seconds long (tests shorten the phases). */
function readRollover(r: Reader, value: unknown, path: string): CARolloverConfig {
  const d = CONFIG_DEFAULTS;
  const m = value === undefined ? {} : (r.optionalMapping(value, path, ROLLOVER_KEYS) ?? {});
  const reissue =
    m.reissue === undefined
      ? {}
      : (r.optionalMapping(m.reissue, join(path, 'reissue'), ['maxPerMinute', 'windows']) ?? {});
  const onMaxWait = r.string(m, 'onMaxWait', path) ?? 'continue';
  if (onMaxWait !== 'continue' && onMaxWait !== 'hold') {
    r.report(join(path, 'onMaxWait'), `"${onMaxWait}" must be "continue" or "hold"`);
  }
  const enabled = m.enabled ?? true;
  if (typeof enabled !== 'boolean') r.report(join(path, 'enabled'), 'must be true or false');
  const out: CARolloverConfig = {
    enabled: enabled !== false,
    trustPropagationMs:
      r.parsed(m, 'trustPropagation', path, parseDuration) ?? parseDuration(d.rolloverTrustPropagation),
    maxWaitMs: r.parsed(m, 'maxWait', path, parseDuration) ?? parseDuration(d.rolloverMaxWait),
    onMaxWait: onMaxWait === 'hold' ? 'hold' : 'continue',
    reissuePerMinute:
      r.integer(reissue, 'maxPerMinute', join(path, 'reissue'), 1, 100_000) ?? d.rolloverReissuePerMinute,
    reissueWindows: [],
    retireAfterMs: r.parsed(m, 'retireAfter', path, parseDuration) ?? parseDuration(d.rolloverRetireAfter),
    checkIntervalMs:
      r.parsed(m, 'checkInterval', path, parseDuration) ?? parseDuration(d.rolloverCheckInterval),
  };
  out.reissueWindows = readWindows(
    r,
    reissue.windows,
    join(join(path, 'reissue'), 'windows'),
    out.checkIntervalMs,
  );
  if (out.maxWaitMs < out.trustPropagationMs) {
    r.report(join(path, 'maxWait'), 'must be at least trustPropagation');
  }
  if (out.checkIntervalMs < 1000) r.report(join(path, 'checkInterval'), 'must be at least 1s');
  return out;
}

const WINDOW_KEYS = ['cron', 'duration', 'timezone'];
const MAX_WINDOW_MS = 31 * 86_400_000;

/**
 * `ca.rollover.reissue.windows`: maintenance windows as the `window` annotations of a Secret
 * have them (a 5-field cron expression for each start, a duration, an IANA zone, default UTC).
 * A window must last at least one look (`checkInterval`) and must open at some time.
 */
function readWindows(r: Reader, value: unknown, path: string, checkIntervalMs: number): Window[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.length === 0) {
    r.report(path, 'must be a non-empty list of { cron, duration, timezone } (omit it for any time)');
    return [];
  }
  const out: Window[] = [];
  value.forEach((item: unknown, i) => {
    const at = `${path}[${i}]`;
    const m = r.mapping(item, at, WINDOW_KEYS);
    if (!m) return;
    const cron = r.string(m, 'cron', at, true);
    const cronIssue = cron === undefined ? 'missing' : cronProblem(cron);
    if (cron !== undefined && cronIssue) r.report(join(at, 'cron'), cronIssue);
    const timezone = r.string(m, 'timezone', at);
    const zoneIssue = timezone === undefined ? undefined : timezoneProblem(timezone);
    if (zoneIssue) r.report(join(at, 'timezone'), zoneIssue);
    const durationMs =
      m.duration === undefined
        ? 3_600_000
        : r.parsed(m, 'duration', at, (t) => parseDuration(t, { maxMs: MAX_WINDOW_MS }));
    if (durationMs !== undefined && durationMs < checkIntervalMs) {
      r.report(
        join(at, 'duration'),
        'must be at least checkInterval, so that a look falls inside the window',
      );
      return;
    }
    if (cron === undefined || cronIssue || zoneIssue || durationMs === undefined) return;
    const window: Window = timezone === undefined ? { cron, durationMs } : { cron, durationMs, timezone };
    if (nextWindowStart(window, Date.now()) === null) {
      r.report(join(at, 'cron'), `"${cron}" never matches a date: the window would never open`);
      return;
    }
    out.push(window);
  });
  return out;
}
