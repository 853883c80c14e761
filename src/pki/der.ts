/**
 * Fast path: a minimal, allocation-light DER walk over an X.509 certificate that extracts only
 * what the controller needs to decide about renewal. It does not verify signatures and does not
 * interpret most extensions; it does check the certificate's structure strictly enough that any
 * malformed input (random bytes, truncation, overrunning or indefinite lengths, trailing bytes)
 * throws PkiError('DER_MALFORMED') and nothing else. Every read is bounds-checked against the
 * enclosing element, so the walk is linear in the input and cannot read out of range.
 *
 * SPKI hashing: spkiSha256 is computed eagerly with node:crypto's one-shot `hash()`. Measured
 * with bench/parse.bench.mjs (Node 24, 2,000 mixed certificates) the hash alone runs at ~3M/s,
 * about 17% of the fast path's cost, which still summarises ~500k certificates/s on one core, so
 * no lazy variant is offered. certificateParts() returns the SPKI bytes when a caller wants them.
 */
import { hash } from 'node:crypto';
import { PkiError } from './errors.ts';
import { formatIp } from './ip.ts';
import type { KeyAlgorithm } from './key-algorithms.ts';

export interface CertSummary {
  /** Start of validity, ms since the epoch. */
  notBefore: number;
  /** End of validity, ms since the epoch. */
  notAfter: number;
  /** Lowercase hex of the serial number's octets, without DER's sign-padding zero byte. */
  serialHex: string;
  /** The first CN attribute of the subject (if a string type); undefined when there is none. */
  subjectCommonName?: string | undefined;
  /** The first CN attribute of the issuer; undefined when there is none. */
  issuerCommonName?: string | undefined;
  /** SAN dNSName entries in certificate order, as written (not case-folded). */
  dnsNames: string[];
  /** SAN iPAddress entries in canonical text (see ip.ts). */
  ipAddresses: string[];
  /** SAN uniformResourceIdentifier entries, as written. */
  uris: string[];
  /** basicConstraints cA = TRUE. */
  isCA: boolean;
  /** Subject DER equals issuer DER byte-for-byte. */
  selfIssued: boolean;
  /** Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER (tag and length included). */
  spkiSha256: string;
  keyAlgorithm: KeyAlgorithm | 'unknown';
}

/** Byte ranges of the main parts of a certificate, each a full TLV (tag and length included). */
export interface CertificateParts {
  tbs: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  spki: Uint8Array;
  /** The subjectKeyIdentifier extension's key identifier (contents only), when there is one. */
  subjectKeyId: Uint8Array | undefined;
}

function fail(what: string): never {
  throw new PkiError('DER_MALFORMED', `certificate DER is malformed: ${what}`);
}

// Result registers of the last tlv() call. Module-level to keep the hot loop allocation-free;
// the walk is synchronous so there is no reentrancy.
let tTag = 0;
let tStart = 0;
let tEnd = 0;

/**
 * Reads the TLV header at `pos`, which must lie inside [pos, limit). Sets tTag (the identifier
 * octet), tStart/tEnd (the content range). Rejects high tag numbers, indefinite lengths, lengths
 * of more than 4 octets and any content that would overrun `limit`.
 */
function tlv(b: Uint8Array, pos: number, limit: number): void {
  if (pos + 2 > limit) fail('truncated element header');
  const t = b[pos]!;
  if ((t & 0x1f) === 0x1f) fail('high tag number');
  let len = b[pos + 1]!;
  let p = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) fail('indefinite length');
    if (n > 4) fail('length field too long');
    if (p + n > limit) fail('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[p++]!;
  }
  if (len > limit - p) fail('length overruns its container');
  tTag = t;
  tStart = p;
  tEnd = p + len;
}

function expect(b: Uint8Array, pos: number, limit: number, tag: number, what: string): void {
  tlv(b, pos, limit);
  if (tTag !== tag) fail(`expected ${what}`);
}

const HEX: string[] = [];
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, '0'));

function hex(b: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += HEX[b[i]!]!;
  return s;
}

function equalRange(b: Uint8Array, s1: number, e1: number, s2: number, e2: number): boolean {
  if (e1 - s1 !== e2 - s2) return false;
  for (let i = 0; i < e1 - s1; i++) if (b[s1 + i] !== b[s2 + i]) return false;
  return true;
}

