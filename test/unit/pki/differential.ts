/**
 * Differential reading of certificates: der.ts alone (no node:crypto cross-check) against
 * node:crypto's X509Certificate (OpenSSL). Used by der.differential.test.ts and by
 * differential-report.ts, which prints the agreement table and mutant outcomes.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import type { CertSummary } from '../../../src/pki/der.ts';
import * as der from '../../../src/pki/der-write.ts';
import { PkiError } from '../../../src/pki/errors.ts';
import { type OpenSslReading, readWithOpenSsl } from '../../../src/pki/x509-check.ts';

export type DerOutcome =
  | { kind: 'malformed' }
  | { kind: 'readable'; summary: CertSummary }
  | { kind: 'acceptable'; summary: CertSummary };

/** der.ts's verdict. Anything thrown but PkiError('DER_MALFORMED') propagates: a test failure. */
export function derOutcome(read: (d: Uint8Array) => CertSummary, d: Uint8Array): DerOutcome {
  let summary: CertSummary;
  try {
    summary = read(d);
  } catch (err) {
    // By name too: differential-report.ts can load another copy of der.ts, with its own class.
    const named = err instanceof PkiError || (err instanceof Error && err.name === 'PkiError');
    if (named && (err as PkiError).code === 'DER_MALFORMED') return { kind: 'malformed' };
    throw err;
  }
  // A reader without `problems` (the version before two levels) calls everything acceptable.
  return (summary.problems?.length ?? 0) === 0
    ? { kind: 'acceptable', summary }
    : { kind: 'readable', summary };
}

export function opensslOutcome(d: Uint8Array): OpenSslReading | undefined {
  try {
    return readWithOpenSsl(d);
  } catch (err) {
    if (err instanceof PkiError && err.code === 'CERT_UNACCEPTABLE') return undefined;
    throw err;
  }
}

export const FIELDS = [
  'notBefore',
  'notAfter',
  'serial',
  'subjectCN',
  'issuerCN',
  'dnsNames',
  'ipAddresses',
  'uris',
  'otherSanKinds',
  'isCA',
  'publicKey',
] as const;
export type Field = (typeof FIELDS)[number];

const same = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * The product's fields on which the two readings disagree. Serial: OpenSSL prints a negative
 * serial as "-" and the magnitude; der.ts keeps the octets (flagged), so a negative serial is
 * compared by its flag only. Public key: for the key types the product uses (for others der.ts
 * hashes the bytes as written and claims no canonical form) when OpenSSL can load it. isCA: OpenSSL also counts a v1 self-signed root as a CA, which der.ts
 * never does (it must be at least as strict).
 */
export function disagreements(s: CertSummary, r: OpenSslReading, d: Uint8Array): Field[] {
  const out: Field[] = [];
  if (s.notBefore !== r.notBefore) out.push('notBefore');
  if (s.notAfter !== r.notAfter) out.push('notAfter');
  if (
    s.serialFlag === 'negative'
      ? !r.serialHex.startsWith('-')
      : s.serialHex !== r.serialHex.replace(/^0+(?=.)/, '')
  )
    if (!(s.serialHex.replace(/^0+(?=.)/, '') === r.serialHex.replace(/^0+(?=.)/, ''))) out.push('serial');
  if (s.subjectCommonName !== r.subjectCommonName) out.push('subjectCN');
  if (s.issuerCommonName !== r.issuerCommonName) out.push('issuerCN');
  if (!same(s.dnsNames, r.dnsNames)) out.push('dnsNames');
  if (!same(s.ipAddresses, r.ipAddresses)) out.push('ipAddresses');
  if (!same(s.uris, r.uris)) out.push('uris');
  // A SAN OpenSSL decodes but der.ts holds nothing of (or the reverse) shows as a count mismatch.
  const derHasSan = s.dnsNames.length + s.ipAddresses.length + s.uris.length > 0;
  if (derHasSan && r.subjectAltName === undefined) out.push('otherSanKinds');
  if (s.isCA !== r.isCA && !(r.isCA && !s.isCA && isV1(d))) out.push('isCA');
  // der.ts canonicalises the keys the product supports; others are hashed as written.
  // (A reader from before #19 has only spkiSha256, the bytes as written.) A key OpenSSL cannot
  // load (an EC point off its curve) is not compared: der.ts does not check curve arithmetic, and
  // such a key matches no private key, so every key check refuses it.
  const publicKey = s.publicKeySha256 ?? s.spkiSha256;
  if (s.keyAlgorithm !== 'unknown' && r.publicKeySha256 !== undefined && publicKey !== r.publicKeySha256)
    out.push('publicKey');
  return out;
}

