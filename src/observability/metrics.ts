import { type Clock, systemClock } from '../clock.ts';
import { METRIC_PREFIX, Metric } from '../names.ts';
import {
  type Collectable,
  Counter,
  collectDefaultMetrics,
  escapeLabel,
  Gauge,
  Histogram,
  Registry,
  scrapeTimeFamily,
} from './prom.ts';

/** The controller's metrics, on a registry of their own (never prom-client's global one). */
export class Metrics {
  readonly registry = new Registry();
  private certificates: () => Iterable<CertificateSeries> = () => [];
  readonly renewals: Counter<'issuer' | 'result'>;
  readonly renewalDuration: Histogram<'issuer'>;
  readonly rollouts: Counter<'kind' | 'result'>;
  readonly acmeRequests: Counter<'issuer' | 'action' | 'status'>;
  readonly secretErrors: Counter<'reason'>;
  readonly csrRequests: Counter<'issuer' | 'result'>;
  readonly csrApprovalWait: Histogram<'issuer'>;
  readonly kubeApiRequests: Counter<'verb' | 'code'>;
  readonly notifications: Counter<'webhook' | 'result'>;
  private leading: () => boolean = () => true;
  private readonly queues = new Map<string, () => QueueStats>();
  readonly podCertificateRequests: Counter<'signer' | 'result'>;
  readonly podCertificateIssue: Histogram<'signer'>;
  readonly caRolloverPhase: Gauge<'issuer'>;
  readonly caNotAfter: Gauge<'issuer'>;

