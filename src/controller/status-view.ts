/**
 * What the status page and the expiry notices see of the Secrets: from each record, its
 * evaluation and the retry state, the planned renewal and why it falls when it does. Metadata
 * only: the records hold no Secret data.
 */
import { Annotation, CertState, StatusAnnotation } from '../names.ts';
import type { RenewBefore } from '../policy/renewal.ts';
import { formatDuration, formatTime } from '../ui/format.ts';
import type { ActivityView, CertificateView } from '../ui/status-page.ts';
import { type DecideContext, evaluateNow } from './decide.ts';
import type { Evaluation } from './evaluate.ts';
import type { NoticeCandidate } from './notices.ts';
import type { SecretRecord } from './record.ts';
import type { RetryStates } from './retry.ts';

/** What the status page and the notices read of the controller, never change. */
export interface ControllerState {
  records: ReadonlyMap<string, SecretRecord>;
  context: DecideContext;
  retry: RetryStates;
  /** Secrets whose attempt waits for a CSR's approval. */
  pending: ReadonlySet<string>;
  now: number;
}

/**
 * Every TLS Secret known, as the status page shows it. Evaluated with the issuers' suggestions
 * already known, as the controller plans with them.
 */
export function statusRows(
  s: ControllerState,
  lastEvent: (object: string) => ActivityView | undefined,
): CertificateView[] {
  const out: CertificateView[] = [];
  for (const [key, record] of s.records) {
    const ev = evaluateNow(s.context, key, record, s.now);
    const retry = {
      failures: s.retry.failures(key),
      notBefore: s.retry.notBefore(key),
      pendingApproval: s.pending.has(key),
    };
    out.push(withRollover(certificateView(record, ev, retry, s.now, lastEvent(key)), record, s.now));
  }
  return out;
}

/** Every Secret with a certificate, as the expiry notices look at it (renewal time: managed ones). */
export function* noticeCandidates(s: ControllerState): Iterable<[string, NoticeCandidate]> {
  for (const [key, record] of s.records) {
    const cert = record.cert;
    if (!cert) continue;
    let renewalTime: number | undefined;
    if (record.managed) {
      const ev = evaluateNow(s.context, key, record, s.now);
      // The renewal time the metrics export and the alert rules compare with time(): a failing
      // renewal in backoff is overdue. Not planned (bad annotations, refused issuer): nothing
      // will renew it, so it is overdue now.
      renewalTime = ev.kind === 'planned' ? (ev.renewalTime ?? s.now) : s.now;
    }
    yield [
      key,
      {
        namespace: record.namespace,
        name: record.name,
        uid: record.uid,
        managed: record.managed,
        serialHex: cert.serialHex,
        notAfter: cert.notAfter,
        renewalTime,
      },
    ];
  }
}

/**
 * A CA Secret in a CA rollover (docs/ca-rollover.md): the row says so, with the phase and since
 * when, whatever its own renewal state; paused rollovers need a person's eyes.
 */
export function withRollover(view: CertificateView, record: SecretRecord, now: number): CertificateView {
  const phase = record.annotations[StatusAnnotation.caRolloverPhase];
  if (phase === undefined) return view;
  const paused = record.annotations[Annotation.rolloverPaused] === 'true';
  const since = Date.parse(record.annotations[StatusAnnotation.caRolloverPhaseSince] ?? '');
  const when = Number.isFinite(since) ? ` since ${formatTime(since)} (${formatDuration(now - since)})` : '';
  return {
    ...view,
    state: `CARollover/${phase}${paused ? ' (paused)' : ''}`,
    severity: paused ? 'warn' : view.severity === 'bad' ? 'bad' : 'info',
    why: `CA rollover in phase ${phase}${when}${paused ? `, paused by ${Annotation.rolloverPaused}` : ''}; \`cert-rotator ca status ISSUER\` shows what it waits for. ${view.why}`,
  };
}

export interface RetryView {
  failures: number;
  /** No renewal attempt before this time (0: any time). */
  notBefore: number;
  /** Waiting for a person to approve its CertificateSigningRequest. */
  pendingApproval: boolean;
}

function describeRenewBefore(rb: RenewBefore): string {
  return rb.kind === 'percent'
    ? `renew-before ${Math.round(rb.fraction * 1000) / 10}% of the lifetime`
    : `renew-before ${formatDuration(rb.ms)}`;
}