function isV1(d: Uint8Array): boolean {
  // TBSCertificate starts with [0] version only from v2 on.
  const tbsAt = d[1]! & 0x80 ? 2 + (d[1]! & 0x7f) : 2;
  const tbsHeader = d[tbsAt + 1]! & 0x80 ? 2 + (d[tbsAt + 1]! & 0x7f) : 2;
  return d[tbsAt + tbsHeader] !== 0xa0;
}

// ---------------------------------------------------------------------------------------------
// Corpus

export const CORPUS_DIR = join(import.meta.dirname, 'corpus');

/** Every certificate of the committed corpus, by file name (PEM bodies decoded by hand so any label works). */
export function corpus(): { name: string; der: Uint8Array }[] {
  return readdirSync(CORPUS_DIR)
    .filter((f) => f.endsWith('.pem'))
    .sort()
    .map((name) => {
      const text = readFileSync(join(CORPUS_DIR, name), 'latin1');
      const body = text.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
      return { name, der: new Uint8Array(Buffer.from(body, 'base64')) };
    });
}

// ---------------------------------------------------------------------------------------------
// Generated certificates: every key type, every GeneralName kind, every string type.

const oid = (dotted: string): Uint8Array => der.oid(dotted);
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

export function name(rdns: [string, number, Uint8Array][][]): Uint8Array {
  return der.sequence(
    rdns.map((rdn) =>
      der.set(rdn.map(([type, tag, value]) => der.sequence([oid(type), der.tlv(tag, value)]))),
    ),
  );
}

export const CN = '2.5.4.3';
export const O = '2.5.4.10';

export interface CertSpec {
  key: KeyObject;
  /** Signature AlgorithmIdentifier contents and node:crypto digest; derived from the key when absent. */
  subject?: Uint8Array;
  issuer?: Uint8Array;
  san?: Uint8Array[];
  ca?: boolean;
  serial?: Uint8Array;
  extraExtensions?: Uint8Array[];
  spki?: Uint8Array;
}

function sigAlg(key: KeyObject): { alg: Uint8Array; digest: string | null } {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { alg: der.sequence([oid('1.2.840.113549.1.1.11'), der.NULL]), digest: 'sha256' };
    case 'ec':
      return key.asymmetricKeyDetails?.namedCurve === 'secp384r1'
        ? { alg: der.sequence([oid('1.2.840.10045.4.3.3')]), digest: 'sha384' }
        : { alg: der.sequence([oid('1.2.840.10045.4.3.2')]), digest: 'sha256' };
    default:
      return { alg: der.sequence([oid('1.3.101.112')]), digest: null };
  }
}

function ext(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return der.sequence([oid(id), ...(critical ? [der.TRUE] : []), der.octetString(value)]);
}

const time = (ms: number): Uint8Array => {
  const iso = new Date(ms).toISOString();
  return der.tlv(
    0x17,
    utf8(
      iso.slice(2, 4) +
        iso.slice(5, 7) +
        iso.slice(8, 10) +
        iso.slice(11, 13) +
        iso.slice(14, 16) +
        iso.slice(17, 19) +
        'Z',
    ),
  );
};