  constructor({
    processMetrics = true,
    clock = systemClock,
  }: { processMetrics?: boolean; clock?: Clock } = {}) {
    const r = [this.registry];
    const series = () => this.certificates();
    const families: Array<[string, string, (c: CertificateSeries, now: number) => number | undefined]> = [
      [
        Metric.certificateNotAfter,
        'notAfter of the leaf certificate in a TLS Secret, as a Unix timestamp.',
        (c) => c.notAfter / 1000,
      ],
      [
        Metric.certificateNotBefore,
        'notBefore of the leaf certificate in a TLS Secret, as a Unix timestamp.',
        (c) => c.notBefore / 1000,
      ],
      [
        Metric.certificateRenewalTime,
        'When cert-rotator plans to renew the certificate, as a Unix timestamp (managed Secrets).',
        (c) => (c.renewalTime === undefined ? undefined : c.renewalTime / 1000),
      ],
      [
        Metric.certificateReady,
        '1 when the Secret holds a certificate that is valid now, else 0.',
        (c, now) => (c.notBefore <= now && now < c.notAfter ? 1 : 0),
      ],
    ];
    for (const [name, help, value] of families)
      this.registry.registerMetric(certificateFamily(name, help, series, value, clock));
    this.renewals = new Counter({
      name: Metric.renewalsTotal,
      help: 'Renewal attempts by issuer and result (success, failure).',
      labelNames: ['issuer', 'result'],
      registers: r,
    });
    this.renewalDuration = new Histogram({
      name: Metric.renewalDuration,
      help: 'Time from the start of a renewal to the Secret being written.',
      labelNames: ['issuer'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers: r,
    });
    this.rollouts = new Counter({
      name: Metric.rolloutsTotal,
      help: 'Workload restarts by kind and result.',
      labelNames: ['kind', 'result'],
      registers: r,
    });
    this.acmeRequests = new Counter({
      name: Metric.acmeRequestsTotal,
      help: 'Requests to ACME servers by issuer, action and HTTP status.',
      labelNames: ['issuer', 'action', 'status'],
      registers: r,
    });
    this.secretErrors = new Counter({
      name: Metric.secretErrorsTotal,
      help: 'Problems found in Secrets (invalid annotations, unparseable certificates, ...), by reason.',
      labelNames: ['reason'],
      registers: r,
    });
    this.csrRequests = new Counter({
      name: Metric.csrRequestsTotal,
      help: 'CertificateSigningRequests made by kubernetesCSR issuers, by outcome (issued, denied, failed, timeout).',
      labelNames: ['issuer', 'result'],
      registers: r,
    });
    this.csrApprovalWait = new Histogram({
      name: Metric.csrApprovalWait,
      help: 'Time from creating a CertificateSigningRequest to its certificate.',
      labelNames: ['issuer'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers: r,
    });
    this.kubeApiRequests = new Counter({
      name: Metric.kubeApiRequestsTotal,
      help: 'Requests to the Kubernetes API server by verb and HTTP status code (code "error": no answer).',
      labelNames: ['verb', 'code'],
      registers: r,
    });
    this.notifications = new Counter({
      name: Metric.notificationsTotal,
      help: 'Webhook deliveries by webhook and result (success, failure: a retried attempt, dropped: alerts given up).',
      labelNames: ['webhook', 'result'],
      registers: r,
    });
    this.registry.registerMetric(
      scrapeTimeFamily(
        Metric.leader,
        '1 on the replica that holds the leader Lease (or runs without leader election), else 0.',
        'gauge',
        (emit) => emit('', this.leading() ? 1 : 0),
      ),
    );
    this.registry.registerMetric(
      scrapeTimeFamily(
        Metric.workqueueDepth,
        'Keys that need a run now, per work queue.',
        'gauge',
        (emit) => {
          for (const [name, stats] of this.queues) emit(`{queue="${escapeLabel(name)}"}`, stats().depth);
        },
      ),
    );
    this.registry.registerMetric(
      scrapeTimeFamily(
        Metric.workqueueOldestItemAge,
        'Seconds the key that has waited longest in a work queue has waited (0 when none waits).',
        'gauge',
        (emit) => {
          for (const [name, stats] of this.queues)
            emit(`{queue="${escapeLabel(name)}"}`, stats().oldestWaitMs / 1000);
        },
      ),
    );
    this.podCertificateRequests = new Counter({
      name: Metric.podCertificateRequestsTotal,
      help: 'PodCertificateRequests the pod certificate signer handled, by signer name and result (issued, denied, pending, conflict, error).',
      labelNames: ['signer', 'result'],
      registers: r,
    });
    this.podCertificateIssue = new Histogram({
      name: Metric.podCertificateIssueSeconds,
      help: 'Time from a PodCertificateRequest being created to its certificate chain being written.',
      labelNames: ['signer'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: r,
    });
    this.caRolloverPhase = new Gauge({
      name: Metric.caRolloverPhase,
      help: "A ca issuer's CA rollover phase: 0 none, 1 Trust, 2 Propagate, 3 Reissue, 4 Retire.",
      labelNames: ['issuer'],
      registers: r,
    });
    this.caNotAfter = new Gauge({
      name: Metric.caNotAfter,
      help: "notAfter of a ca issuer's signing CA certificate, as a Unix timestamp.",
      labelNames: ['issuer'],
      registers: r,
    });
    if (processMetrics) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  /**
   * Where the per-certificate series come from. They are rendered from the controller's own
   * records at scrape time instead of being kept as prom-client series: four series per Secret
   * held in prom-client cost more memory than the record itself, and `ready` is computed at the
   * moment of the scrape, so it turns 0 when a certificate expires even if nothing else happens.
   */
  setCertificateSource(source: () => Iterable<CertificateSeries>): void {
    this.certificates = source;
  }

  /** Whether this replica leads, read at scrape time (default: always, as without election). */
  setLeaderSource(leading: () => boolean): void {
    this.leading = leading;
  }

  /** A work queue whose depth and oldest wait are exported under `queue="name"`. */
  addQueue(name: string, stats: () => QueueStats): void {
    this.queues.set(name, stats);
  }
}

/** What the work-queue metrics read from a queue at scrape time. */
export interface QueueStats {
  depth: number;
  oldestWaitMs: number;
}

/** One TLS Secret's certificate as exported; `renewalTime` only for managed Secrets. */
export interface CertificateSeries {
  namespace: string;
  secret: string;
  issuer: string;
  managed: boolean;
  notBefore: number;
  notAfter: number;
  renewalTime?: number;
}

/** A gauge family whose samples are computed from `series` on each scrape. */
function certificateFamily(
  name: string,
  help: string,
  series: () => Iterable<CertificateSeries>,
  value: (c: CertificateSeries, now: number) => number | undefined,
  clock: Clock,
): Collectable {
  return scrapeTimeFamily(name, help, 'gauge', (emit) => {
    const now = clock.now();
    for (const c of series()) {
      const v = value(c, now);
      if (v === undefined) continue;
      emit(
        `{namespace="${escapeLabel(c.namespace)}",secret="${escapeLabel(c.secret)}",issuer="${escapeLabel(c.issuer)}",managed="${c.managed}"}`,
        v,
      );
    }
  });
}
