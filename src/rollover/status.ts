/**
 * What `cert-rotator ca status ISSUER` shows: a CA rollover's state read from the cluster, and
 * how far its current phase has come (reads only; the same rules the reconciler acts on).
 */
import { X509Certificate } from 'node:crypto';
import type { Config, IssuerConfig } from '../config/schema.ts';
import { decodeData } from '../controller/secret-body.ts';
import { trustSet } from '../issuers/ca.ts';
import type { KubeClients } from '../kube/client.ts';
import { CaSecretKey, RolloverPhase, SecretKey } from '../names.ts';
import { windowsDecision } from '../policy/windows.ts';
import { issuedSecrets, listWorkloads, signedBy } from './cluster.ts';
import { describeUntil, type IssuedRecord, outstandingLeaves } from './signed-leaves.ts';
import { readState } from './state.ts';
import { propagation } from './workloads.ts';

export interface CaDescription {
  subject: string;
  notAfter: string;
}

export interface RolloverStatus {
  issuer: string;
  caSecret: string;
  active: CaDescription | undefined;
  phase: string;
  phaseSince?: string;
  started?: string;
  paused: boolean;
  /** The Secret named by `next-ca` (before the switch). */
  staged?: string;
  next?: CaDescription;
  previous?: CaDescription;
  secrets: number;
  /** Secrets whose ca.crt holds the issuer's current trust set. */
  trustCurrent: number;
  /** Secrets whose leaf the active CA signed. */
  fromActiveCa: number;
  workloads: { rolled: string[]; pending: string[]; unconfirmed: string[] };
  /** With `reissue.windows`: whether Reissue may ask for renewals now, else when it may next. */
  reissueWindow?: { open: true; until: string } | { open: false; nextStart: string | null };
  /**
   * Reissue and Retire: leaves the signers (CSR, Pod Certificates) issued with the previous CA
   * that are still valid, per signer; Retire keeps the old CA until the latest `until`.
   */
  signedLeaves?: Array<{ signer: string; record: string; until: string | null }>;
}

function describeCa(pem: string): CaDescription | undefined {
  try {
    const c = new X509Certificate(pem);
    return { subject: c.subject.replace(/\n/g, ', '), notAfter: new Date(c.validTo).toISOString() };
  } catch {
    return undefined;
  }
}

export async function rolloverStatus(
  clients: Pick<KubeClients, 'core' | 'apps'>,
  config: Config,
  issuer: IssuerConfig & { kind: 'ca' },
  records: readonly IssuedRecord[] = [],
  now = Date.now(),
): Promise<RolloverStatus> {
  const { namespace, name } = issuer.ca.secret;
  const ca = await clients.core.readNamespacedSecret({ namespace, name });
  const state = readState(ca.metadata?.annotations);
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(ca.data ?? {})) data[k] = decodeData(v);
  const activePem = data[SecretKey.certificate] ?? '';
  const trust = trustSet(activePem, data);
  const { secrets, managed } = await issuedSecrets(clients, config, issuer.name);
  const issued = new Set(secrets.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`));
  const namespaces = new Set(secrets.map((s) => s.metadata?.namespace ?? ''));
  const report = propagation(
    await listWorkloads(clients, namespaces),
    issued,
    managed,
    config.defaults.restart,
  );
  const next = data[CaSecretKey.nextCertificate];
  const previous = data[CaSecretKey.previousCertificate];
  const windows = issuer.ca.rollover.reissueWindows;
  const window = windows.length > 0 ? windowsDecision(windows, now) : undefined;
  const late = state.phase === RolloverPhase.reissue || state.phase === RolloverPhase.retire;
  const signed = late && previous ? await outstandingLeaves(records, previous, now) : undefined;
  return {
    issuer: issuer.name,
    caSecret: `${namespace}/${name}`,
    active: describeCa(activePem),
    phase: state.phase ?? 'None',
    ...(state.since !== undefined ? { phaseSince: new Date(state.since).toISOString() } : {}),
    ...(state.started !== undefined ? { started: state.started } : {}),
    paused: state.paused,
    ...(state.next !== undefined ? { staged: `${namespace}/${state.next}` } : {}),
    ...(next ? { next: describeCa(next) } : {}),
    ...(previous ? { previous: describeCa(previous) } : {}),
    secrets: secrets.length,
    trustCurrent: secrets.filter((s) => decodeData(s.data?.[SecretKey.caCertificate]) === trust).length,
    fromActiveCa: secrets.filter((s) => signedBy(decodeData(s.data?.[SecretKey.certificate]), activePem))
      .length,
    workloads: report,
    ...(window
      ? {
          reissueWindow: window.inside
            ? { open: true as const, until: new Date(window.end).toISOString() }
            : {
                open: false as const,
                nextStart: window.nextStart === null ? null : new Date(window.nextStart).toISOString(),
              },
        }
      : {}),
    ...(signed
      ? {
          signedLeaves: signed.map((o) => ({
            signer: o.signer,
            record: o.record,
            until: Number.isFinite(o.until) ? new Date(o.until).toISOString() : null,
          })),
        }
      : {}),
  };
}

/** The status as lines of text for a person. */
export function formatStatus(s: RolloverStatus): string {
  const ca = (d: CaDescription | undefined) => (d ? `${d.subject} (notAfter ${d.notAfter})` : '-');
  const lines = [
    `issuer:        ${s.issuer}`,
    `CA Secret:     ${s.caSecret}`,
    `active CA:     ${ca(s.active)}`,
    `phase:         ${s.phase}${s.phaseSince ? ` since ${s.phaseSince}` : ''}${s.paused ? ' (paused)' : ''}`,
  ];
  if (s.started) lines.push(`started:       ${s.started}`);
  if (s.staged) lines.push(`staged:        ${s.staged}`);
  if (s.next) lines.push(`next CA:       ${ca(s.next)}`);
  if (s.previous) lines.push(`previous CA:   ${ca(s.previous)}`);
  lines.push(
    `Secrets:       ${s.secrets} (ca.crt holds the current trust: ${s.trustCurrent}; leaf from the active CA: ${s.fromActiveCa})`,
    `workloads:     ${s.workloads.rolled.length} rolled out, ${s.workloads.pending.length} pending, ${s.workloads.unconfirmed.length} unconfirmed`,
  );
  if (s.reissueWindow) {
    lines.push(
      s.reissueWindow.open
        ? `reissue:       inside a maintenance window until ${s.reissueWindow.until}`
        : `reissue:       outside the maintenance windows; the next opens at ${s.reissueWindow.nextStart ?? 'never'}`,
    );
  }
  if (s.signedLeaves) {
    lines.push(
      s.signedLeaves.length === 0
        ? 'signed leaves: none of the previous CA still valid'
        : `signed leaves: of the previous CA still valid; Retire keeps it ${describeUntil(Math.max(...s.signedLeaves.map((l) => (l.until ? Date.parse(l.until) : Number.POSITIVE_INFINITY))))}`,
    );
    for (const l of s.signedLeaves)
      lines.push(
        `  ${l.signer}: ${describeUntil(l.until ? Date.parse(l.until) : Number.POSITIVE_INFINITY)} (ConfigMap ${l.record})`,
      );
  }
  for (const w of s.workloads.pending) lines.push(`  pending:     ${w}`);
  for (const w of s.workloads.unconfirmed) lines.push(`  unconfirmed: ${w} (not restarted by cert-rotator)`);
  return `${lines.join('\n')}\n`;
}