/** A signed certificate built field by field, so tests can put in what sign.ts never writes. */
export function buildCertificate(spec: CertSpec): Uint8Array {
  const { alg, digest } = sigAlg(spec.key);
  const pub = spec.spki ?? new Uint8Array(createPublicKeyDer(spec.key));
  const subject = spec.subject ?? name([[[CN, 0x0c, utf8('generated')]]]);
  const exts: Uint8Array[] = [];
  exts.push(ext('2.5.29.19', true, der.sequence(spec.ca ? [der.TRUE] : [])));
  exts.push(ext('2.5.29.15', true, der.namedBits(spec.ca ? 0x60 : 0x01)));
  if (spec.san) exts.push(ext('2.5.29.17', false, der.sequence(spec.san)));
  exts.push(...(spec.extraExtensions ?? []));
  const tbs = der.sequence([
    der.tlv(0xa0, der.tlv(0x02, Uint8Array.of(2))),
    der.tlv(0x02, spec.serial ?? Uint8Array.of(0x01, 0x23, 0x45)),
    alg,
    spec.issuer ?? subject,
    der.sequence([time(Date.UTC(2026, 0, 1)), time(Date.UTC(2027, 0, 1, 12, 30, 15))]),
    subject,
    pub,
    der.tlv(0xa3, der.sequence(exts)),
  ]);
  const signature = sign(digest, tbs, spec.key);
  return der.sequence([tbs, alg, der.bitString(new Uint8Array(signature))]);
}

function createPublicKeyDer(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: 'spki', format: 'der' });
}

/** An RSA SubjectPublicKeyInfo whose AlgorithmIdentifier omits the NULL parameters (valid, seen in real corpora). */
export function rsaSpkiWithoutNull(key: KeyObject): Uint8Array {
  const rsaPublicKey = new Uint8Array(createPublicKey(key).export({ type: 'pkcs1', format: 'der' }));
  return der.sequence([der.sequence([oid('1.2.840.113549.1.1.1')]), der.bitString(rsaPublicKey)]);
}

export function keys(): { name: string; key: KeyObject }[] {
  return [
    { name: 'ecdsa-p256', key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey },
    { name: 'ecdsa-p384', key: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey },
    { name: 'rsa-2048', key: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey },
    { name: 'ed25519', key: generateKeyPairSync('ed25519').privateKey },
  ];
}

/** One GeneralName of each of the nine kinds, well-formed. */
export function everyGeneralName(): { kind: string; tlv: Uint8Array }[] {
  return [
    {
      kind: 'otherName',
      tlv: der.tlv(0xa0, [
        oid('1.3.6.1.4.1.311.20.2.3'),
        der.tlv(0xa0, der.tlv(0x0c, utf8('user@example.com'))),
      ]),
    },
    { kind: 'rfc822Name', tlv: der.tlv(0x81, utf8('ops@example.com')) },
    { kind: 'dNSName', tlv: der.tlv(0x82, utf8('svc.example.com')) },
    { kind: 'x400Address', tlv: der.tlv(0xa3, [der.sequence([der.tlv(0x13, utf8('x'))])]) },
    {
      kind: 'directoryName',
      tlv: der.tlv(0xa4, name([[[CN, 0x0c, utf8('dir')]], [[O, 0x13, utf8('Org')]]])),
    },
    { kind: 'ediPartyName', tlv: der.tlv(0xa5, [der.tlv(0xa1, der.tlv(0x0c, utf8('party')))]) },
    { kind: 'uniformResourceIdentifier', tlv: der.tlv(0x86, utf8('spiffe://cluster.local/ns/a/sa/b')) },
    { kind: 'iPAddress', tlv: der.tlv(0x87, Uint8Array.of(192, 0, 2, 7)) },
    {
      kind: 'iPAddress6',
      tlv: der.tlv(0x87, Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1)),
    },
    { kind: 'registeredID', tlv: der.tlv(0x88, oid('1.2.3.4').subarray(2)) },
  ];
}

