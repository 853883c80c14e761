/**
 * Fast path: a minimal, allocation-light DER walk over an X.509 certificate. It reads a
 * certificate at two levels (docs/controller.md, "Two levels of reading a certificate"):
 *
 * - readable for expiry: the outer structure, serial and validity. Anything malformed there throws
 *   PkiError('DER_MALFORMED') and nothing else; every read is bounds-checked against the
 *   enclosing element, so the walk is linear in the input and cannot read out of range.
 * - acceptable to act on: each part the policy checks or an issuer copies (names, every
 *   GeneralName of the SAN, CA constraints and key usage, algorithm identifiers, the signature)
 *   is checked strictly per RFC 5280 and X.690 DER. A part that fails is not thrown: it becomes a
 *   CertProblem naming the field, and contributes no names; assertAcceptable() turns it into
 *   PkiError('CERT_UNACCEPTABLE'). node:crypto's reading is checked on top (x509-check.ts).
 *
 * The two SPKI hashes: spkiSha256 is over the bytes as written (the rollout fingerprint, stable
 * for an unchanged certificate); publicKeySha256 is over the canonical encoding node:crypto
 * exports for a key (RSA with NULL parameters, uncompressed EC points), so a key matches its
 * certificate whichever valid encoding the certificate used.
 */
import { createPublicKey, hash } from 'node:crypto';
import { type Decoded, decodeString, ia5, oidProblem, oidText, stringProblem } from './der-strings.ts';
import { sequence as encodeSequence } from './der-write.ts';
import { type CertField, PkiError } from './errors.ts';
import { formatIp } from './ip.ts';
import type { KeyAlgorithm } from './key-algorithms.ts';

/** A part of a certificate that is not acceptable to act on, and why. */
export interface CertProblem {
  field: CertField;
  reason: string;
}

