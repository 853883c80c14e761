import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  type CertSummary,
  isPkiError,
  keyMatchesCertificate,
  readCertificateSummary,
  splitPem,
} from '../pki/index.ts';
import { certFields, certificateProblems, type ScanRow } from './scan-rows.ts';

/** Larger files are reported, not read: no certificate file is this big. */
const MAX_FILE_BYTES = 8 * 1024 * 1024;

function fileRow(
  name: string,
  source: string,
  cert: CertSummary | null,
  now: number,
  problems: string[],
): ScanRow {
  const expired = cert !== null && cert.notAfter <= now;
  problems.push(...certificateProblems(cert));
  if (expired) problems.push(`expired ${new Date(cert.notAfter).toISOString()}`);
  return {
    kind: 'File',
    namespace: null,
    name,
    source,
    managed: false,
    issuer: cert?.issuerCommonName ?? null,
    ...certFields(cert, now),
    renewalTime: null,
    plannedRenewal: null,
    state: cert === null ? 'invalid' : expired ? 'expired' : 'valid',
    controllerState: null,
    problems,
  };
}

/**
 * Rows for PEM files (one per certificate; a bundle gives several), kubeconfig files (their
 * embedded or referenced client and CA certificates), and DER certificates, found in the given
 * files and, recursively, directories. A file that is none of these gets a row with the reason:
 * reported, never fatal. A file reached twice (a Secret volume's `..data` symlinks) is read once.
 */
export async function scanPaths(paths: string[], now: number): Promise<ScanRow[]> {
  const rows: ScanRow[] = [];
  const seen = new Set<string>();
  const visit = async (path: string): Promise<void> => {
    let real: string;
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      real = await realpath(path);
      info = await stat(real);
    } catch (err) {
      rows.push(
        fileRow(path, 'file', null, now, [
          `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        ]),
      );
      return;
    }
    if (info.isDirectory()) {
      if (seen.has(real)) return;
      seen.add(real);
      const entries = await readdir(real).catch(() => [] as string[]);
      for (const entry of entries.sort()) {
        // Kubernetes Secret volumes: `..data` and `..2024_…` hold the same files as the symlinks.
        if (entry.startsWith('..')) continue;
        await visit(join(path, entry));
      }
      return;
    }
    if (!info.isFile() || seen.has(real)) return;
    seen.add(real);
    if (info.size > MAX_FILE_BYTES) {
      rows.push(fileRow(path, 'file', null, now, [`not read: larger than ${MAX_FILE_BYTES} bytes`]));
      return;
    }
    let bytes: Buffer;
    try {
      bytes = await readFile(real);
    } catch (err) {
      rows.push(
        fileRow(path, 'file', null, now, [
          `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        ]),
      );
      return;
    }
    rows.push(...(await rowsOfFile(path, bytes, now)));
  };
  for (const p of paths) await visit(p);
  return rows;
}

async function rowsOfFile(path: string, bytes: Buffer, now: number): Promise<ScanRow[]> {
  const text = bytes.toString('latin1');
  if (text.includes('-----BEGIN ')) return pemRows(path, text, 'certificate', now);
  if (bytes[0] === 0x30) {
    try {
      return [fileRow(path, 'DER certificate', readCertificateSummary(new Uint8Array(bytes)), now, [])];
    } catch {
      // not DER after all: fall through
    }
  }
  const kubeconfig = await kubeconfigRows(path, bytes.toString('utf8'), now);
  if (kubeconfig) return kubeconfig;
  return [
    fileRow(path, 'file', null, now, [
      'not a certificate: no PEM block, DER certificate or kubeconfig found',
    ]),
  ];
}

/** One row per CERTIFICATE block; a key in the same text is checked against the first one. */
function pemRows(name: string, text: string, source: string, now: number): ScanRow[] {
  let blocks: ReturnType<typeof splitPem>;
  try {
    blocks = splitPem(text);
  } catch (err) {
    return [
      fileRow(name, source, null, now, [`cannot be parsed: ${isPkiError(err) ? err.message : String(err)}`]),
    ];
  }
  const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
  const key = blocks.find((b) => b.label.endsWith('PRIVATE KEY'));
  if (certs.length === 0) {
    const labels = [...new Set(blocks.map((b) => b.label))].join(', ');
    return [fileRow(name, source, null, now, [`no certificate (holds ${labels || 'no PEM block'})`])];
  }
  return certs.map((block, i) => {
    const label = certs.length > 1 ? `${name}#${i + 1}` : name;
    const src = certs.length > 1 ? `${source} ${i + 1} of ${certs.length}` : source;
    try {
      const cert = readCertificateSummary(block.der);
      const problems: string[] = [];
      if (key && i === 0) {
        const pem = text.slice(text.indexOf(`-----BEGIN ${key.label}-----`));
        try {
          if (!keyMatchesCertificate(pem, block.der))
            problems.push('the private key in the file does not match the certificate');
        } catch (err) {
          problems.push(`the private key cannot be read: ${isPkiError(err) ? err.message : String(err)}`);
        }
      }
      return fileRow(label, src, cert, now, problems);
    } catch (err) {
      return fileRow(label, src, null, now, [
        `cannot be parsed: ${isPkiError(err) ? err.message : String(err)}`,
      ]);
    }
  });
}

interface KubeconfigDoc {
  clusters?: Array<{ name?: string; cluster?: Record<string, unknown> }>;
  users?: Array<{ name?: string; user?: Record<string, unknown> }>;
}

/** Rows for a kubeconfig's certificates, or undefined when the text is not a kubeconfig. */
async function kubeconfigRows(path: string, text: string, now: number): Promise<ScanRow[] | undefined> {
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 100 });
  } catch {
    return undefined;
  }
  if (!doc || typeof doc !== 'object') return undefined;
  const kc = doc as KubeconfigDoc & { kind?: unknown };
  if (kc.kind !== 'Config' && !Array.isArray(kc.clusters) && !Array.isArray(kc.users)) return undefined;
  const rows: ScanRow[] = [];
  const base = dirname(resolve(path));
  const add = async (source: string, data: unknown, file: unknown, keyData?: unknown) => {
    let pem: string | undefined;
    let problem: string | undefined;
    if (typeof data === 'string' && data !== '') pem = Buffer.from(data, 'base64').toString('latin1');
    else if (typeof file === 'string' && file !== '') {
      try {
        pem = await readFile(resolve(base, file), 'latin1');
      } catch (err) {
        problem = `${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
      }
    } else return;
    if (pem === undefined) {
      rows.push(fileRow(path, source, null, now, [problem ?? 'empty']));
      return;
    }
    const keyPem =
      typeof keyData === 'string' && keyData !== '' ? Buffer.from(keyData, 'base64').toString('latin1') : '';
    rows.push(...pemRows(path, pem + (keyPem ? `\n${keyPem}` : ''), source, now));
  };
  for (const c of kc.clusters ?? []) {
    const cluster = c?.cluster ?? {};
    await add(
      `kubeconfig cluster ${c?.name ?? '?'}: CA`,
      cluster['certificate-authority-data'],
      cluster['certificate-authority'],
    );
  }
  for (const u of kc.users ?? []) {
    const user = u?.user ?? {};
    await add(
      `kubeconfig user ${u?.name ?? '?'}: client certificate`,
      user['client-certificate-data'],
      user['client-certificate'],
      user['client-key-data'],
    );
  }
  if (rows.length === 0)
    rows.push(
      fileRow(path, 'kubeconfig', null, now, [
        'a kubeconfig without certificates (token or exec credentials)',
      ]),
    );
  return rows;
}
