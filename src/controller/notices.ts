/**
 * Notices without Prometheus: a Warning Event on the Secret when a certificate's time left
 * crosses a threshold, with the same condition as the chart's alert rules (a managed certificate
 * only once its planned renewal is overdue). Once per threshold per certificate: what was sent is
 * kept in a NoticeStore (ConfigMaps in cert-rotator's namespace, never the user's objects), so a
 * restart or a new leader does not repeat a notice. Only the leader sends.
 */
import { type Clock, PeriodicTask } from '../clock.ts';
import { EventReason } from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import { formatDuration, formatTime } from '../ui/format.ts';
import type { EventSink } from './ports.ts';
import { secretRef } from './report.ts';

/** A certificate as the notices look at it. */
export interface NoticeCandidate {
  namespace: string;
  name: string;
  uid: string;
  managed: boolean;
  serialHex: string;
  notAfter: number;
  /** Managed only: when cert-rotator plans to renew it (a notice waits until this has passed). */
  renewalTime?: number | undefined;
}

/** What was sent for one Secret: for which certificate, and which thresholds (ms). */
export interface NoticeEntry {
  serialHex: string;
  sentMs: number[];
}

/** Where the record of sent notices lives. Keys are `namespace/name`. */
export interface NoticeStore {
  load(): Promise<Map<string, NoticeEntry>>;
  /** Writes the entries of `keys` as they are in `all` (absent from `all`: deleted). */
  save(all: ReadonlyMap<string, NoticeEntry>, keys: ReadonlySet<string>): Promise<void>;
}

export interface Notice {
  key: string;
  candidate: NoticeCandidate;
  thresholdMs: number;
}

/**
 * The notices due now, and the entries to write: for each certificate, the smallest threshold
 * its time left is below and that was not sent for this certificate yet (the larger ones it
 * skipped are marked sent with it: a certificate first seen 3 days before expiry gets the 7-day
 * notice, not the 14-day one as well). Entries of Secrets that are gone are dropped.
 */
export function noticesDue(
  candidates: Iterable<[string, NoticeCandidate]>,
  sent: ReadonlyMap<string, NoticeEntry>,
  thresholdsMs: readonly number[],
  now: number,
  graceMs = 0,
): { notices: Notice[]; entries: Map<string, NoticeEntry>; changed: Set<string> } {
  const entries = new Map<string, NoticeEntry>();
  const changed = new Set<string>();
  const notices: Notice[] = [];
  const seen = new Set<string>();
  for (const [key, c] of candidates) {
    seen.add(key);
    let entry = sent.get(key);
    if (entry && entry.serialHex !== c.serialHex) {
      entry = undefined; // a new certificate starts afresh
      changed.add(key);
    }
    const left = c.notAfter - now;
    // A managed certificate is the controller's job until its renewal is overdue by `graceMs`
    // (the alert rules' `for:`): a renewal under way at its planned time is no notice.
    const overdue = !c.managed || (c.renewalTime !== undefined && c.renewalTime + graceMs <= now);
    const crossed = overdue ? thresholdsMs.filter((t) => left <= t) : [];
    const smallest = crossed.length ? Math.min(...crossed) : undefined;
    if (smallest !== undefined && !entry?.sentMs.includes(smallest)) {
      notices.push({ key, candidate: c, thresholdMs: smallest });
      const sentMs = [...new Set([...(entry?.sentMs ?? []), ...crossed])].sort((a, b) => b - a);
      entry = { serialHex: c.serialHex, sentMs };
      changed.add(key);
    }
    if (entry) entries.set(key, entry);
  }
  for (const key of sent.keys()) if (!seen.has(key)) changed.add(key);
  return { notices, entries, changed };
}

export function noticeMessage(n: Notice, now: number): { reason: string; message: string } {
  const c = n.candidate;
  const overdue =
    c.managed && c.renewalTime !== undefined
      ? `; cert-rotator planned to renew it at ${formatTime(c.renewalTime)} and has not`
      : '; cert-rotator does not manage it (not opted in)';
  if (n.thresholdMs === 0 || c.notAfter <= now) {
    return {
      reason: EventReason.certificateExpired,
      message: `certificate (serial ${c.serialHex}) expired at ${formatTime(c.notAfter)}${overdue}`,
    };
  }
  return {
    reason: EventReason.certificateExpiring,
    message: `certificate (serial ${c.serialHex}) expires in ${formatDuration(c.notAfter - now)}, less than the ${formatDuration(n.thresholdMs)} notice threshold (not after ${formatTime(c.notAfter)})${overdue}`,
  };
}

export interface ExpiryNoticesDeps {
  thresholdsMs: readonly number[];
  checkIntervalMs: number;
  /** How long past its planned renewal a managed certificate must be before it is noticed. */
  graceMs: number;
  candidates: () => Iterable<[string, NoticeCandidate]>;
  store: NoticeStore;
  events: EventSink;
  log: Logger;
  clock: Clock;
  /** Only the leader sends; absent: always. */
  isLeader?: () => boolean;
  /** Whether the Secrets have been listed (before that, everything would look gone). */
  synced: () => boolean;
  /** Told of each notice sent (webhook notifications). */
  onNotice?: (n: Notice, reason: string, message: string) => void;
  /** Told when a Secret's notices are over: a new certificate, or the Secret is gone. */
  onCleared?: (key: string) => void;
}

/** Checks every `checkIntervalMs`; sends what is due, then records it. */
export class ExpiryNotices {
  readonly #d: ExpiryNoticesDeps;
  #sent: Map<string, NoticeEntry> | undefined;
  readonly #loop: PeriodicTask;

  constructor(deps: ExpiryNoticesDeps) {
    this.#d = deps;
    this.#loop = new PeriodicTask({
      clock: deps.clock,
      intervalMs: () => deps.checkIntervalMs,
      pass: () => this.check(),
      onError: (err) =>
        deps.log.warn(
          { error: err instanceof Error ? err.message : String(err) },
          'expiry notices: check failed; will retry',
        ),
    });
  }

  start(): void {
    this.#loop.start();
  }

  async stop(): Promise<void> {
    await this.#loop.stop();
  }

  /** One pass: load the record when leading starts, send what is due, save what changed. */
  async check(): Promise<number> {
    const d = this.#d;
    if (!d.synced()) return 0;
    if (d.isLeader && !d.isLeader()) {
      this.#sent = undefined; // a later leadership reads the record afresh
      return 0;
    }
    this.#sent ??= await d.store.load();
    const now = d.clock.now();
    const { notices, entries, changed } = noticesDue(
      d.candidates(),
      this.#sent,
      d.thresholdsMs,
      now,
      d.graceMs,
    );
    if (changed.size === 0) return 0;
    // Recorded before the Events are written: a crash in between loses a notice rather than
    // repeating it on every restart.
    await d.store.save(entries, changed);
    this.#sent = entries;
    for (const key of changed) if (!entries.has(key)) d.onCleared?.(key);
    for (const n of notices) {
      const { reason, message } = noticeMessage(n, now);
      d.log.warn({ secret: n.key, thresholdMs: n.thresholdMs, reason }, message);
      d.onNotice?.(n, reason, message);
      await d.events.record(secretRef(n.candidate), 'Warning', reason, message, now);
    }
    return notices.length;
  }
}