export interface CertSummary {
  /** Start of validity, ms since the epoch. */
  notBefore: number;
  /** End of validity, ms since the epoch. */
  notAfter: number;
  /**
   * Lowercase hex of the serial number's content octets without DER's sign-padding zero byte.
   * A negative or non-minimal serial keeps its octets as written (see serialFlag).
   */
  serialHex: string;
  /** Set when the serial is negative or not minimally encoded: reported, never a reason to renew. */
  serialFlag: 'negative' | 'non-minimal' | undefined;
  /** The first CN attribute of the subject; undefined when there is none or the subject failed. */
  subjectCommonName?: string | undefined;
  /** The first CN attribute of the issuer; undefined when there is none or the issuer failed. */
  issuerCommonName?: string | undefined;
  /** SAN dNSName entries in certificate order, as written (not case-folded). */
  dnsNames: string[];
  /** SAN iPAddress entries in canonical text (see ip.ts). */
  ipAddresses: string[];
  /** SAN uniformResourceIdentifier entries, as written. */
  uris: string[];
  /**
   * A CA by this reading: basicConstraints cA = TRUE, every extension well-formed, and keyCertSign
   * set when keyUsage is present (what OpenSSL's X509_check_ca asks, minus v1 roots).
   */
  isCA: boolean;
  /** keyUsage is present and asserts keyCertSign. */
  keyCertSign: boolean;
  /** basicConstraints pathLenConstraint of a CA (how many CAs may follow it); undefined: none. */
  pathLen?: number | undefined;
  /** Subject DER equals issuer DER byte-for-byte. */
  selfIssued: boolean;
  /** Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER as written (tag and length included). */
  spkiSha256: string;
  /** Lowercase hex SHA-256 of the canonical SubjectPublicKeyInfo (as node:crypto exports the key). */
  publicKeySha256: string;
  keyAlgorithm: KeyAlgorithm | 'unknown';
  /** Parts not acceptable to act on; empty when the whole certificate is. */
  problems: readonly CertProblem[];
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

const NO_PROBLEMS: readonly CertProblem[] = Object.freeze([]);

// Why the last fail()/refuse() threw: parts catch it and record it as a CertProblem.
let lastReason = '';

function fail(what: string): never {
  lastReason = what;
  throw new PkiError('DER_MALFORMED', `certificate DER is malformed: ${what}`);
}

/** Well-formed TLV but not acceptable (a semantic rule of RFC 5280 or DER). Only inside parts. */
function refuse(what: string): never {
  lastReason = what;
  throw new PkiError('CERT_UNACCEPTABLE', what);
}

// Result registers of the last tlv() call. Module-level to keep the hot loop allocation-free;
// the walk is synchronous so there is no reentrancy.
let tTag = 0;
let tStart = 0;
let tEnd = 0;

/**
 * Reads the TLV header at `pos`, which must lie inside [pos, limit). Sets tTag (the identifier
 * octet), tStart/tEnd (the content range). Rejects high tag numbers, indefinite lengths, lengths
 * of more than 4 octets, non-minimal lengths (inside parts only: see `minimalLengths`) and any
 * content that would overrun `limit`.
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
    if (strictLengths && (len < 0x80 || b[pos + 2] === 0)) refuse('length not minimally encoded');
  }
  if (len > limit - p) fail('length overruns its container');
  tTag = t;
  tStart = p;
  tEnd = p + len;
}

// Within parts read for acting, lengths must be minimal (X.690 10.1); the expiry level tolerates
// a long-form length as OpenSSL does.
let strictLengths = false;

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
const OID_KEY_USAGE = [0x55, 0x1d, 0x0f];
const OID_EXT_KEY_USAGE = [0x55, 0x1d, 0x25];
const OID_SUBJECT_KEY_ID = [0x55, 0x1d, 0x0e];
const OID_AUTHORITY_KEY_ID = [0x55, 0x1d, 0x23];
const OID_CRL_DP = [0x55, 0x1d, 0x1f];
const OID_NAME_CONSTRAINTS = [0x55, 0x1d, 0x1e];
const OID_NS_CERT_TYPE = [0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x42, 0x01, 0x01];
const OID_RSA = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC_PUBLIC_KEY = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384 = [0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519 = [0x2b, 0x65, 0x70];
const OID_ED448 = [0x2b, 0x65, 0x71];

const RSA_PKCS1_PREFIX = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
const ECDSA_SHA2_PREFIX = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
const OID_ECDSA_SHA1 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
const ML_DSA_PREFIX = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];

function startsWith(
  b: Uint8Array,
  start: number,
  end: number,
  prefix: readonly number[],
  extra: number,
): boolean {
  if (end - start !== prefix.length + extra) return false;
  for (let i = 0; i < prefix.length; i++) if (b[start + i] !== prefix[i]) return false;
  return true;
}

function strictString(d: Decoded | undefined, what: string): string {
  if (d === undefined) refuse(`${what} is not a standard string type`);
  if (!d.ok) refuse(`${what}: ${d.reason}`);
  return d.value;
}

function readOid(b: Uint8Array, pos: number, limit: number, what: string): void {
  expect(b, pos, limit, 0x06, what);
  const problem = oidProblem(b, tStart, tEnd);
  if (problem !== undefined) refuse(`${what}: ${problem}`);
}

/**
 * Reads a DER INTEGER's content at tStart..tEnd as a small non-negative number (pathLen,
 * version). Refuses negative, non-minimal or oversized values.
 */
function smallNonNegative(b: Uint8Array, what: string): number {
  const start = tStart;
  const end = tEnd;
  if (start === end) refuse(`${what} is an empty INTEGER`);
  if (
    end - start > 1 &&
    ((b[start] === 0 && b[start + 1]! < 0x80) || (b[start] === 0xff && b[start + 1]! >= 0x80))
  )
    refuse(`${what} is not minimally encoded`);
  if (b[start]! >= 0x80) refuse(`${what} is negative`);
  if (end - start > 5) refuse(`${what} is too large`);
  let v = 0;
  for (let i = start; i < end; i++) v = v * 256 + b[i]!;
  return v;
}

/**
 * Walks a Name (content range of its SEQUENCE) strictly and returns the first CN (undefined when
 * there is none). Every attribute type must be a valid OID and every value a standard string type
 * valid in its type, so the first CN is never skipped for a later one. An empty RDN set is refused
 * (X.501 requires at least one attribute).
 */
function commonName(b: Uint8Array, start: number, end: number): string | undefined {
  let cn: string | undefined;
  let sawCn = false;
  let p = start;
  while (p < end) {
    expect(b, p, end, 0x31, 'RelativeDistinguishedName SET');
    const setEnd = tEnd;
    let q = tStart;
    if (q === setEnd) refuse('empty RelativeDistinguishedName');
    p = setEnd;
    while (q < setEnd) {
      expect(b, q, setEnd, 0x30, 'AttributeTypeAndValue SEQUENCE');
      const atvEnd = tEnd;
      q = atvEnd;
      readOid(b, tStart, atvEnd, 'attribute type');
      const oidStart = tStart;
      const oidEnd = tEnd;
      tlv(b, oidEnd, atvEnd);
      if (tEnd !== atvEnd) refuse('trailing bytes in AttributeTypeAndValue');
      // Every value must be a standard string type, valid in its type: OpenSSL canonicalises
      // each name it decodes and refuses the whole certificate when a value does not convert.
      const isCn = is(b, oidStart, oidEnd, OID_CN);
      // OpenSSL's name values (ASN1_PRINTABLE) exclude VisibleString: a name holding one fails.
      if (tTag === 0x1a)
        refuse(`${isCn ? 'CN' : 'attribute'} is a VisibleString, which X.509 names do not allow`);
      if (isCn && !sawCn) {
        sawCn = true;
        cn = strictString(decodeString(b, tTag, tStart, tEnd), 'CN');
      } else {
        // Checked without building the string: only the first CN is used.
        const problem = stringProblem(b, tTag, tStart, tEnd);
        if (problem !== undefined)
          refuse(`${isCn ? 'CN' : `attribute ${oidText(b, oidStart, oidEnd)}`}: ${problem}`);
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

// Result register of the last classifySpki() call: the bits of an RSA key whose AlgorithmIdentifier
// omits the NULL parameters, or of a compressed EC point, need a canonical re-encoding.
let spkiNeedsCanonical = false;

/**
 * Classifies an algorithm and key from the content range of a SubjectPublicKeyInfo SEQUENCE,
 * strictly: a malformed AlgorithmIdentifier, BIT STRING or RSA key refuses the part; a
 * well-formed but unrecognised key gives 'unknown'.
 */
function classifySpki(b: Uint8Array, start: number, end: number): KeyAlgorithm | 'unknown' {
  spkiNeedsCanonical = false;
  expect(b, start, end, 0x30, 'SPKI AlgorithmIdentifier');
  const algEnd = tEnd;
  readOid(b, tStart, algEnd, 'SPKI algorithm');
  const oidStart = tStart;
  const oidEnd = tEnd;
  const paramsAt = tEnd;
  if (paramsAt < algEnd) {
    tlv(b, paramsAt, algEnd);
    if (tEnd !== algEnd) refuse('trailing bytes in SPKI AlgorithmIdentifier');
  }
  expect(b, algEnd, end, 0x03, 'SPKI subjectPublicKey BIT STRING');
  if (tEnd !== end) refuse('trailing bytes in SPKI');
  const bitsStart = tStart;
  const bitsEnd = tEnd;
  if (bitsEnd - bitsStart < 2 || b[bitsStart] !== 0) refuse('SPKI BIT STRING is empty or has unused bits');

  if (is(b, oidStart, oidEnd, OID_ED25519) || is(b, oidStart, oidEnd, OID_ED448)) {
    if (paramsAt !== algEnd) refuse('EdDSA key with algorithm parameters');
    if (is(b, oidStart, oidEnd, OID_ED448)) return 'unknown';
    if (bitsEnd - bitsStart !== 33) refuse('Ed25519 key is not 32 octets');
    return 'ed25519';
  }
  if (is(b, oidStart, oidEnd, OID_EC_PUBLIC_KEY)) {
    if (paramsAt === algEnd) refuse('EC key without curve parameters');
    tlv(b, paramsAt, algEnd);
    if (tTag === 0x30) return 'unknown'; // explicit curve parameters: well-formed, not ours
    if (tTag !== 0x06) refuse('EC parameters are neither a named curve nor explicit parameters');
    const curveStart = tStart;
    const curveEnd = tEnd;
    const problem = oidProblem(b, curveStart, curveEnd);
    if (problem !== undefined) refuse(`EC curve: ${problem}`);
    const size = is(b, curveStart, curveEnd, OID_P256) ? 32 : is(b, curveStart, curveEnd, OID_P384) ? 48 : 0;
    if (size === 0) return 'unknown';
    const form = b[bitsStart + 1];
    const n = bitsEnd - bitsStart - 1;
    if (form === 0x04 && n === 2 * size + 1) {
      // Uncompressed: canonical already. Whether the point lies on the curve is not checked here:
      // it doubled the cost of this reader (BigInt arithmetic) and names no identity; a key that
      // is not on its curve never matches a private key, so key checks refuse it where a key is used.
    } else if ((form === 0x02 || form === 0x03) && n === size + 1) {
      spkiNeedsCanonical = true;
    } else {
      refuse('EC point has the wrong length or form');
    }
    return size === 32 ? 'ecdsa-p256' : 'ecdsa-p384';
  }
  if (is(b, oidStart, oidEnd, OID_RSA)) {
    if (paramsAt === algEnd) spkiNeedsCanonical = true;
    else if (!is(b, paramsAt, algEnd, [0x05, 0x00])) refuse('RSA key parameters are not NULL');
    expect(b, bitsStart + 1, bitsEnd, 0x30, 'RSAPublicKey SEQUENCE');
    const keyEnd = tEnd;
    if (keyEnd !== bitsEnd) refuse('trailing bytes after RSAPublicKey');
    expect(b, tStart, keyEnd, 0x02, 'RSA modulus INTEGER');
    const ms0 = tStart;
    const me = tEnd;
    expect(b, me, keyEnd, 0x02, 'RSA publicExponent INTEGER');
    if (tEnd !== keyEnd) refuse('trailing bytes in RSAPublicKey');
    if (!positiveMinimal(b, tStart, tEnd)) refuse('RSA publicExponent is not a minimal positive INTEGER');
    if (!positiveMinimal(b, ms0, me)) refuse('RSA modulus is not a minimal positive INTEGER');
    let ms = ms0;
    while (ms < me && b[ms] === 0) ms++;
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

/** INTEGER content b[start..end) is minimal DER and > 0. */
function positiveMinimal(b: Uint8Array, start: number, end: number): boolean {
  if (start === end || b[start]! >= 0x80) return false;
  if (end - start > 1 && b[start] === 0 && b[start + 1]! < 0x80) return false;
  for (let i = start; i < end; i++) if (b[i] !== 0) return true;
  return false;
}

/** Refuses unless b[start..end) holds nothing but well-formed TLVs (one level). */
function tlvList(b: Uint8Array, start: number, end: number): void {
  for (let p = start; p < end; p = tEnd) tlv(b, p, end);
}

interface NameLists {
  dns: string[];
  ips: string[];
  uris: string[];
}

/**
 * Checks one GeneralName at `p` (any of the nine kinds, X.509 and RFC 5280 4.2.1.6) and collects
 * DNS, IP and URI names into `into`. Returns the end of the element. `ipLength` is 4/16 in a SAN,
 * 8/32 (address and mask) in name constraints.
 */
function generalName(
  b: Uint8Array,
  p: number,
  end: number,
  into: NameLists | undefined,
  constraint: boolean,
): number {
  tlv(b, p, end);
  const tag = tTag;
  const cs = tStart;
  const ce = tEnd;
  switch (tag) {
    case 0xa0: {
      // otherName: type-id OID, [0] EXPLICIT value
      readOid(b, cs, ce, 'otherName type-id');
      expect(b, tEnd, ce, 0xa0, 'otherName [0] value');
      if (tEnd !== ce) refuse('trailing bytes in otherName');
      const ve = tEnd;
      anyValue(b, tStart, ve, 'otherName value');
      if (tEnd !== ve) refuse('otherName value holds more than one element');
      break;
    }
    case 0x81: // rfc822Name
      strictString(ia5(b, cs, ce), 'rfc822Name');
      break;
    case 0x82: {
      const v = strictString(ia5(b, cs, ce), 'dNSName');
      into?.dns.push(v);
      break;
    }
    case 0xa3: // x400Address: ORAddress, a SEQUENCE (implicitly tagged)
      tlvList(b, cs, ce);
      break;
    case 0xa4: {
      // directoryName: [4] EXPLICIT Name
      expect(b, cs, ce, 0x30, 'directoryName Name');
      if (tEnd !== ce) refuse('trailing bytes in directoryName');
      commonName(b, tStart, tEnd);
      break;
    }
    case 0xa5: {
      // ediPartyName: nameAssigner [0] DirectoryString OPTIONAL, partyName [1] DirectoryString
      tlv(b, cs, ce);
      if (tTag === 0xa0) {
        const e = tEnd;
        tlv(b, tStart, e);
        if (tEnd !== e) refuse('trailing bytes in ediPartyName nameAssigner');
        strictString(directoryString(b), 'ediPartyName nameAssigner');
        tlv(b, e, ce);
      }
      if (tTag !== 0xa1) refuse('ediPartyName without partyName');
      const e = tEnd;
      if (e !== ce) refuse('trailing bytes in ediPartyName');
      tlv(b, tStart, e);
      if (tEnd !== e) refuse('trailing bytes in ediPartyName partyName');
      strictString(directoryString(b), 'ediPartyName partyName');
      break;
    }
    case 0x86: {
      const v = strictString(ia5(b, cs, ce), 'uniformResourceIdentifier');
      into?.uris.push(v);
      break;
    }
    case 0x87:
      if (constraint ? ce - cs !== 8 && ce - cs !== 32 : ce - cs !== 4 && ce - cs !== 16)
        refuse(
          constraint ? 'iPAddress constraint must be 8 or 32 octets' : 'iPAddress must be 4 or 16 octets',
        );
      into?.ips.push(formatIp(b, cs, ce - cs));
      break;
    case 0x88: {
      const problem = oidProblem(b, cs, ce);
      if (problem !== undefined) refuse(`registeredID: ${problem}`);
      break;
    }
    default:
      refuse(`unknown GeneralName tag 0x${tag.toString(16)}`);
  }
  return ce;
}

/** X.520 DirectoryString at tTag/tStart/tEnd: teletex, printable, universal, UTF-8 or BMP only. */
function directoryString(b: Uint8Array): Decoded | undefined {
  const t = tTag;
  if (t !== 0x14 && t !== 0x13 && t !== 0x1c && t !== 0x0c && t !== 0x1e) return undefined;
  return decodeString(b, t, tStart, tEnd);
}

/**
 * One element of type ANY at `pos`: universal class only; constructed only as SEQUENCE or SET
 * (whose contents are checked as a list of elements); primitive values valid in their type.
 */
function anyValue(b: Uint8Array, pos: number, end: number, what: string): void {
  tlv(b, pos, end);
  const tag = tTag;
  const cs = tStart;
  const ce = tEnd;
  if (tag & 0xc0) refuse(`${what} is not of a universal type`);
  if (tag & 0x20) {
    if (tag !== 0x30 && tag !== 0x31) refuse(`${what} is a constructed ${tag & 0x1f}`);
    for (let p = cs; p < ce; p = tEnd) anyValue(b, p, ce, what);
    tEnd = ce;
    return;
  }
  const decoded = decodeString(b, tag, cs, ce);
  if (decoded !== undefined) strictString(decoded, what);
  else if (tag === 0x01) {
    if (ce - cs !== 1) refuse(`${what}: BOOLEAN must be one octet`);
  } else if (tag === 0x02) {
    if (
      cs === ce ||
      (ce - cs > 1 && ((b[cs] === 0 && b[cs + 1]! < 0x80) || (b[cs] === 0xff && b[cs + 1]! >= 0x80)))
    )
      refuse(`${what}: INTEGER is not minimal`);
  } else if (tag === 0x05) {
    if (ce !== cs) refuse(`${what}: NULL with content`);
  } else if (tag === 0x06) {
    const problem = oidProblem(b, cs, ce);
    if (problem !== undefined) refuse(`${what}: ${problem}`);
  } else if (tag === 0x03) {
    if (cs === ce || b[cs]! > 7) refuse(`${what}: malformed BIT STRING`);
  } else if (tag !== 0x04) {
    refuse(`${what} has an unexpected type ${tag}`);
  }
  tEnd = ce;
}

/** GeneralNames content b[start..end): at least one, each checked. */
function generalNames(b: Uint8Array, start: number, end: number, into: NameLists | undefined): void {
  if (start === end) refuse('empty GeneralNames');
  for (let p = start; p < end; ) p = generalName(b, p, end, into, false);
}

/**
 * Reads GeneralNames strictly: each of the nine kinds is checked for its structure, not only the
 * three the product uses; any other tag, an empty list or a malformed entry refuses the whole
 * extension (OpenSSL then reads no names at all).
 */
function readSan(b: Uint8Array, start: number, end: number, s: CertSummary): void {
  expect(b, start, end, 0x30, 'GeneralNames SEQUENCE');
  if (tEnd !== end) refuse('trailing bytes after GeneralNames');
  const into: NameLists = { dns: [], ips: [], uris: [] };
  generalNames(b, tStart, tEnd, into);
  // Names are taken only once the whole extension passed: a part that fails gives none.
  s.dnsNames = into.dns;
  s.ipAddresses = into.ips;
  s.uris = into.uris;
}

/** CRLDistributionPoints (RFC 5280 4.2.1.13): OpenSSL decodes it for every certificate. */
function readCrlDistributionPoints(b: Uint8Array, start: number, end: number): void {
  expect(b, start, end, 0x30, 'CRLDistributionPoints SEQUENCE');
  if (tEnd !== end) refuse('trailing bytes after CRLDistributionPoints');
  const e = tEnd;
  if (tStart === e) refuse('empty CRLDistributionPoints');
  for (let p = tStart; p < e; ) {
    expect(b, p, e, 0x30, 'DistributionPoint SEQUENCE');
    const dpEnd = tEnd;
    p = dpEnd;
    let last = -1;
    for (let q = tStart; q < dpEnd; ) {
      tlv(b, q, dpEnd);
      const tag = tTag;
      const cs = tStart;
      const ce = tEnd;
      q = ce;
      const order = tag === 0xa0 ? 0 : tag === 0x81 ? 1 : tag === 0xa2 ? 2 : -1;
      if (order <= last) refuse('unexpected element in DistributionPoint');
      last = order;
      if (order === 0) {
        tlv(b, cs, ce);
        if (tEnd !== ce) refuse('trailing bytes in distributionPoint');
        if (tTag === 0xa0) generalNames(b, tStart, tEnd, undefined);
        else if (tTag === 0xa1) {
          if (tStart === tEnd) refuse('empty nameRelativeToCRLIssuer');
        } else refuse('unknown DistributionPointName');
      } else if (order === 1) {
        if (ce === cs || b[cs]! > 7) refuse('malformed reasons BIT STRING');
      } else {
        generalNames(b, cs, ce, undefined);
      }
    }
  }
}

/** NameConstraints (RFC 5280 4.2.1.10), decoded by OpenSSL for every certificate. */
function readNameConstraints(b: Uint8Array, start: number, end: number): void {
  expect(b, start, end, 0x30, 'NameConstraints SEQUENCE');
  if (tEnd !== end) refuse('trailing bytes after NameConstraints');
  const e = tEnd;
  let last = -1;
  for (let p = tStart; p < e; ) {
    tlv(b, p, e);
    const order = tTag === 0xa0 ? 0 : tTag === 0xa1 ? 1 : -1;
    if (order <= last) refuse('unexpected element in NameConstraints');
    last = order;
    const se = tEnd;
    p = se;
    if (tStart === se) refuse('empty GeneralSubtrees');
    for (let q = tStart; q < se; ) {
      expect(b, q, se, 0x30, 'GeneralSubtree SEQUENCE');
      const gse = tEnd;
      q = gse;
      let r = generalName(b, tStart, gse, undefined, true);
      let lastBound = -1;
      while (r < gse) {
        tlv(b, r, gse);
        const bound = tTag === 0x80 ? 0 : tTag === 0x81 ? 1 : -1;
        if (bound <= lastBound) refuse('unexpected element in GeneralSubtree');
        lastBound = bound;
        smallNonNegative(b, bound === 0 ? 'minimum' : 'maximum');
        r = tEnd;
      }
    }
  }
}

/** The DER BOOLEAN at tStart..tEnd: one octet, 0x00 or 0xff. */
function derBoolean(b: Uint8Array, what: string): boolean {
  if (tEnd - tStart !== 1) refuse(`${what} BOOLEAN must be one octet`);
  const v = b[tStart];
  if (v !== 0 && v !== 0xff) refuse(`${what} BOOLEAN is not DER (0x00 or 0xff)`);
  return v === 0xff;
}

function readBasicConstraints(
  b: Uint8Array,
  start: number,
  end: number,
): { ca: boolean; pathLen: number | undefined } {
  expect(b, start, end, 0x30, 'BasicConstraints SEQUENCE');
  if (tEnd !== end) refuse('trailing bytes after BasicConstraints');
  const seqEnd = tEnd;
  let p = tStart;
  let ca = false;
  let pathLen: number | undefined;
  if (p < seqEnd) {
    tlv(b, p, seqEnd);
    if (tTag === 0x01) {
      // DEFAULT FALSE: DER never encodes FALSE.
      if (!derBoolean(b, 'cA')) refuse('cA FALSE is encoded (DER omits a DEFAULT value)');
      ca = true;
      p = tEnd;
    }
  }
  if (p < seqEnd) {
    expect(b, p, seqEnd, 0x02, 'pathLenConstraint INTEGER');
    pathLen = smallNonNegative(b, 'pathLenConstraint');
    if (!ca) refuse('pathLenConstraint without cA');
    if (tEnd !== seqEnd) refuse('trailing bytes in BasicConstraints');
  }
  return { ca, pathLen };
}

/** KeyUsage BIT STRING, DER-strict (RFC 5280 4.2.1.3): returns the first octet's bits. */
function readKeyUsage(b: Uint8Array, start: number, end: number): number {
  expect(b, start, end, 0x03, 'KeyUsage BIT STRING');
  if (tEnd !== end) refuse('trailing bytes after KeyUsage');
  const n = tEnd - tStart - 1;
  const unused = b[tStart]!;
  if (n < 1 || n > 2) refuse('KeyUsage must hold one or two octets with at least one bit set');
  if (unused > 7) refuse('KeyUsage has more than 7 unused bits');
  const last = b[tEnd - 1]!;
  if (last === 0) refuse('KeyUsage has a trailing zero octet');
  // DER: the unused bits are zero and exactly the trailing zero bits of the last octet.
  if (last & ((1 << unused) - 1) || (last & (1 << unused)) === 0) refuse('KeyUsage named bits are not DER');
  return b[tStart + 1]!;
}

const KEY_CERT_SIGN = 0x04; // bit 5 of the first octet, counting from the most significant

function readExtKeyUsage(b: Uint8Array, start: number, end: number): void {
  expect(b, start, end, 0x30, 'ExtKeyUsageSyntax SEQUENCE');
  if (tEnd !== end) refuse('trailing bytes after ExtKeyUsageSyntax');
  const e = tEnd;
  if (tStart === e) refuse('empty ExtKeyUsageSyntax');
  for (let p = tStart; p < e; p = tEnd) readOid(b, p, e, 'KeyPurposeId');
}

function readAuthorityKeyId(b: Uint8Array, start: number, end: number): void {
  expect(b, start, end, 0x30, 'AuthorityKeyIdentifier SEQUENCE');
  if (tEnd !== end) refuse('trailing bytes after AuthorityKeyIdentifier');
  const e = tEnd;
  let last = -1;
  for (let p = tStart; p < e; p = tEnd) {
    tlv(b, p, e);
    const order = tTag === 0x80 ? 0 : tTag === 0xa1 ? 1 : tTag === 0x82 ? 2 : -1;
    if (order <= last) refuse('unexpected element in AuthorityKeyIdentifier');
    last = order;
  }
}

// Result registers of the last readExtensions() call: the subjectKeyIdentifier's content range,
// read even when the extension is refused (only signing uses it, and then derives one instead).
let skiStart = -1;
let skiEnd = -1;

/**
 * Reads the Extensions strictly. Each interpreted extension is its own part: a failure records a
 * problem naming it (`problems`) and contributes nothing; framing errors and duplicate extensions
 * are the `extensions` part's. Sets isCA and keyCertSign.
 */
function readExtensions(
  b: Uint8Array,
  start: number,
  end: number,
  s: CertSummary,
  problems: CertProblem[],
): void {
  skiStart = -1;
  skiEnd = -1;
  let ca = false;
  let pathLen: number | undefined;
  let keyUsage = -1;
  let partFailed = false;
  const part = (field: CertField, read: () => void): void => {
    try {
      read();
    } catch (err) {
      if (!(err instanceof PkiError)) throw err;
      problems.push({ field, reason: lastReason });
      partFailed = true;
    }
  };
  part('extensions', () => {
    expect(b, start, end, 0x30, 'Extensions SEQUENCE');
    if (tEnd !== end) refuse('trailing bytes after Extensions');
    const extsEnd = tEnd;
    if (tStart === extsEnd) refuse('empty Extensions');
    // Where each extnID seen so far starts and ends: compared in place, no strings built.
    const seen: number[] = [];
    for (let p = tStart; p < extsEnd; ) {
      expect(b, p, extsEnd, 0x30, 'Extension SEQUENCE');
      const extEnd = tEnd;
      p = extEnd;
      readOid(b, tStart, extEnd, 'extnID');
      const oidStart = tStart;
      const oidEnd = tEnd;
      for (let i = 0; i < seen.length; i += 2)
        if (equalRange(b, seen[i]!, seen[i + 1]!, oidStart, oidEnd))
          refuse(`duplicate extension ${oidText(b, oidStart, oidEnd)}`);
      seen.push(oidStart, oidEnd);
      tlv(b, oidEnd, extEnd);
      if (tTag === 0x01) {
        if (!derBoolean(b, 'critical')) refuse('critical FALSE is encoded (DER omits a DEFAULT value)');
        tlv(b, tEnd, extEnd);
      }
      if (tTag !== 0x04) refuse('expected extnValue OCTET STRING');
      if (tEnd !== extEnd) refuse('trailing bytes in Extension');
      const vStart = tStart;
      const vEnd = tEnd;
      if (is(b, oidStart, oidEnd, OID_SAN)) {
        part('subjectAltName', () => readSan(b, vStart, vEnd, s));
      } else if (is(b, oidStart, oidEnd, OID_BASIC_CONSTRAINTS)) {
        part('basicConstraints', () => {
          ({ ca, pathLen } = readBasicConstraints(b, vStart, vEnd));
        });
      } else if (is(b, oidStart, oidEnd, OID_KEY_USAGE)) {
        part('keyUsage', () => {
          keyUsage = readKeyUsage(b, vStart, vEnd);
        });
      } else if (is(b, oidStart, oidEnd, OID_EXT_KEY_USAGE)) {
        part('extKeyUsage', () => readExtKeyUsage(b, vStart, vEnd));
      } else if (is(b, oidStart, oidEnd, OID_AUTHORITY_KEY_ID)) {
        part('authorityKeyIdentifier', () => readAuthorityKeyId(b, vStart, vEnd));
      } else if (is(b, oidStart, oidEnd, OID_CRL_DP)) {
        part('extensions', () => {
          try {
            readCrlDistributionPoints(b, vStart, vEnd);
          } catch (err) {
            lastReason = `cRLDistributionPoints: ${lastReason}`;
            throw err;
          }
        });
      } else if (is(b, oidStart, oidEnd, OID_NAME_CONSTRAINTS)) {
        part('extensions', () => {
          try {
            readNameConstraints(b, vStart, vEnd);
          } catch (err) {
            lastReason = `nameConstraints: ${lastReason}`;
            throw err;
          }
        });
      } else if (is(b, oidStart, oidEnd, OID_NS_CERT_TYPE)) {
        part('extensions', () => {
          expect(b, vStart, vEnd, 0x03, 'netscape-cert-type BIT STRING');
          if (tEnd !== vEnd || tEnd === tStart || b[tStart]! > 7) refuse('malformed netscape-cert-type');
        });
      } else if (is(b, oidStart, oidEnd, OID_SUBJECT_KEY_ID)) {
        part('subjectKeyIdentifier', () => {
          expect(b, vStart, vEnd, 0x04, 'SubjectKeyIdentifier OCTET STRING');
          if (tEnd !== vEnd || tEnd === tStart) refuse('SubjectKeyIdentifier is empty or has trailing bytes');
          skiStart = tStart;
          skiEnd = tEnd;
        });
      }
    }
  });
  if (problems.some((p) => p.field === 'extensions')) {
    // The list itself is broken: nothing read from it counts.
    s.dnsNames = [];
    s.ipAddresses = [];
    s.uris = [];
    keyUsage = -1;
    ca = false;
  }
  s.keyCertSign = keyUsage >= 0 && (keyUsage & KEY_CERT_SIGN) !== 0;
  // OpenSSL's X509_check_ca: no CA if any extension it caches is invalid, or keyUsage lacks keyCertSign.
  s.isCA = ca && !partFailed && (keyUsage < 0 || s.keyCertSign);
  s.pathLen = s.isCA ? pathLen : undefined;
}

/** A signature AlgorithmIdentifier this reader accepts: known OID with the parameters its RFC requires. */
function checkSignatureAlgorithm(b: Uint8Array, start: number, end: number): void {
  readOid(b, start, end, 'signature algorithm');
  const os = tStart;
  const oe = tEnd;
  const paramsAt = tEnd;
  let params = -1; // -1 absent, else the tag
  if (paramsAt < end) {
    tlv(b, paramsAt, end);
    if (tEnd !== end) refuse('trailing bytes in signature AlgorithmIdentifier');
    params = tTag;
    if (params === 0x05 && tEnd !== tStart) refuse('NULL parameters with content');
  }
  if (startsWith(b, os, oe, RSA_PKCS1_PREFIX, 1)) {
    const last = b[oe - 1]!;
    if (last === 10) {
      if (params !== 0x30) refuse('RSASSA-PSS without RSASSA-PSS-params');
      return;
    }
    if (last !== 5 && (last < 11 || last > 14)) refuse(`unknown signature algorithm ${oidText(b, os, oe)}`);
    if (params !== -1 && params !== 0x05) refuse('RSA signature algorithm parameters are not NULL');
    return;
  }
  const absentOnly =
    (startsWith(b, os, oe, ECDSA_SHA2_PREFIX, 1) && b[oe - 1]! >= 1 && b[oe - 1]! <= 4) ||
    is(b, os, oe, OID_ECDSA_SHA1) ||
    is(b, os, oe, OID_ED25519) ||
    is(b, os, oe, OID_ED448) ||
    (startsWith(b, os, oe, ML_DSA_PREFIX, 1) && b[oe - 1]! >= 17 && b[oe - 1]! <= 19);
  if (!absentOnly) refuse(`unknown signature algorithm ${oidText(b, os, oe)}`);
  if (params !== -1) refuse('signature algorithm must have no parameters');
}

interface Walked {
  summary: CertSummary;
  parts: CertificateParts;
}

function walk(der: Uint8Array, withSummary: boolean): Walked {
  const b = der;
  strictLengths = false;
  expect(b, 0, b.length, 0x30, 'Certificate SEQUENCE');
  if (tEnd !== b.length) fail('trailing bytes after Certificate');
  const certEnd = tEnd;
  const tbsAt = tStart;
  expect(b, tbsAt, certEnd, 0x30, 'TBSCertificate SEQUENCE');
  const tbsStart = tStart;
  const tbsEnd = tEnd;
  expect(b, tbsEnd, certEnd, 0x30, 'signatureAlgorithm SEQUENCE');
  const sigAlgAt = tbsEnd;
  const sigAlgStart = tStart;
  const sigAlgEnd = tEnd;
  expect(b, tEnd, certEnd, 0x03, 'signatureValue BIT STRING');
  if (tEnd !== certEnd) fail('trailing bytes in Certificate');
  const sigStart = tStart;
  const sigEnd = tEnd;

  let p = tbsStart;
  tlv(b, p, tbsEnd);
  let versionStart = -1;
  let versionEnd = -1;
  if (tTag === 0xa0) {
    const vEnd = tEnd;
    expect(b, tStart, vEnd, 0x02, 'version INTEGER');
    if (tEnd !== vEnd) fail('trailing bytes in version');
    versionStart = tStart;
    versionEnd = tEnd;
    p = vEnd;
    tlv(b, p, tbsEnd);
  }
  if (tTag !== 0x02) fail('expected serialNumber INTEGER');
  if (tEnd === tStart) fail('empty serialNumber');
  let serialStart = tStart;
  const serialEnd = tEnd;
  let serialFlag: CertSummary['serialFlag'];
  const s0 = b[serialStart]!;
  const s1 = serialEnd - serialStart > 1 ? b[serialStart + 1]! : -1;
  if ((s0 === 0 && s1 >= 0 && s1 < 0x80) || (s0 === 0xff && s1 >= 0x80)) serialFlag = 'non-minimal';
  else if (s0 >= 0x80) serialFlag = 'negative';
  if (serialEnd - serialStart > 1 && b[serialStart] === 0 && b[serialStart + 1]! >= 0x80) serialStart++;

  expect(b, serialEnd, tbsEnd, 0x30, 'signature AlgorithmIdentifier');
  const tbsSigAlgAt = serialEnd;
  const tbsSigAlgEnd = tEnd;
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
    serialFlag,
    subjectCommonName: undefined,
    issuerCommonName: undefined,
    dnsNames: [],
    ipAddresses: [],
    uris: [],
    isCA: false,
    keyCertSign: false,
    pathLen: undefined,
    selfIssued: false,
    spkiSha256: '',
    publicKeySha256: '',
    keyAlgorithm: 'unknown',
    problems: NO_PROBLEMS,
  };

  // From here on each part is read strictly; a failure is recorded against it, not thrown.
  strictLengths = true;
  const problems: CertProblem[] = [];
  const part = (field: CertField, read: () => void): void => {
    try {
      read();
    } catch (err) {
      if (!(err instanceof PkiError)) throw err;
      problems.push({ field, reason: lastReason });
    }
  };
  part('version', () => {
    let version = 0;
    if (versionStart >= 0) {
      tStart = versionStart;
      tEnd = versionEnd;
      version = smallNonNegative(b, 'version');
    }
    if (versionStart >= 0 && version === 0) refuse('version v1 is encoded (DER omits a DEFAULT value)');
    if (version > 2) refuse(`unknown version ${version + 1}`);
    if (extStart >= 0 && version !== 2) refuse('extensions in a certificate that is not v3');
  });
  if (serialFlag === 'non-minimal')
    problems.push({ field: 'serialNumber', reason: 'serialNumber is not minimally encoded' });
  part('signatureAlgorithm', () => {
    if (!equalRange(b, tbsSigAlgAt, tbsSigAlgEnd, sigAlgAt, sigAlgEnd))
      refuse('signatureAlgorithm differs from the TBSCertificate signature field');
    checkSignatureAlgorithm(b, sigAlgStart, sigAlgEnd);
  });
  part('signature', () => {
    if (sigEnd - sigStart < 2 || b[sigStart] !== 0) refuse('signatureValue is empty or has unused bits');
  });
  let subjectCommonName: string | undefined;
  let issuerCommonName: string | undefined;
  part('subject', () => {
    subjectCommonName = commonName(b, subjectStart, subjectEnd);
  });
  part('issuer', () => {
    issuerCommonName = commonName(b, issuerStart, issuerEnd);
  });
  part('subjectPublicKeyInfo', () => {
    summary.keyAlgorithm = classifySpki(b, spkiStart, spkiEnd);
  });
  if (problems.length > 0 && problems[problems.length - 1]!.field === 'subjectPublicKeyInfo')
    spkiNeedsCanonical = false;
  skiStart = -1;
  if (extStart >= 0) readExtensions(b, extStart, extEnd, summary, problems);
  strictLengths = false;
  const subjectKeyId = skiStart >= 0 ? b.subarray(skiStart, skiEnd) : undefined;

  if (withSummary) {
    summary.serialHex = hex(b, serialStart, serialEnd);
    summary.subjectCommonName = subjectCommonName;
    summary.issuerCommonName = issuerCommonName;
    summary.selfIssued = equalRange(b, issuerAt, issuerEnd, subjectAt, subjectEnd);
    const spki = b.subarray(spkiAt, spkiEnd);
    summary.spkiSha256 = hash('sha256', spki, 'hex');
    summary.publicKeySha256 = spkiNeedsCanonical
      ? canonicalSpkiSha256(spki, summary.keyAlgorithm)
      : summary.spkiSha256;
    if (problems.length > 0) summary.problems = problems;
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

const RSA_ALGORITHM_WITH_NULL = Uint8Array.of(0x30, 0x0d, 0x06, 0x09, ...OID_RSA, 0x05, 0x00);

/**
 * SHA-256 of the canonical form of a valid SPKI that is not canonical as written: an RSA key
 * without the NULL parameters (re-encoded here, cheap) or a compressed EC point (node:crypto
 * decompresses it; rare). Falls back to the bytes as written if node:crypto cannot read it.
 */
function canonicalSpkiSha256(spki: Uint8Array, algorithm: KeyAlgorithm | 'unknown'): string {
  if (algorithm.startsWith('rsa-')) {
    expect(spki, 0, spki.length, 0x30, 'SubjectPublicKeyInfo SEQUENCE');
    expect(spki, tStart, spki.length, 0x30, 'AlgorithmIdentifier');
    const bitsAt = tEnd;
    return hash('sha256', encodeSequence([RSA_ALGORITHM_WITH_NULL, spki.subarray(bitsAt)]), 'hex');
  }
  try {
    const exported = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).export({
      type: 'spki',
      format: 'der',
    });
    return hash('sha256', exported, 'hex');
  } catch {
    return hash('sha256', spki, 'hex');
  }
}

/**
 * Reads the renewal-relevant facts from certificate DER. Throws PkiError('DER_MALFORMED') for any
 * input that is not readable for expiry; never throws anything else. Parts that are not acceptable
 * to act on are listed in `problems` (see assertAcceptable) and give no names.
 */
export function readCertificateSummary(der: Uint8Array): CertSummary {
  return walk(der, true).summary;
}

/** The CERT_UNACCEPTABLE error for a summary's first problem, or undefined when it has none. */
export function unacceptableError(summary: CertSummary): PkiError | undefined {
  const first = summary.problems[0];
  if (first === undefined) return undefined;
  return new PkiError('CERT_UNACCEPTABLE', `certificate ${first.field} is not acceptable: ${first.reason}`, {
    field: first.field,
  });
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
  try {
    strictLengths = true;
    return classifySpki(spki, tStart, tEnd);
  } catch (err) {
    if (err instanceof PkiError && err.code === 'CERT_UNACCEPTABLE') fail(lastReason);
    throw err;
  } finally {
    strictLengths = false;
  }
}