/** True when b[start..end) equals the given constant bytes. */
function is(b: Uint8Array, start: number, end: number, c: readonly number[]): boolean {
  if (end - start !== c.length) return false;
  for (let i = 0; i < c.length; i++) if (b[start + i] !== c[i]) return false;
  return true;
}

// OID contents (without tag/length).
const OID_CN = [0x55, 0x04, 0x03];
const OID_SAN = [0x55, 0x1d, 0x11];
const OID_BASIC_CONSTRAINTS = [0x55, 0x1d, 0x13];
const OID_SUBJECT_KEY_ID = [0x55, 0x1d, 0x0e];
const OID_RSA = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384 = [0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519 = [0x2b, 0x65, 0x70];

const utf8 = new TextDecoder('utf-8');
const utf16be = new TextDecoder('utf-16be');

function latin1(b: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Decodes a directory string; undefined for non-string tags. Invalid UTF-8 becomes U+FFFD. */
function directoryString(b: Uint8Array, tag: number, start: number, end: number): string | undefined {
  switch (tag) {
    case 0x0c: {
      for (let i = start; i < end; i++) if (b[i]! >= 0x80) return utf8.decode(b.subarray(start, end));
      return latin1(b, start, end);
    }
    case 0x13: // PrintableString
    case 0x14: // TeletexString, read as Latin-1
    case 0x16: // IA5String
    case 0x1a: // VisibleString
      return latin1(b, start, end);
    case 0x1e: // BMPString
      if ((end - start) % 2 !== 0) fail('odd-length BMPString');
      return utf16be.decode(b.subarray(start, end));
    case 0x1c: {
      // UniversalString (UCS-4BE)
      if ((end - start) % 4 !== 0) fail('UniversalString length not a multiple of 4');
      let s = '';
      for (let i = start; i < end; i += 4) {
        const cp = ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
        s += String.fromCodePoint(cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0xfffd : cp);
      }
      return s;
    }
    default:
      return undefined;
  }
}

/** Walks a Name (content range of its SEQUENCE) and returns the first CN, validating structure. */
function commonName(b: Uint8Array, start: number, end: number): string | undefined {
  let cn: string | undefined;
  let p = start;
  while (p < end) {
    expect(b, p, end, 0x31, 'RelativeDistinguishedName SET');
    const setEnd = tEnd;
    let q = tStart;
    if (q === setEnd) fail('empty RelativeDistinguishedName');
    p = setEnd;
    while (q < setEnd) {
      expect(b, q, setEnd, 0x30, 'AttributeTypeAndValue SEQUENCE');
      const atvEnd = tEnd;
      q = atvEnd;
      expect(b, tStart, atvEnd, 0x06, 'attribute type OID');
      const oidStart = tStart;
      const oidEnd = tEnd;
      tlv(b, oidEnd, atvEnd);
      if (tEnd !== atvEnd) fail('trailing bytes in AttributeTypeAndValue');
      if (cn === undefined && is(b, oidStart, oidEnd, OID_CN)) {
        cn = directoryString(b, tTag, tStart, tEnd);
      }
    }
  }
  return cn;
}

function digits2(b: Uint8Array, i: number): number {
  const h = b[i]! - 0x30;
  const l = b[i + 1]! - 0x30;
  if (h < 0 || h > 9 || l < 0 || l > 9) fail('non-digit in time');
  return h * 10 + l;
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}
const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days from 1970-01-01 to the given civil date (proleptic Gregorian). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Reads a UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as RFC 5280 requires. */
function readTime(b: Uint8Array, pos: number, limit: number): number {
  tlv(b, pos, limit);
  let p = tStart;
  const len = tEnd - tStart;
  let year: number;
  if (tTag === 0x17) {
    if (len !== 13) fail('UTCTime must be YYMMDDHHMMSSZ');
    const yy = digits2(b, p);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    p += 2;
  } else if (tTag === 0x18) {
    if (len !== 15) fail('GeneralizedTime must be YYYYMMDDHHMMSSZ');
    year = digits2(b, p) * 100 + digits2(b, p + 2);
    p += 4;
  } else {
    fail('expected UTCTime or GeneralizedTime');
  }
  const month = digits2(b, p);
  const day = digits2(b, p + 2);
  const hour = digits2(b, p + 4);
  const minute = digits2(b, p + 6);
  const second = digits2(b, p + 8);
  if (b[p + 10] !== 0x5a) fail('time must end in Z');
  if (month < 1 || month > 12) fail('month out of range');
  const maxDay = month === 2 && isLeap(year) ? 29 : MONTH_DAYS[month - 1]!;
  if (day < 1 || day > maxDay) fail('day out of range');
  if (hour > 23 || minute > 59 || second > 59) fail('time of day out of range');
  return ((daysFromCivil(year, month, day) * 24 + hour) * 60 + minute) * 60_000 + second * 1000;
}

/**
 * Classifies an algorithm and key from the content range of a SubjectPublicKeyInfo SEQUENCE.
 * Structure errors throw DER_MALFORMED; well-formed but unrecognised keys give 'unknown'.
 */
function classifySpki(b: Uint8Array, start: number, end: number): KeyAlgorithm | 'unknown' {
  expect(b, start, end, 0x30, 'SPKI AlgorithmIdentifier');
  const algEnd = tEnd;
  expect(b, tStart, algEnd, 0x06, 'SPKI algorithm OID');
  const oidStart = tStart;
  const oidEnd = tEnd;
  const paramsAt = tEnd;
  expect(b, algEnd, end, 0x03, 'SPKI subjectPublicKey BIT STRING');
  if (tEnd !== end) fail('trailing bytes in SPKI');
  const bitsStart = tStart;
  const bitsEnd = tEnd;
  if (bitsEnd === bitsStart || b[bitsStart] !== 0) fail('SPKI BIT STRING has unused bits');

  if (is(b, oidStart, oidEnd, OID_ED25519)) {
    return paramsAt === algEnd && bitsEnd - bitsStart === 33 ? 'ed25519' : 'unknown';
  }
  if (is(b, oidStart, oidEnd, OID_EC_PUBLIC_KEY)) {
    if (paramsAt === algEnd) return 'unknown';
    tlv(b, paramsAt, algEnd);
    if (tTag !== 0x06) return 'unknown';
    if (is(b, tStart, tEnd, OID_P256)) return 'ecdsa-p256';
    if (is(b, tStart, tEnd, OID_P384)) return 'ecdsa-p384';
    return 'unknown';
  }
  if (is(b, oidStart, oidEnd, OID_RSA)) {
    expect(b, bitsStart + 1, bitsEnd, 0x30, 'RSAPublicKey SEQUENCE');
    const keyEnd = tEnd;
    expect(b, tStart, keyEnd, 0x02, 'RSA modulus INTEGER');
    let ms = tStart;
    const me = tEnd;
    while (ms < me && b[ms] === 0) ms++;
    if (ms === me) return 'unknown';
    let bits = (me - ms) * 8;
    for (let top = b[ms]!; (top & 0x80) === 0; top <<= 1) bits--;
    switch (bits) {
      case 2048:
        return 'rsa-2048';
      case 3072:
        return 'rsa-3072';
      case 4096:
        return 'rsa-4096';
      default:
        return 'unknown';
    }
  }
  return 'unknown';
}

function readSan(b: Uint8Array, start: number, end: number, s: CertSummary): void {
  expect(b, start, end, 0x30, 'GeneralNames SEQUENCE');
  if (tEnd !== end) fail('trailing bytes after GeneralNames');
  const namesEnd = tEnd;
  let p = tStart;
  while (p < namesEnd) {
    tlv(b, p, namesEnd);
    p = tEnd;
    switch (tTag) {
      case 0x82:
        s.dnsNames.push(latin1(b, tStart, tEnd));
        break;
      case 0x86:
        s.uris.push(latin1(b, tStart, tEnd));
        break;
      case 0x87:
        if (tEnd - tStart !== 4 && tEnd - tStart !== 16) fail('iPAddress must be 4 or 16 octets');
        s.ipAddresses.push(formatIp(b, tStart, tEnd - tStart));
        break;
      default:
        break; // other GeneralName forms are not needed
    }
  }
}

function readBasicConstraints(b: Uint8Array, start: number, end: number): boolean {
  expect(b, start, end, 0x30, 'BasicConstraints SEQUENCE');
  if (tEnd !== end) fail('trailing bytes after BasicConstraints');
  const seqEnd = tEnd;
  if (tStart === seqEnd) return false;
  tlv(b, tStart, seqEnd);
  if (tTag !== 0x01) return false; // only pathLenConstraint present
  if (tEnd - tStart !== 1) fail('BOOLEAN must be one octet');
  return b[tStart] !== 0;
}

// Result registers of the last readExtensions() call: the subjectKeyIdentifier's content range.
let skiStart = -1;
let skiEnd = -1;

function readExtensions(b: Uint8Array, start: number, end: number, s: CertSummary): void {
  skiStart = -1;
  skiEnd = -1;
  expect(b, start, end, 0x30, 'Extensions SEQUENCE');
  if (tEnd !== end) fail('trailing bytes after Extensions');
  const extsEnd = tEnd;
  let p = tStart;
  let sawSan = false;
  let sawBc = false;
  while (p < extsEnd) {
    expect(b, p, extsEnd, 0x30, 'Extension SEQUENCE');
    const extEnd = tEnd;
    p = extEnd;
    expect(b, tStart, extEnd, 0x06, 'extnID OID');
    const oidStart = tStart;
    const oidEnd = tEnd;
    tlv(b, oidEnd, extEnd);
    if (tTag === 0x01) {
      if (tEnd - tStart !== 1) fail('BOOLEAN must be one octet');
      tlv(b, tEnd, extEnd);
    }
    if (tTag !== 0x04) fail('expected extnValue OCTET STRING');
    if (tEnd !== extEnd) fail('trailing bytes in Extension');
    const vStart = tStart;
    const vEnd = tEnd;
    if (is(b, oidStart, oidEnd, OID_SAN)) {
      if (sawSan) fail('duplicate subjectAltName extension');
      sawSan = true;
      readSan(b, vStart, vEnd, s);
    } else if (is(b, oidStart, oidEnd, OID_BASIC_CONSTRAINTS)) {
      if (sawBc) fail('duplicate basicConstraints extension');
      sawBc = true;
      s.isCA = readBasicConstraints(b, vStart, vEnd);
    } else if (is(b, oidStart, oidEnd, OID_SUBJECT_KEY_ID) && skiStart < 0) {
      // Only signing with this certificate as the issuer uses it: a malformed one is ignored
      // (the key identifier is then derived from the key) rather than failing the whole read.
      try {
        tlv(b, vStart, vEnd);
        if (tTag === 0x04 && tEnd === vEnd && tEnd > tStart) {
          skiStart = tStart;
          skiEnd = tEnd;
        }
      } catch {
        skiStart = -1;
      }
    }
  }
}

interface Walked {
  summary: CertSummary;
  parts: CertificateParts;
}

function walk(der: Uint8Array, withSummary: boolean): Walked {
  const b = der;
  expect(b, 0, b.length, 0x30, 'Certificate SEQUENCE');
  if (tEnd !== b.length) fail('trailing bytes after Certificate');
  const certEnd = tEnd;
  const tbsAt = tStart;
  expect(b, tbsAt, certEnd, 0x30, 'TBSCertificate SEQUENCE');
  const tbsStart = tStart;
  const tbsEnd = tEnd;
  expect(b, tbsEnd, certEnd, 0x30, 'signatureAlgorithm SEQUENCE');
  expect(b, tEnd, certEnd, 0x03, 'signatureValue BIT STRING');
  if (tEnd !== certEnd) fail('trailing bytes in Certificate');

  let p = tbsStart;
  tlv(b, p, tbsEnd);
  if (tTag === 0xa0) {
    const vEnd = tEnd;
    expect(b, tStart, vEnd, 0x02, 'version INTEGER');
    if (tEnd !== vEnd) fail('trailing bytes in version');
    p = vEnd;
    tlv(b, p, tbsEnd);
  }
  if (tTag !== 0x02) fail('expected serialNumber INTEGER');
  if (tEnd === tStart) fail('empty serialNumber');
  let serialStart = tStart;
  if (tEnd - serialStart > 1 && b[serialStart] === 0 && b[serialStart + 1]! >= 0x80) serialStart++;
  const serialEnd = tEnd;

  expect(b, serialEnd, tbsEnd, 0x30, 'signature AlgorithmIdentifier');
  const issuerAt = tEnd;
  expect(b, issuerAt, tbsEnd, 0x30, 'issuer Name');
  const issuerStart = tStart;
  const issuerEnd = tEnd;
  expect(b, issuerEnd, tbsEnd, 0x30, 'Validity SEQUENCE');
  const validityEnd = tEnd;
  const validityStart = tStart;
  const notBefore = readTime(b, validityStart, validityEnd);
  const notAfter = readTime(b, tEnd, validityEnd);
  if (tEnd !== validityEnd) fail('trailing bytes in Validity');
  const subjectAt = validityEnd;
  expect(b, subjectAt, tbsEnd, 0x30, 'subject Name');
  const subjectStart = tStart;
  const subjectEnd = tEnd;
  const spkiAt = subjectEnd;
  expect(b, spkiAt, tbsEnd, 0x30, 'SubjectPublicKeyInfo SEQUENCE');
  const spkiStart = tStart;
  const spkiEnd = tEnd;

  // Optional trailing fields, in order: [1] issuerUniqueID, [2] subjectUniqueID, [3] extensions.
  p = spkiEnd;
  let lastTag = 0;
  let extStart = -1;
  let extEnd = -1;
  while (p < tbsEnd) {
    tlv(b, p, tbsEnd);
    p = tEnd;
    // TS keeps tTag narrowed from the serialNumber check across tlv(); widen it explicitly.
    const tag: number = tTag;
    const order = tag === 0x81 || tag === 0xa1 ? 1 : tag === 0x82 || tag === 0xa2 ? 2 : tag === 0xa3 ? 3 : 0;
    if (order === 0 || order <= lastTag) fail('unexpected element in TBSCertificate');
    lastTag = order;
    if (order === 3) {
      extStart = tStart;
      extEnd = tEnd;
    }
  }

  // Built with every property present so all summaries share one object shape (faster property
  // access downstream); absent CNs are undefined.
  const summary: CertSummary = {
    notBefore,
    notAfter,
    serialHex: '',
    subjectCommonName: undefined,
    issuerCommonName: undefined,
    dnsNames: [],
    ipAddresses: [],
    uris: [],
    isCA: false,
    selfIssued: false,
    spkiSha256: '',
    keyAlgorithm: 'unknown',
  };

  // The name and key walks also validate structure, so they run even without a summary.
  const subjectCommonName = commonName(b, subjectStart, subjectEnd);
  const issuerCommonName = commonName(b, issuerStart, issuerEnd);
  summary.keyAlgorithm = classifySpki(b, spkiStart, spkiEnd);
  skiStart = -1;
  if (extStart >= 0) readExtensions(b, extStart, extEnd, summary);
  const subjectKeyId = skiStart >= 0 ? b.subarray(skiStart, skiEnd) : undefined;

  if (withSummary) {
    summary.serialHex = hex(b, serialStart, serialEnd);
    summary.subjectCommonName = subjectCommonName;
    summary.issuerCommonName = issuerCommonName;
    summary.selfIssued = equalRange(b, issuerAt, issuerEnd, subjectAt, subjectEnd);
    summary.spkiSha256 = hash('sha256', b.subarray(spkiAt, spkiEnd), 'hex');
  }
  return {
    summary,
    parts: {
      tbs: b.subarray(tbsAt, tbsEnd),
      issuer: b.subarray(issuerAt, issuerEnd),
      subject: b.subarray(subjectAt, subjectEnd),
      spki: b.subarray(spkiAt, spkiEnd),
      subjectKeyId,
    },
  };
}

/**
 * Reads the renewal-relevant facts from certificate DER. Throws PkiError('DER_MALFORMED') for any
 * input that is not a structurally sound certificate; never throws anything else.
 */
export function readCertificateSummary(der: Uint8Array): CertSummary {
  return walk(der, true).summary;
}

/** Sub-views (no copies) of the certificate's TBS, issuer, subject and SPKI. DER_MALFORMED as above. */
export function certificateParts(der: Uint8Array): CertificateParts {
  return walk(der, false).parts;
}

/** The subjectPublicKey BIT STRING's bits (without the unused-bits octet) of SPKI DER. */
export function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  expect(spki, 0, spki.length, 0x30, 'SubjectPublicKeyInfo SEQUENCE');
  const end = tEnd;
  expect(spki, tStart, end, 0x30, 'AlgorithmIdentifier');
  expect(spki, tEnd, end, 0x03, 'subjectPublicKey BIT STRING');
  if (tEnd !== end || tEnd === tStart || spki[tStart] !== 0) fail('malformed subjectPublicKey');
  return spki.subarray(tStart + 1, tEnd);
}

/** Classifies SubjectPublicKeyInfo DER (a full TLV), e.g. as exported by node:crypto. */
export function keyAlgorithmOfSpki(spki: Uint8Array): KeyAlgorithm | 'unknown' {
  expect(spki, 0, spki.length, 0x30, 'SubjectPublicKeyInfo SEQUENCE');
  if (tEnd !== spki.length) fail('trailing bytes after SubjectPublicKeyInfo');
  return classifySpki(spki, tStart, tEnd);
}
