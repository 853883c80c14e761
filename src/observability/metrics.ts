import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { Metric } from '../names.ts';

/** The controller's metrics, on a registry of their own (never prom-client's global one). */
export class Metrics {
  readonly registry = new Registry();
  readonly notAfter: Gauge<'namespace' | 'secret' | 'issuer' | 'managed'>;
  readonly notBefore: Gauge<'namespace' | 'secret' | 'issuer' | 'managed'>;
  readonly renewalTime: Gauge<'namespace' | 'secret' | 'issuer' | 'managed'>;
  readonly ready: Gauge<'namespace' | 'secret' | 'issuer' | 'managed'>;
  readonly renewals: Counter<'issuer' | 'result'>;
  readonly renewalDuration: Histogram<'issuer'>;
  readonly rollouts: Counter<'kind' | 'result'>;
  readonly acmeRequests: Counter<'issuer' | 'action' | 'status'>;
  readonly secretErrors: Counter<'reason'>;

  constructor({ processMetrics = true }: { processMetrics?: boolean } = {}) {
    const r = [this.registry];
    const certLabels = ['namespace', 'secret', 'issuer', 'managed'] as const;
    this.notAfter = new Gauge({
      name: Metric.certificateNotAfter,
      help: 'notAfter of the leaf certificate in a TLS Secret, as a Unix timestamp.',
      labelNames: certLabels,
      registers: r,
    });
    this.notBefore = new Gauge({
      name: Metric.certificateNotBefore,
      help: 'notBefore of the leaf certificate in a TLS Secret, as a Unix timestamp.',
      labelNames: certLabels,
      registers: r,
    });
    this.renewalTime = new Gauge({
      name: Metric.certificateRenewalTime,
      help: 'When cert-rotator plans to renew the certificate, as a Unix timestamp (managed Secrets).',
      labelNames: certLabels,
      registers: r,
    });
    this.ready = new Gauge({
      name: Metric.certificateReady,
      help: '1 when the Secret holds a parseable certificate that is valid now, else 0.',
      labelNames: certLabels,
      registers: r,
    });
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
    if (processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'cert_rotator_' });
  }

  /** Sets (or, with `undefined`, removes) the per-certificate series of one Secret. */
  setCertificate(
    labels: { namespace: string; secret: string; issuer: string; managed: boolean },
    cert: { notBefore: number; notAfter: number; renewalTime?: number; ready: boolean } | undefined,
  ): void {
    const l = { ...labels, managed: String(labels.managed) };
    if (!cert) {
      for (const g of [this.notAfter, this.notBefore, this.renewalTime, this.ready]) g.remove(l);
      return;
    }
    this.notAfter.set(l, cert.notAfter / 1000);
    this.notBefore.set(l, cert.notBefore / 1000);
    if (cert.renewalTime !== undefined) this.renewalTime.set(l, cert.renewalTime / 1000);
    else this.renewalTime.remove(l);
    this.ready.set(l, cert.ready ? 1 : 0);
  }
}
