import { formatDuration } from '../policy/renewal.ts';
import { DEMO, type EventView, type Snapshot } from './demo-scenario.ts';

/** `08:40:01Z`: the time of day in UTC, to the second; with the date when not within 12 hours. */
export function clockTime(ms: number, now = Date.now()): string {
  const iso = new Date(ms).toISOString();
  return Math.abs(ms - now) < 12 * 3_600_000
    ? `${iso.slice(11, 19)}Z`
    : `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z`;
}

/** Whole seconds, largest units first ("1m41s"); "expired 5s ago" style is the caller's. */
export function span(ms: number): string {
  return formatDuration(Math.max(0, Math.round(ms / 1000) * 1000));
}

function shortSerial(serial: string): string {
  return serial.length > 16 ? `${serial.slice(0, 16)}…` : serial;
}

function timeLeft(notAfter: number, now: number): string {
  return notAfter > now ? `${span(notAfter - now)} left` : `expired ${span(now - notAfter)} ago`;
}

function renewalText(renewalTime: number | undefined, now: number): string {
  if (renewalTime === undefined) return 'renewal not planned yet';
  return renewalTime > now
    ? `renewal at ${clockTime(renewalTime, now)} (in ${span(renewalTime - now)})`
    : `renewal due since ${clockTime(renewalTime, now)}`;
}

export interface Progress {
  firstSerial: string;
  /** The first ReplicaSet of the Deployment, made before any renewal. */
  firstReplicaSets: ReadonlySet<string>;
  /** The cluster has a node: the new ReplicaSet's pods run (and replace the first ones). */
  node?: boolean;
}

/** The new ReplicaSet that cert-rotator's restart produced, once it exists. */
export function rolledReplicaSet(s: Snapshot, p: Progress): string | undefined {
  return s.replicaSets.find((rs) => rs.certificateHash !== undefined && !p.firstReplicaSets.has(rs.name))
    ?.name;
}

export function renewed(s: Snapshot, p: Progress): boolean {
  return s.cert !== undefined && s.cert.serial !== p.firstSerial;
}

/** The lines of the in-place view on a terminal, one snapshot. */
export function screen(s: Snapshot, p: Progress, now: number, header: string[]): string[] {
  const lines = [...header, ''];
  lines.push(
    `Secret ${DEMO.namespace}/${DEMO.secret}  (issuer ${DEMO.issuer}, renew-before ${DEMO.renewBefore})`,
  );
  if (s.cert) {
    const c = s.cert;
    lines.push(`  serial    ${shortSerial(c.serial)}${c.serial === p.firstSerial ? '' : '   (renewed)'}`);
    lines.push(`  notAfter  ${clockTime(c.notAfter, now)}   ${timeLeft(c.notAfter, now)}`);
    lines.push(`  state     ${c.state}   revision ${c.revision}   ${renewalText(c.renewalTime, now)}`);
    if (c.lastError) lines.push(`  error     ${c.lastError}`);
  } else lines.push(`  certificate unreadable: ${s.certProblem ?? 'not read yet'}`);
  lines.push('', `Deployment ${DEMO.namespace}/${DEMO.deployment}`);
  const rolled = rolledReplicaSet(s, p);
  for (const rs of s.replicaSets) {
    const note =
      rs.name === rolled
        ? p.node
          ? '  ← new: its pods replace the first ones'
          : '  ← new: rollout done (no nodes here, so no pod runs; the new ReplicaSet is the rollout)'
        : '';
    lines.push(`  ReplicaSet ${rs.name}  created ${clockTime(rs.created, now)}${note}`);
  }
  if (s.replicaSets.length === 0) lines.push('  (no ReplicaSet yet)');
  lines.push('', 'Events');
  for (const e of s.events.slice(-8)) lines.push(`  ${eventLine(e, now)}`);
  if (s.events.length === 0) lines.push('  (none yet)');
  if (!renewed(s, p) && s.cert?.renewalTime !== undefined && s.cert.renewalTime > now) {
    lines.push('', `Waiting for the renewal time (notAfter − renew-before ${DEMO.renewBefore}).`);
  }
  return lines;
}

export function eventLine(e: EventView, now = Date.now()): string {
  return `${clockTime(e.time, now)} ${e.type.padEnd(7)} ${e.reason.padEnd(17)} ${e.object}: ${e.message}`;
}

/**
 * What changed between two snapshots, as plain lines (no timestamps: the caller adds them). Used
 * when stdout is not a terminal, and after the summary with --keep.
 */
export function changes(prev: Snapshot | undefined, s: Snapshot, p: Progress, now: number): string[] {
  const out: string[] = [];
  const c = s.cert;
  const pc = prev?.cert;
  if (c && (!pc || pc.serial !== c.serial || pc.state !== c.state || pc.revision !== c.revision)) {
    out.push(
      `certificate ${DEMO.namespace}/${DEMO.secret}: serial ${shortSerial(c.serial)}, notAfter ${clockTime(c.notAfter, now)} (${timeLeft(c.notAfter, now)}), state ${c.state}, revision ${c.revision}, ${renewalText(c.renewalTime, now)}${c.serial !== p.firstSerial ? ' — renewed' : ''}`,
    );
  }
  if (c?.lastError && c.lastError !== pc?.lastError) out.push(`certificate error: ${c.lastError}`);
  if (!c && s.certProblem && s.certProblem !== prev?.certProblem)
    out.push(`certificate unreadable: ${s.certProblem}`);
  const known = new Set(prev?.replicaSets.map((rs) => rs.name) ?? []);
  const rolled = rolledReplicaSet(s, p);
  for (const rs of s.replicaSets) {
    if (known.has(rs.name)) continue;
    out.push(
      rs.name === rolled
        ? p.node
          ? `ReplicaSet ${rs.name} created by the restart: its pods replace the first ones`
          : `ReplicaSet ${rs.name} created by the restart: rollout done (the demo cluster has no nodes, so no pod runs; the new ReplicaSet is what a rollout produces)`
        : `ReplicaSet ${rs.name} created`,
    );
  }
  const seen = new Set(prev?.events.map((e) => e.uid) ?? []);
  for (const e of s.events) if (!seen.has(e.uid)) out.push(`event ${eventLine(e, now)}`);
  return out;
}

/** Where the demo writes: process.stdout, or a test's stand-in. */
export interface Screen {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/**
 * Output of the demo. On a terminal a block is redrawn in place (cursor up over the last block,
 * clear to the end of the screen, draw; lines cut to the terminal's width so none wraps);
 * timestamped lines scroll above it.
 */
export class Terminal {
  readonly tty: boolean;
  private readonly out: Screen;
  private drawn = 0;
  constructor(out: Screen) {
    this.out = out;
    this.tty = out.isTTY === true;
  }
  /** A timestamped line (scrolls). */
  line(text: string): void {
    this.drawn = 0;
    this.out.write(`${clockTime(Date.now())} ${text}\n`);
  }
  /** Replaces the block drawn last (terminal only). */
  redraw(lines: string[]): void {
    const width = Math.max(40, this.out.columns || Number(process.env.COLUMNS) || 120);
    const fitted = lines.map((l) => (l.length > width - 1 ? `${l.slice(0, width - 2)}…` : l));
    const up = this.drawn > 0 ? `\x1b[${this.drawn}F\x1b[J` : '';
    this.out.write(`${up}${fitted.join('\n')}\n`);
    this.drawn = fitted.length;
  }
}