export function certificateView(
  record: SecretRecord,
  ev: Evaluation,
  retry: RetryView,
  now: number,
  lastEvent?: ActivityView,
): CertificateView {
  const cert = record.cert;
  const base = {
    namespace: record.namespace,
    secret: record.name,
    managed: record.managed,
    issuer: ev.kind === 'planned' ? ev.issuer.name : ev.kind === 'not-allowed' ? ev.issuer : '',
    commonName: cert?.subjectCommonName,
    dnsNames: cert?.dnsNames ?? [],
    notBefore: cert?.notBefore,
    notAfter: cert?.notAfter,
    lastEvent: lastEvent ?? fromStatusAnnotations(record),
  };
  const expired = cert !== null && cert.notAfter <= now;
  if (ev.kind === 'unmanaged') {
    return {
      ...base,
      state: cert ? (expired ? 'Expired' : 'Monitored') : 'No certificate',
      severity: expired || !cert ? 'bad' : 'info',
      why: cert
        ? `monitored only: not opted in with ${Annotation.enabled}`
        : (record.certProblem ?? 'no certificate'),
    };
  }
  if (ev.kind === 'invalid') {
    return {
      ...base,
      state: 'Invalid annotations',
      severity: 'bad',
      why: `left untouched: ${ev.errors.map((e) => `${e.annotation}: ${e.message}`).join('; ')}`,
    };
  }
  if (ev.kind === 'not-allowed') {
    return { ...base, state: 'Issuer not allowed', severity: 'bad', why: `left untouched: ${ev.reason}` };
  }
  const written = record.annotations[StatusAnnotation.state];
  const state = expired ? 'Expired' : (written ?? CertState.ready);
  const severity: CertificateView['severity'] =
    expired || written === CertState.failed || !cert ? 'bad' : written === CertState.issuing ? 'warn' : 'ok';
  const policy = describeRenewBefore(ev.policy.renewBefore);
  const d = ev.decision;
  let planned = d.action === 'renew-now' ? now : d.at;
  let why: string;
  switch (d.reason) {
    case 'requested':
      why = `renewal requested (${Annotation.renewRequestedAt})`;
      break;
    case 'unparseable':
      why = `renews at once: ${record.certProblem ?? 'no usable certificate'}`;
      break;
    case 'expired':
      why = 'expired: renews at once';
      break;
    case 'emergency':
      why = `${policy}; in the last tenth of its lifetime, so it renews now without waiting for its window`;
      break;
    case 'inside-window':
      why = `${policy}; due, and inside its maintenance window`;
      break;
    case 'window-wait':
      why = `${policy} made it due at ${formatTime(ev.renewalTime ?? d.at)}; waits for its maintenance window (${record.annotations[Annotation.window] ?? ''})`;
      break;
    case 'due':
      why = `${policy}: due now`;
      break;
    case 'ca-rollover':
      why =
        ev.managedCa?.kind === 'held'
          ? `its own renewal waits until the CA rollover is over (${ev.managedCa.why})`
          : 'the CA rollover it started is over: the new CA is recorded as renewed';
      break;
    default:
      why = policy;
  }
  if (retry.pendingApproval) {
    why = `waiting for its CertificateSigningRequest to be approved; ${why}`;
    planned = Math.max(planned, retry.notBefore);
  } else if (retry.failures > 0 && retry.notBefore > planned) {
    why = `backoff after ${retry.failures} failed attempt${retry.failures === 1 ? '' : 's'}: next attempt ${formatTime(retry.notBefore)}; ${why}`;
    planned = retry.notBefore;
  }
  return { ...base, state, severity, plannedRenewal: planned, why };
}

/** The last outcome the Secret's status annotations record, for a replica that saw no event itself. */
function fromStatusAnnotations(record: SecretRecord): ActivityView | undefined {
  const a = record.annotations;
  const object = `${record.namespace}/${record.name}`;
  const failedAt = Date.parse(a[StatusAnnotation.lastFailureTime] ?? '');
  const renewedAt = Date.parse(a[StatusAnnotation.lastRenewed] ?? '');
  if (a[StatusAnnotation.state] === CertState.failed && Number.isFinite(failedAt)) {
    return {
      at: failedAt,
      type: 'Warning',
      reason: 'RenewalFailed',
      object,
      message: a[StatusAnnotation.lastError] ?? '',
    };
  }
  if (Number.isFinite(renewedAt)) {
    return {
      at: renewedAt,
      type: 'Normal',
      reason: 'Renewed',
      object,
      message: `renewed; valid until ${formatTime(record.cert?.notAfter ?? Number.NaN)}`,
    };
  }
  return undefined;
}
