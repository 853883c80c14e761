/**
 * Node mode: the certificates in files under some directories (a node's /etc/kubernetes/pki,
 * /var/lib/kubelet/pki, kubeconfigs), each file read by its name: PEM/DER certificates,
 * kubeconfigs, keystores. Other files, private keys among them, are never opened.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { X509Source } from '../names.ts';
import type { ValueFormat } from './read.ts';
import { MAX_VALUE_BYTES } from './read.ts';
import { addValue, emptySummary, type ObjectSummary } from './summary.ts';

export interface FileScanOptions {
  paths: string[];
  /** Removed from the front of each path in the `name` label (the hostPath mount point, e.g. `/host`). */
  stripPrefix?: string;
  /** Password for keystores; none: the empty password is tried (PKCS#12) or the check skipped (JKS). */
  password?: string;
}

const MAX_DEPTH = 8;

/** How a file is read, by its name; undefined: not a certificate file, not opened. */
export function fileFormat(path: string): ValueFormat | undefined {
  const name = basename(path).toLowerCase();
  if (/\.(crt|pem|cer|der)$/.test(name)) return 'pem';
  if (/\.(conf|kubeconfig)$/.test(name) || name === 'kubeconfig') return 'kubeconfig';
  if (/\.(p12|pfx|jks|jceks)$/.test(name)) return 'keystore';
  return undefined;
}

/** One summary per certificate file found (files reached twice through symlinks are read once). */
export async function scanFiles(o: FileScanOptions): Promise<ObjectSummary[]> {
  const out: ObjectSummary[] = [];
  const seen = new Set<string>();
  const label = (p: string) =>
    o.stripPrefix && p.startsWith(o.stripPrefix) ? p.slice(o.stripPrefix.length) || '/' : p;
  const problem = (path: string, message: string) => {
    const s = emptySummary(X509Source.file, '', label(path));
    s.problems.push({ key: '', reason: 'unreadable', message });
    out.push(s);
  };
  const visit = async (path: string, depth: number, explicit: boolean): Promise<void> => {
    let real: string;
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      real = await realpath(path);
      info = await stat(real);
    } catch (err) {
      if (explicit) problem(path, `cannot be opened: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      return;
    }
    if (seen.has(real)) return;
    if (info.isDirectory()) {
      seen.add(real);
      if (depth >= MAX_DEPTH) return;
      let entries: string[];
      try {
        entries = await readdir(real);
      } catch (err) {
        problem(path, `cannot be listed: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        return;
      }
      for (const entry of entries.sort()) {
        // Kubernetes volumes: `..data` and `..2024_…` hold the same files as the symlinks beside them.
        if (entry.startsWith('..')) continue;
        await visit(join(path, entry), depth + 1, false);
      }
      return;
    }
    const format = fileFormat(path);
    if (!info.isFile() || (!format && !explicit)) return;
    seen.add(real);
    const summary = emptySummary(X509Source.file, '', label(path));
    if (info.size > MAX_VALUE_BYTES) {
      summary.problems.push({ key: '', reason: 'too-large', message: `${info.size} bytes: not read` });
    } else {
      let bytes: Buffer;
      try {
        bytes = await readFile(real);
      } catch (err) {
        problem(path, `cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
        return;
      }
      addValue(summary, '', bytes, format ?? 'pem', o.password);
    }
    out.push(summary);
  };
  for (const p of o.paths) await visit(p, 0, true);
  return out;
}
