/**
 * Defense in depth: the same certificate as node:crypto's X509Certificate (OpenSSL) reads it.
 * der.ts is fast and strict, but it is one reader; before the controller acts on an identity
 * (copies names into a new certificate, checks them against an issuer's allow-lists) or signs
 * with a CA, OpenSSL must accept the certificate and read the same identity. About 25 µs per
 * certificate (bench/parse.bench.mjs), so it runs only where an identity is acted on.
 */
import { hash, X509Certificate } from 'node:crypto';
import { type CertSummary, unacceptableError } from './der.ts';
import { PkiError } from './errors.ts';
import { canonicalIp } from './ip.ts';

/** The fields the product uses, as OpenSSL reads them. */
export interface OpenSslReading {
  notBefore: number;
  notAfter: number;
  /** Lowercase hex as OpenSSL prints it (a negative serial keeps OpenSSL's sign). */
  serialHex: string;
  subjectCommonName: string | undefined;
  issuerCommonName: string | undefined;
  /** undefined: the subjectAltName extension is absent or OpenSSL cannot decode it. */
  subjectAltName: string | undefined;
  dnsNames: string[];
  ipAddresses: string[];
  uris: string[];
  /** Entries of the other six GeneralName kinds, by OpenSSL's label. */
  otherNames: string[];
  isCA: boolean;
  /** SHA-256 of the public key as node:crypto exports it; undefined when it cannot load the key. */
  publicKeySha256: string | undefined;
}

function refused(reason: string): PkiError {
  return new PkiError('CERT_UNACCEPTABLE', `certificate is not acceptable to OpenSSL: ${reason}`, {
    field: 'openssl',
  });
}

/**
 * Splits node's subjectAltName text ("DNS:a, IP Address:1.2.3.4, ..."). Node quotes a value
 * holding a comma, quote, backslash or control character as a JSON string, so the list splits
 * unambiguously; anything else is a format this reader does not know (undefined).
 */
export function splitAltNames(text: string): { kind: string; value: string }[] | undefined {
  const out: { kind: string; value: string }[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) return undefined;
    const kind = text.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (text[j] === '"') {
      let k = j + 1;
      while (k < text.length && text[k] !== '"') k += text[k] === '\\' ? 2 : 1;
      if (k >= text.length) return undefined;
      try {
        value = JSON.parse(text.slice(j, k + 1)) as string;
      } catch {
        return undefined;
      }
      j = k + 1;
    } else {
      const sep = text.indexOf(', ', j);
      const end = sep < 0 ? text.length : sep;
      value = text.slice(j, end);
      j = end;
    }
    out.push({ kind, value });
    if (j === text.length) break;
    if (!text.startsWith(', ', j)) return undefined;
    i = j + 2;
  }
  return out;
}

/**
 * The first CN of node's multi-line name text ("O=x + CN=a\\, b\nCN=second"): RDNs one per line
 * in DER order, multi-valued RDNs joined by " + ", values escaped per RFC 2253 with control bytes
 * as \\XX. (toLegacyObject() would give it parsed, but crashes the process on a certificate
 * whose public key OpenSSL cannot load, so it is never called.)
 */
export function firstCnOf(text: string | undefined): string | undefined {
  // node returns undefined (not "") for an empty name, whatever its typings say.
  if (text === undefined) return undefined;
  for (const line of text.split('\n')) {
    let i = 0;
    while (i < line.length) {
      const eq = line.indexOf('=', i);
      if (eq < 0) return undefined;
      const type = line.slice(i, eq);
      const bytes: number[] = [];
      let j = eq + 1;
      while (j < line.length) {
        const c = String.fromCodePoint(line.codePointAt(j)!);
        if (c === '\\') {
          const hexPair = line.slice(j + 1, j + 3);
          if (/^[0-9A-Fa-f]{2}$/.test(hexPair)) {
            bytes.push(Number.parseInt(hexPair, 16));
            j += 3;
          } else {
            const next = String.fromCodePoint(line.codePointAt(j + 1) ?? 0x5c);
            bytes.push(...Buffer.from(next, 'utf8'));
            j += 1 + next.length;
          }
          continue;
        }
        if (line.startsWith(' + ', j)) break;
        bytes.push(...Buffer.from(c, 'utf8'));
        j += c.length;
      }
      if (type === 'CN') return Buffer.from(bytes).toString('utf8');
      i = j + 3;
    }
  }
  return undefined;
}

/**
 * Reads `der` with node:crypto; CERT_UNACCEPTABLE (field `openssl`) when OpenSSL refuses it.
 * `identityOnly` reads just what the cross-check compares (subject CN, SAN, CA): the dates,
 * serial, issuer and public key then stay empty, which saves about half the cost.
 */
