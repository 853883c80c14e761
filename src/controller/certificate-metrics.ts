import type { CertificateSeries, Metrics } from '../observability/metrics.ts';
import type { Evaluation } from './evaluate.ts';
import type { SecretRecord } from './record.ts';

/**
 * The per-certificate series of every TLS Secret seen, managed or not: one small object per
 * Secret, which the metrics registry reads at scrape time. A Secret without a parseable
 * certificate has no series; a deleted Secret's series go with it.
 */
export class CertificateMetrics {
  private readonly series = new Map<string, CertificateSeries>();

  constructor(metrics: Metrics) {
    metrics.setCertificateSource(() => this.series.values());
  }

  update(key: string, record: SecretRecord, ev: Evaluation): void {
    const cert = record.cert;
    if (!cert) {
      this.series.delete(key);
      return;
    }
    const issuer = ev.kind === 'planned' ? ev.issuer.name : ev.kind === 'not-allowed' ? ev.issuer : '';
    this.series.set(key, {
      namespace: record.namespace,
      secret: record.name,
      issuer,
      managed: record.managed,
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      ...(ev.kind === 'planned' && ev.renewalTime !== undefined ? { renewalTime: ev.renewalTime } : {}),
    });
  }

  remove(key: string): void {
    this.series.delete(key);
  }
}
