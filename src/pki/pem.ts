import { PkiError } from './errors.ts';

export interface PemBlock {
  /** The label between BEGIN/END, e.g. "CERTIFICATE" or "EC PRIVATE KEY". */
  label: string;
  der: Uint8Array;
}

const BEGIN = /-----BEGIN ([A-Z0-9][A-Z0-9 ]*)?-----/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Splits PEM text into its blocks, in order. Text outside blocks is ignored (so `openssl x509
 * -text` output or comments are fine), as are CRLF line endings and whitespace inside the base64.
 * Throws PEM_MALFORMED on an unterminated block, an END label that does not match its BEGIN,
 * RFC 1421 headers (encrypted legacy keys), or base64 that does not decode. Empty input or input
 * without any block returns [].
 */
export function splitPem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  BEGIN.lastIndex = 0;
  let pos = 0;
  for (;;) {
    BEGIN.lastIndex = pos;
    const m = BEGIN.exec(text);
    if (m === null) break;
    const label = m[1] ?? '';
    if (label === '' || label.endsWith(' ')) {
      throw new PkiError('PEM_MALFORMED', `PEM block ${blocks.length + 1} has an invalid label`);
    }
    const bodyStart = m.index + m[0].length;
    const endMarker = `-----END ${label}-----`;
    const endAt = text.indexOf('-----END ', bodyStart);
    if (endAt < 0) {
      throw new PkiError('PEM_MALFORMED', `PEM block ${blocks.length + 1} (${label}) is not terminated`);
    }
    if (!text.startsWith(endMarker, endAt)) {
      throw new PkiError(
        'PEM_MALFORMED',
        `PEM block ${blocks.length + 1} (${label}) ends with a different label`,
      );
    }
    const body = text.slice(bodyStart, endAt);
    if (body.includes(':')) {
      throw new PkiError(
        'PEM_MALFORMED',
        `PEM block ${blocks.length + 1} (${label}) has headers; encrypted PEM is not supported`,
      );
    }
    const b64 = body.replace(/\s+/g, '');
    if (b64.length === 0 || b64.length % 4 !== 0 || !BASE64.test(b64)) {
      throw new PkiError('PEM_MALFORMED', `PEM block ${blocks.length + 1} (${label}) has invalid base64`);
    }
    const buf = Buffer.from(b64, 'base64');
    blocks.push({ label, der: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) });
    pos = endAt + endMarker.length;
  }
  return blocks;
}

/**
 * The DER of every CERTIFICATE block, in order (leaf first for a normal chain file). Other blocks
 * (keys, parameters) are skipped. Throws NO_CERTIFICATE when there is none, PEM_MALFORMED as
 * splitPem.
 */
export function certificatesFromPem(text: string): Uint8Array[] {
  const certs = splitPem(text)
    .filter((b) => b.label === 'CERTIFICATE')
    .map((b) => b.der);
  if (certs.length === 0) {
    throw new PkiError('NO_CERTIFICATE', 'no CERTIFICATE block found in PEM text');
  }
  return certs;
}

/** Encodes DER as a PEM block with 64-column base64 and a trailing newline. */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  let out = `-----BEGIN ${label}-----\n`;
  for (let i = 0; i < b64.length; i += 64) {
    out += `${b64.slice(i, i + 64)}\n`;
  }
  return `${out}-----END ${label}-----\n`;
}