export function readWithOpenSsl(der: Uint8Array, identityOnly = false): OpenSslReading {
  let x: X509Certificate;
  try {
    x = new X509Certificate(der);
  } catch {
    throw refused('it does not decode');
  }
  const san = x.subjectAltName;
  const reading: OpenSslReading = {
    notBefore: identityOnly ? 0 : x.validFromDate.getTime(),
    notAfter: identityOnly ? 0 : x.validToDate.getTime(),
    serialHex: identityOnly ? '' : x.serialNumber.toLowerCase(),
    subjectCommonName: firstCnOf(x.subject),
    issuerCommonName: identityOnly ? undefined : firstCnOf(x.issuer),
    subjectAltName: san,
    dnsNames: [],
    ipAddresses: [],
    uris: [],
    otherNames: [],
    isCA: x.ca,
    publicKeySha256: undefined,
  };
  if (!identityOnly) {
    try {
      reading.publicKeySha256 = hash('sha256', x.publicKey.export({ type: 'spki', format: 'der' }), 'hex');
    } catch {
      // OpenSSL parsed the certificate but cannot load its key (an unknown or malformed key).
    }
  }
  if (san !== undefined) {
    const entries = splitAltNames(san);
    if (entries === undefined) throw refused('its subjectAltName text cannot be split');
    for (const { kind, value } of entries) {
      if (kind === 'DNS') reading.dnsNames.push(value);
      else if (kind === 'URI') reading.uris.push(value);
      else if (kind === 'IP Address') {
        const ip = canonicalIp(value);
        if (ip === undefined) throw refused(`it reads an iPAddress as ${JSON.stringify(value)}`);
        reading.ipAddresses.push(ip);
      } else reading.otherNames.push(kind);
    }
  }
  return reading;
}

const sameList = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * The first place OpenSSL's reading of the identity differs from der.ts's summary (subject CN,
 * dNSName, iPAddress and URI SANs, in order), or undefined when they agree.
 */
export function identityDifference(summary: CertSummary, reading: OpenSslReading): string | undefined {
  if (summary.subjectCommonName !== reading.subjectCommonName) return 'the subject CN';
  if (!sameList(summary.dnsNames, reading.dnsNames)) return 'the DNS names';
  if (!sameList(summary.ipAddresses, reading.ipAddresses)) return 'the IP addresses';
  if (!sameList(summary.uris, reading.uris)) return 'the URIs';
  return undefined;
}

/**
 * Throws CERT_UNACCEPTABLE unless the certificate is acceptable to act on by both readings: no
 * problem in der.ts's summary, and OpenSSL accepts it and reads the same identity.
 */
export function assertActionable(der: Uint8Array, summary: CertSummary): OpenSslReading {
  const unacceptable = unacceptableError(summary);
  if (unacceptable) throw unacceptable;
  const reading = readWithOpenSsl(der, true);
  const diff = identityDifference(summary, reading);
  if (diff !== undefined) throw refused(`it reads ${diff} differently`);
  return reading;
}

/**
 * Throws ISSUER_NOT_CA unless `der` may sign certificates: acceptable by both readings, a CA by
 * both (basicConstraints cA, OpenSSL's X509_check_ca), and keyUsage present with keyCertSign.
 */
export function assertSigningCa(der: Uint8Array, summary: CertSummary): void {
  const name = summary.subjectCommonName ? ` "${summary.subjectCommonName}"` : '';
  let reading: OpenSslReading;
  try {
    reading = assertActionable(der, summary);
  } catch (err) {
    const why = err instanceof PkiError ? err.message : String(err);
    throw new PkiError('ISSUER_NOT_CA', `issuer certificate${name} cannot be used as a CA: ${why}`, {
      ...(err instanceof PkiError && err.field !== undefined ? { field: err.field } : {}),
    });
  }
  if (!summary.isCA) {
    throw new PkiError(
      'ISSUER_NOT_CA',
      `issuer certificate${name} is not a CA (basicConstraints cA is not set)`,
      {
        field: 'basicConstraints',
      },
    );
  }
  if (!summary.keyCertSign) {
    throw new PkiError(
      'ISSUER_NOT_CA',
      `issuer certificate${name} is not a CA (keyUsage lacks keyCertSign)`,
      {
        field: 'keyUsage',
      },
    );
  }
  if (!reading.isCA) {
    throw new PkiError('ISSUER_NOT_CA', `issuer certificate${name} is not a CA as OpenSSL reads it`, {
      field: 'openssl',
    });
  }
}

/**
 * The summary, with an `openssl` problem added when der.ts finds it acceptable but OpenSSL refuses
 * it or reads its identity differently. For records the controller may act on.
 */
export function withOpenSslCheck(der: Uint8Array, summary: CertSummary): CertSummary {
  if (summary.problems.length > 0) return summary;
  try {
    assertActionable(der, summary);
  } catch (err) {
    if (!(err instanceof PkiError)) throw err;
    summary.problems = [
      { field: 'openssl', reason: err.message.replace(/^certificate is not acceptable to OpenSSL: /, '') },
    ];
  }
  return summary;
}
