/**
 * What `cert-rotator ca status ISSUER` shows: a CA rollover's state read from the cluster, and
 * how far its current phase has come (reads only; the same rules the reconciler acts on).
 */
import { X509Certificate } from 'node:crypto';
import type { Config, IssuerConfig } from '../config/schema.ts';
import { decodeData } from '../controller/secret-body.ts';
import { trustSet } from '../issuers/ca.ts';
import type { KubeClients } from '../kube/client.ts';
import { CaSecretKey, SecretKey } from '../names.ts';
import { issuedSecrets, listWorkloads, signedBy } from './cluster.ts';
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
  for (const w of s.workloads.pending) lines.push(`  pending:     ${w}`);
  for (const w of s.workloads.unconfirmed) lines.push(`  unconfirmed: ${w} (not restarted by cert-rotator)`);
  return `${lines.join('\n')}\n`;
}
