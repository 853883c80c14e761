/**
 * `scan` over the config's monitoring sources: the same streams and readers as the controller's
 * monitor, listed once (in pages, as plain JSON) instead of watched. One row per certificate,
 * one per value that cannot be read.
 */
import type { MonitoringConfig } from '../config/monitoring.ts';
import type { KubeTransport } from '../kube/http/transport.ts';
import { monitorStreams } from '../monitor/cluster-monitor.ts';
import type { PasswordResult, RawObject } from '../monitor/objects.ts';
import type { ObjectSummary } from '../monitor/summary.ts';
import { X509Source } from '../names.ts';
import type { ScanRow } from './scan-rows.ts';

interface RawList {
  metadata?: { continue?: string };
  items?: RawObject[];
}

const KIND_OF_SOURCE: Record<string, ScanRow['kind']> = {
  [X509Source.secret]: 'Secret',
  [X509Source.keystore]: 'Secret',
  [X509Source.kubeconfig]: 'Secret',
  [X509Source.configMap]: 'ConfigMap',
  [X509Source.validatingWebhook]: 'ValidatingWebhookConfiguration',
  [X509Source.mutatingWebhook]: 'MutatingWebhookConfiguration',
  [X509Source.apiService]: 'APIService',
  [X509Source.crdConversion]: 'CustomResourceDefinition',
};

export async function scanMonitored(
  transport: KubeTransport,
  config: MonitoringConfig,
  options: { namespace?: string; now: number; pageSize?: number },
): Promise<ScanRow[]> {
  const passwords = new Map<string, Promise<PasswordResult>>();
  const externalPassword = ({ secret }: { secret: { namespace: string; name: string; key: string } }) => {
    const id = `${secret.namespace}/${secret.name}`;
    let p = passwords.get(id);
    if (!p) {
      p = transport
        .request<{ data?: Record<string, string> }>(
          'GET',
          `/api/v1/namespaces/${encodeURIComponent(secret.namespace)}/secrets/${encodeURIComponent(secret.name)}`,
        )
        .then(
          (s): PasswordResult => {
            const v = s.data?.[secret.key];
            return v === undefined
              ? { problem: `the password key "${secret.key}" of Secret ${id} does not exist` }
              : { password: Buffer.from(v, 'base64').toString('utf8') };
          },
          (err): PasswordResult => ({
            problem: `the password Secret ${id} cannot be read: ${err instanceof Error ? err.message : String(err)}`,
          }),
        );
      passwords.set(id, p);
    }
    return p;
  };
  const rows: ScanRow[] = [];
  for (const stream of monitorStreams(config, externalPassword, options.namespace)) {
    let cont: string | undefined;
    do {
      const page = await transport.request<RawList>('GET', stream.path, {
        query: {
          ...(stream.fieldSelector ? { fieldSelector: stream.fieldSelector } : {}),
          ...(stream.labelSelector ? { labelSelector: stream.labelSelector } : {}),
          limit: String(options.pageSize ?? 500),
          ...(cont ? { continue: cont } : {}),
        },
      });
      for (const item of page.items ?? []) {
        for (const p of stream.tag.processors) {
          const summary = await p.process(item);
          if (summary) rows.push(...rowsOfSummary(summary, options.now));
        }
      }
      cont = page.metadata?.continue || undefined;
    } while (cont);
  }
  return rows;
}

/** Rows of one summary: its certificates, then its problems. Also used for node files. */
export function rowsOfSummary(s: ObjectSummary, now: number): ScanRow[] {
  const kind = KIND_OF_SOURCE[s.source] ?? 'File';
  const perKey = new Map<string, number>();
  for (const c of s.certs) perKey.set(c.key, (perKey.get(c.key) ?? 0) + 1);
  const base = {
    kind,
    namespace: s.namespace || null,
    name: s.name,
    managed: false,
    serial: null,
    dnsNames: [],
    renewalTime: null,
    plannedRenewal: null,
    controllerState: null,
  } as const;
  const rows: ScanRow[] = s.certs.map((c) => {
    const n = perKey.get(c.key) ?? 1;
    const expired = c.notAfter <= now;
    return {
      ...base,
      dnsNames: [],
      source: `${s.source} ${c.key}${n > 1 ? ` ${c.index + 1} of ${n}` : ''}`.trim(),
      issuer: c.issuerCN || null,
      commonName: c.subjectCN || null,
      notBefore: new Date(c.notBefore).toISOString(),
      notAfter: new Date(c.notAfter).toISOString(),
      timeLeftSeconds: Math.floor((c.notAfter - now) / 1000),
      state: expired ? 'expired' : 'valid',
      problems: expired ? [`expired ${new Date(c.notAfter).toISOString()}`] : [],
    };
  });
  for (const p of s.problems)
    rows.push({
      ...base,
      dnsNames: [],
      source: `${s.source} ${p.key}`.trim(),
      issuer: null,
      commonName: null,
      notBefore: null,
      notAfter: null,
      timeLeftSeconds: null,
      state: 'invalid',
      problems: [`${p.reason}: ${p.message}`],
    });
  return rows;
}