/** CN values in every standard string type (and the encodings of one string in each). */
export function everyStringType(): { type: string; tag: number; value: Uint8Array }[] {
  const bmp = (s: string) => new Uint8Array(Buffer.from(s, 'utf16le').swap16());
  const ucs4 = (s: string) => {
    const out: number[] = [];
    for (const ch of s) {
      const cp = ch.codePointAt(0)!;
      out.push(cp >>> 24, (cp >> 16) & 0xff, (cp >> 8) & 0xff, cp & 0xff);
    }
    return Uint8Array.from(out);
  };
  return [
    { type: 'UTF8String', tag: 0x0c, value: utf8('café ☃ 𝄞') },
    { type: 'PrintableString', tag: 0x13, value: utf8('Example Host 1') },
    { type: 'TeletexString', tag: 0x14, value: Uint8Array.from([0x63, 0x61, 0x66, 0xe9]) },
    { type: 'IA5String', tag: 0x16, value: utf8('host@example') },
    { type: 'VisibleString', tag: 0x1a, value: utf8('visible~host') },
    { type: 'NumericString', tag: 0x12, value: utf8('0123 456') },
    { type: 'BMPString', tag: 0x1e, value: bmp('bmp café') },
    { type: 'UniversalString', tag: 0x1c, value: ucs4('univ 𝄞') },
  ];
}

// ---------------------------------------------------------------------------------------------
// Mutants: changes that keep the framing (so the reader gets past the outer structure) and a few
// that break it.

interface Prim {
  at: number; // tag offset
  start: number;
  end: number;
}

/** Every primitive TLV of a DER blob, descending into constructed ones and into OCTET STRING / BIT STRING wrappers that hold DER. */
export function primitives(d: Uint8Array): Prim[] {
  const out: Prim[] = [];
  const walk = (start: number, end: number, depth: number): void => {
    let p = start;
    while (p < end) {
      if (p + 2 > end) return;
      const tag = d[p]!;
      let len = d[p + 1]!;
      let q = p + 2;
      if (len & 0x80) {
        const n = len & 0x7f;
        if (n === 0 || n > 3 || q + n > end) return;
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + d[q++]!;
      }
      if (q + len > end) return;
      if (tag & 0x20) walk(q, q + len, depth + 1);
      else {
        out.push({ at: p, start: q, end: q + len });
        // extnValue and similar wrappers hold DER: walk inside too.
        if ((tag === 0x04 || tag === 0x03) && depth < 12 && len > 2)
          walk(tag === 0x03 ? q + 1 : q, q + len, depth + 1);
      }
      p = q + len;
    }
  };
  walk(0, d.length, 0);
  return out;
}

const TAGS = [
  0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c,
  0x1e, 0x80, 0x81, 0x82, 0x83, 0x86, 0x87, 0x88, 0x89,
];

/** fast-check arbitrary of mutants of the given base certificates. */
export function mutants(bases: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const prims = bases.map(primitives);
  return fc
    .tuple(
      fc.nat({ max: bases.length - 1 }),
      fc.nat(),
      fc.integer({ min: 0, max: 9 }),
      fc.uint8Array({ minLength: 1, maxLength: 4 }),
      fc.nat(),
    )
    .map(([bi, pick, kind, bytes, pos]) => {
      const base = bases[bi]!;
      const m = base.slice();
      const list = prims[bi]!;
      const prim = list[pick % list.length]!;
      const span = prim.end - prim.start;
      if (kind <= 3 && span > 0) {
        // overwrite content bytes of one primitive
        for (let i = 0; i < bytes.length; i++) m[prim.start + ((pos + i * 7) % span)] = bytes[i]!;
      } else if (kind <= 5) {
        m[prim.at] = TAGS[bytes[0]! % TAGS.length]!; // another primitive tag
      } else if (kind === 6 && span > 0) {
        const at = prim.start + (pos % span);
        m[at] = m[at]! ^ (1 << (bytes[0]! & 7)); // one bit of content
      } else if (kind === 7 && span > 0) {
        // a high bit or a surrogate-ish pattern in strings
        m[prim.start + (pos % span)] = [0x80, 0xc0, 0xed, 0xff, 0xd8, 0x00][bytes[0]! % 6]!;
      } else {
        const at = pos % m.length;
        m[at] = m[at]! ^ (bytes[0]! | 1); // anywhere, framing included
      }
      return m;
    });
}
