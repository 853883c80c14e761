/**
 * What the monitor keeps of one object after reading it: a few numbers and names per
 * certificate and one line per value it could not read. Never the object's data: a watched
 * Secret or ConfigMap is read, summarised and dropped.
 */
import type { X509SourceValue } from '../names.ts';
import type { ReadErrorReason } from './errors.ts';
import { ReadError } from './errors.ts';
import { readValue, type ValueFormat } from './read.ts';

export interface CertSeries {
  /** The data key (or webhook name, or file path), with `:user/NAME`-style suffixes for kubeconfig entries. */
  key: string;
  /** Position in the bundle or keystore, from 0. */
  index: number;
  notBefore: number;
  notAfter: number;
  subjectCN: string;
  issuerCN: string;
}

export interface ReadProblem {
  key: string;
  reason: ReadErrorReason;
  /** For people: events, logs. Never holds data from the object. */
  message: string;
}

export interface ObjectSummary {
  source: X509SourceValue;
  namespace: string;
  name: string;
  certs: CertSeries[];
  problems: ReadProblem[];
  /** Copied object labels (`monitoring.copyLabels`): metric label name and value, only those listed. */
  labels?: Array<[string, string]>;
}

export function emptySummary(source: X509SourceValue, namespace: string, name: string): ObjectSummary {
  return { source, namespace, name, certs: [], problems: [] };
}

/** Reads one value into `summary`: its certificates, or one problem. Never throws for bad input. */
export function addValue(
  summary: ObjectSummary,
  key: string,
  bytes: Uint8Array,
  format: ValueFormat,
  password?: string,
): void {
  try {
    for (const part of readValue(bytes, format, password)) {
      part.certs.forEach((c, index) => {
        summary.certs.push({ key: `${key}${part.part}`, index, ...c });
      });
    }
  } catch (err) {
    if (err instanceof ReadError) summary.problems.push({ key, reason: err.reason, message: err.message });
    else summary.problems.push({ key, reason: 'malformed', message: `cannot be read: ${String(err)}` });
  }
}

/** A matcher for key globs: `*` any run of characters, `?` one; the whole key must match. */
export function keyMatcher(globs: readonly string[]): (key: string) => boolean {
  if (globs.length === 0) return () => false;
  const body = globs
    .map((g) =>
      g
        .split('')
        .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[.+^${}()|[\]\\-]/g, '\\$&')))
        .join(''),
    )
    .join('|');
  const re = new RegExp(`^(?:${body})$`, 's');
  return (key) => re.test(key);
}
