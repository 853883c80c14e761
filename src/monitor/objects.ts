/**
 * One function per kind of object: the object as the API server sent it (plain JSON, untrusted)
 * in, the summary of its certificates out, or undefined when it holds nothing the source looks
 * at (then nothing is kept for it).
 */
import { X509Source, type X509SourceValue } from '../names.ts';
import type { ValueFormat } from './read.ts';
import { addValue, emptySummary, type ObjectSummary } from './summary.ts';

export interface RawObject {
  metadata?: { namespace?: string; name?: string; uid?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

const meta = (o: RawObject) => ({ namespace: o.metadata?.namespace ?? '', name: o.metadata?.name ?? '' });

function record(o: unknown): Record<string, unknown> | undefined {
  return o !== null && typeof o === 'object' && !Array.isArray(o)
    ? (o as Record<string, unknown>)
    : undefined;
}

function base64(v: string): Uint8Array {
  return Buffer.from(v, 'base64');
}

/** The password for a keystore: a value, none configured, or a problem finding it. */
export type PasswordResult = { password: string | undefined } | { problem: string };

/** Secret data values whose keys match, read in `format` (keystores with their password). */
export function summarizeSecret(
  source: X509SourceValue,
  secret: RawObject,
  matches: (key: string) => boolean,
  format: ValueFormat,
  password?: (data: Record<string, unknown>) => PasswordResult,
): ObjectSummary | undefined {
  const data = record(secret.data);
  if (!data) return undefined;
  const { namespace, name } = meta(secret);
  let summary: ObjectSummary | undefined;
  let pw: PasswordResult | undefined;
  for (const [key, value] of Object.entries(data)) {
    if (typeof value !== 'string' || !matches(key)) continue;
    summary ??= emptySummary(source, namespace, name);
    if (password) {
      pw ??= password(data);
      if ('problem' in pw) {
        summary.problems.push({ key, reason: 'password-unavailable', message: pw.problem });
        continue;
      }
      addValue(summary, key, base64(value), format, pw.password);
    } else addValue(summary, key, base64(value), format);
  }
  return summary;
}

/** ConfigMap `data` (text) and `binaryData` (base64) values whose keys match, as PEM or DER. */
export function summarizeConfigMap(
  cm: RawObject,
  matches: (key: string) => boolean,
): ObjectSummary | undefined {
  const { namespace, name } = meta(cm);
  let summary: ObjectSummary | undefined;
  for (const [field, decode] of [
    ['data', (v: string) => Buffer.from(v, 'utf8')],
    ['binaryData', base64],
  ] as const) {
    for (const [key, value] of Object.entries(record(cm[field]) ?? {})) {
      if (typeof value !== 'string' || !matches(key)) continue;
      summary ??= emptySummary(X509Source.configMap, namespace, name);
      addValue(summary, key, decode(value), 'pem');
    }
  }
  return summary;
}

/** Each webhook's `clientConfig.caBundle`, keyed by the webhook's name. */
export function summarizeWebhookConfiguration(
  source: typeof X509Source.validatingWebhook | typeof X509Source.mutatingWebhook,
  o: RawObject,
): ObjectSummary | undefined {
  const { name } = meta(o);
  let summary: ObjectSummary | undefined;
  const hooks = Array.isArray(o.webhooks) ? o.webhooks : [];
  hooks.forEach((hook, i) => {
    const h = record(hook);
    const bundle = record(h?.clientConfig)?.caBundle;
    if (typeof bundle !== 'string' || bundle === '') return;
    summary ??= emptySummary(source, '', name);
    addValue(summary, typeof h?.name === 'string' ? h.name : `webhooks[${i}]`, base64(bundle), 'pem');
  });
  return summary;
}

/** An APIService's `spec.caBundle`. */
export function summarizeApiService(o: RawObject): ObjectSummary | undefined {
  const bundle = record(o.spec)?.caBundle;
  if (typeof bundle !== 'string' || bundle === '') return undefined;
  const summary = emptySummary(X509Source.apiService, '', meta(o).name);
  addValue(summary, 'caBundle', base64(bundle), 'pem');
  return summary;
}

/** A CustomResourceDefinition's conversion webhook `caBundle`. */
export function summarizeCrd(o: RawObject): ObjectSummary | undefined {
  const webhook = record(record(record(o.spec)?.conversion)?.webhook);
  const bundle = record(webhook?.clientConfig)?.caBundle;
  if (typeof bundle !== 'string' || bundle === '') return undefined;
  const summary = emptySummary(X509Source.crdConversion, '', meta(o).name);
  addValue(summary, 'conversion', base64(bundle), 'pem');
  return summary;
}
