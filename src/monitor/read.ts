/**
 * The monitor's one door into certificate parsing: bytes in, the few fields the metrics need
 * out, or a ReadError with a reason. Everything the monitor reads (Secret and ConfigMap values,
 * keystores, kubeconfigs, webhook CA bundles, node files) goes through `readValue`; only
 * `readX509` touches pki/der.ts, so a stricter DER reader changes one function here.
 */
import { parse as parseYaml } from 'yaml';
import { isPkiError, readCertificateSummary, splitPem } from '../pki/index.ts';
import { ReadError } from './errors.ts';
import { javaKeystoreCertificates, looksLikeJavaKeystore } from './jks.ts';
import { looksLikePkcs12, pkcs12Certificates } from './pkcs12.ts';

/** What is exported of one certificate. A name that cannot be read is the empty string. */
export interface X509Reading {
  /** ms since the epoch */
  notBefore: number;
  notAfter: number;
  subjectCN: string;
  issuerCN: string;
}

/** The certificates found under one part of a value (`''` for the value itself). */
export interface ValuePart {
  /** Appended to the key label: `:user/NAME` or `:cluster/NAME` for a kubeconfig's entries. */
  part: string;
  certs: X509Reading[];
}

/** How to read a value: PEM (any number of certificates) or one DER certificate; a keystore; a kubeconfig. */
export type ValueFormat = 'pem' | 'keystore' | 'kubeconfig';

/** Values larger than this are not parsed (a Secret or ConfigMap holds at most 1 MiB anyway). */
export const MAX_VALUE_BYTES = 4 * 1024 * 1024;

export function readX509(der: Uint8Array): X509Reading {
  try {
    const s = readCertificateSummary(der);
    return {
      notBefore: s.notBefore,
      notAfter: s.notAfter,
      subjectCN: s.subjectCommonName ?? '',
      issuerCN: s.issuerCommonName ?? '',
    };
  } catch (err) {
    if (isPkiError(err)) throw new ReadError('malformed', err.message);
    throw err;
  }
}

/** Every certificate of a value in the given format. Throws ReadError (never anything else for bad input). */
export function readValue(bytes: Uint8Array, format: ValueFormat, password?: string): ValuePart[] {
  if (bytes.length > MAX_VALUE_BYTES) {
    throw new ReadError('too-large', `${bytes.length} bytes is more than the ${MAX_VALUE_BYTES} read`);
  }
  switch (format) {
    case 'pem':
      return [{ part: '', certs: readPemOrDer(bytes) }];
    case 'keystore':
      return [{ part: '', certs: readKeystore(bytes, password) }];
    case 'kubeconfig':
      return readKubeconfig(bytes);
  }
}

/** PEM text with one or more CERTIFICATE blocks, or a single DER certificate. */
export function readPemOrDer(bytes: Uint8Array): X509Reading[] {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  if (text.includes('-----BEGIN ')) {
    let blocks: ReturnType<typeof splitPem>;
    try {
      blocks = splitPem(text);
    } catch (err) {
      if (isPkiError(err)) throw new ReadError('malformed', err.message);
      throw err;
    }
    const certs = blocks.filter((b) => b.label === 'CERTIFICATE' || b.label === 'TRUSTED CERTIFICATE');
    if (certs.length === 0) throw new ReadError('no-certificate', 'no CERTIFICATE block in the PEM text');
    return certs.map((b) => readX509(b.der));
  }
  if (bytes[0] === 0x30) return [readX509(bytes)];
  throw new ReadError('no-certificate', 'neither PEM nor a DER certificate');
}

/** PKCS#12, JKS or JCEKS, told apart by their first bytes. */
export function readKeystore(bytes: Uint8Array, password: string | undefined): X509Reading[] {
  let ders: Uint8Array[];
  if (looksLikeJavaKeystore(bytes)) ders = javaKeystoreCertificates(bytes, password);
  else if (looksLikePkcs12(bytes)) ders = pkcs12Certificates(bytes, password);
  else throw new ReadError('malformed', 'not a keystore: neither PKCS#12 nor JKS/JCEKS');
  if (ders.length === 0) throw new ReadError('no-certificate', 'the keystore holds no certificate');
  return ders.map(readX509);
}

interface KubeconfigDoc {
  clusters?: unknown;
  users?: unknown;
}

/**
 * The embedded certificates of a kubeconfig: each cluster's `certificate-authority-data` and each
 * user's `client-certificate-data`. File references (`certificate-authority: /path`) are not
 * followed: in a Secret they point nowhere, and on a node the file they name is read in its own
 * right when its directory is monitored.
 */
export function readKubeconfig(bytes: Uint8Array): ValuePart[] {
  let doc: unknown;
  try {
    doc = parseYaml(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'), {
      maxAliasCount: 100,
    });
  } catch {
    throw new ReadError('malformed', 'not a kubeconfig: not YAML');
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw new ReadError('malformed', 'not a kubeconfig');
  const kc = doc as KubeconfigDoc;
  if (!Array.isArray(kc.clusters) && !Array.isArray(kc.users)) {
    throw new ReadError('malformed', 'not a kubeconfig: no clusters or users');
  }
  const parts: ValuePart[] = [];
  const add = (kind: string, entry: unknown, inner: string, field: string) => {
    if (!entry || typeof entry !== 'object') return;
    const e = entry as Record<string, unknown>;
    const body = e[inner];
    if (!body || typeof body !== 'object') return;
    const data = (body as Record<string, unknown>)[field];
    if (typeof data !== 'string' || data === '') return;
    const name = typeof e.name === 'string' ? e.name : '';
    parts.push({ part: `:${kind}/${name}`, certs: readPemOrDer(Buffer.from(data, 'base64')) });
  };
  for (const c of Array.isArray(kc.clusters) ? kc.clusters : [])
    add('cluster', c, 'cluster', 'certificate-authority-data');
  for (const u of Array.isArray(kc.users) ? kc.users : []) add('user', u, 'user', 'client-certificate-data');
  if (parts.length === 0) throw new ReadError('no-certificate', 'the kubeconfig embeds no certificate');
  return parts;
}
