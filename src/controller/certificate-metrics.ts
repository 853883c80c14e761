import type { Metrics } from '../observability/metrics.ts';
import type { Evaluation } from './evaluate.ts';
import type { SecretRecord } from './record.ts';

type Labels = { namespace: string; secret: string; issuer: string; managed: boolean };

/**
 * The per-certificate series of every TLS Secret seen, managed or not. Remembers each Secret's
 * labels so that a series whose issuer or managed label changed is removed, not left behind.
 */
export class CertificateMetrics {
  private readonly metrics: Metrics;
  private readonly labels = new Map<string, Labels>();

  constructor(metrics: Metrics) {
    this.metrics = metrics;
  }

  update(key: string, record: SecretRecord, ev: Evaluation, now: number): void {
    const issuer = ev.kind === 'planned' ? ev.issuer.name : ev.kind === 'not-allowed' ? ev.issuer : '';
    const labels = { namespace: record.namespace, secret: record.name, issuer, managed: record.managed };
    const previous = this.labels.get(key);
    if (previous && (previous.issuer !== labels.issuer || previous.managed !== labels.managed)) {
      this.metrics.setCertificate(previous, undefined);
    }
    this.labels.set(key, labels);
    const cert = record.cert;
    this.metrics.setCertificate(
      labels,
      cert
        ? {
            notBefore: cert.notBefore,
            notAfter: cert.notAfter,
            ready: cert.notBefore <= now && now < cert.notAfter,
            ...(ev.kind === 'planned' && ev.renewalTime !== undefined ? { renewalTime: ev.renewalTime } : {}),
          }
        : undefined,
    );
  }

  remove(key: string): void {
    const labels = this.labels.get(key);
    if (labels) this.metrics.setCertificate(labels, undefined);
    this.labels.delete(key);
  }
}
