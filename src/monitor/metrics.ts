import { Metric } from '../names.ts';
import { escapeLabel, type Registry, scrapeTimeFamily } from '../observability/prom.ts';
import type { CertSeries, ObjectSummary } from './summary.ts';

/**
 * The x509 family, rendered from the monitor's summaries at scrape time (nothing else is kept).
 * Empty labels are left out (Prometheus reads a missing label as empty), which keeps the bytes
 * per scrape small: a cluster-scoped object has no `namespace`, a cluster source no `node`.
 */
export function registerX509Metrics(
  registry: Registry,
  summaries: () => Iterable<ObjectSummary>,
  node = '',
): void {
  const nodeLabel = node ? `,node="${escapeLabel(node)}"` : '';
  const copied = (s: ObjectSummary) => {
    if (!s.labels) return '';
    let out = '';
    for (const [name, value] of s.labels) out += `,${name}="${escapeLabel(value)}"`;
    return out;
  };
  const certLabels = (s: ObjectSummary, c: CertSeries) =>
    `{source="${s.source}"${s.namespace ? `,namespace="${escapeLabel(s.namespace)}"` : ''},name="${escapeLabel(s.name)}"${c.key ? `,key="${escapeLabel(c.key)}"` : ''},index="${c.index}",subject_cn="${escapeLabel(c.subjectCN)}",issuer_cn="${escapeLabel(c.issuerCN)}"${copied(s)}${nodeLabel}}`;
  const family = (name: string, help: string, value: (c: CertSeries) => number) =>
    registry.registerMetric(
      scrapeTimeFamily(name, help, 'gauge', (emit) => {
        for (const s of summaries()) for (const c of s.certs) emit(certLabels(s, c), value(c));
      }),
    );
  family(
    Metric.x509NotAfter,
    'notAfter of each certificate found outside TLS Secrets (every certificate of a bundle), as a Unix timestamp.',
    (c) => c.notAfter / 1000,
  );
  family(
    Metric.x509NotBefore,
    'notBefore of each certificate found outside TLS Secrets, as a Unix timestamp.',
    (c) => c.notBefore / 1000,
  );
  registry.registerMetric(
    scrapeTimeFamily(
      Metric.x509ReadErrors,
      'Values that should hold certificates and cannot be read (1 per object and key), by reason.',
      'gauge',
      (emit) => {
        for (const s of summaries())
          for (const p of s.problems)
            emit(
              `{source="${s.source}"${s.namespace ? `,namespace="${escapeLabel(s.namespace)}"` : ''},name="${escapeLabel(s.name)}"${p.key ? `,key="${escapeLabel(p.key)}"` : ''},reason="${p.reason}"${copied(s)}${nodeLabel}}`,
              1,
            );
      },
    ),
  );
}
