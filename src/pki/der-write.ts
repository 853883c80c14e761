/**
 * DER encoding: the handful of ASN.1 types an X.509 certificate is made of. Pure and
 * synchronous; every function returns a complete TLV. Only definite, minimal lengths.
 */

function lengthOctets(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return [0x80 | out.length, ...out];
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One TLV with identifier octet `tag` around `content` (or the concatenation of several). */
export function tlv(tag: number, content: Uint8Array | readonly Uint8Array[]): Uint8Array {
  const body = content instanceof Uint8Array ? content : concat(content);
  const head = lengthOctets(body.length);
  const out = new Uint8Array(1 + head.length + body.length);
  out[0] = tag;
  out.set(head, 1);
  out.set(body, 1 + head.length);
  return out;
}

export const sequence = (parts: readonly Uint8Array[]): Uint8Array => tlv(0x30, parts);
export const set = (parts: readonly Uint8Array[]): Uint8Array => tlv(0x31, parts);
export const octetString = (b: Uint8Array): Uint8Array => tlv(0x04, b);
export const NULL = Uint8Array.of(0x05, 0x00);
export const TRUE = Uint8Array.of(0x01, 0x01, 0xff);

/** BIT STRING holding whole octets (a signature, a public key). */
export function bitString(b: Uint8Array): Uint8Array {
  return tlv(0x03, [Uint8Array.of(0), b]);
}

/**
 * BIT STRING of named bits, bit 0 first (X.509's KeyUsage numbering): `bits` has bit i set
 * for named bit i. Trailing zero bits are dropped, as DER requires for named-bit lists.
 */
export function namedBits(bits: number): Uint8Array {
  if (bits === 0) return Uint8Array.of(0x03, 0x01, 0x00);
  const highest = 31 - Math.clz32(bits);
  const octets = new Uint8Array(Math.floor(highest / 8) + 1);
  for (let i = 0; i <= highest; i++) {
    if (bits & (1 << i)) octets[i >> 3]! |= 0x80 >> (i & 7);
  }
  return tlv(0x03, [Uint8Array.of(octets.length * 8 - highest - 1), octets]);
}

/** Non-negative INTEGER from big-endian magnitude octets (a sign octet is added when needed). */
export function unsignedInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const m = magnitude.subarray(start);
  if (m.length === 0) return Uint8Array.of(0x02, 0x01, 0x00);
  return m[0]! & 0x80 ? tlv(0x02, [Uint8Array.of(0), m]) : tlv(0x02, m);
}

export function smallInteger(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 127) throw new RangeError(`small INTEGER out of range: ${n}`);
  return Uint8Array.of(0x02, 0x01, n);
}

/** OBJECT IDENTIFIER from dotted text, e.g. "2.5.29.17". */
export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) {
    throw new RangeError(`not an OID: ${dotted}`);
  }
  const out: number[] = [];
  const push = (v: number): void => {
    const septets = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) septets.unshift(0x80 | (x & 0x7f));
    out.push(...septets);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return tlv(0x06, Uint8Array.from(out));
}

const utf8 = new TextEncoder();
export const utf8String = (s: string): Uint8Array => tlv(0x0c, utf8.encode(s));

/**
 * RFC 5280 Time: UTCTime for 1950–2049, GeneralizedTime otherwise, whole seconds, "Z".
 * `ms` is truncated to the second.
 */
export function time(ms: number): Uint8Array {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) throw new RangeError(`year ${y} cannot be encoded`);
  const two = (n: number): string => String(n).padStart(2, '0');
  const rest = `${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}${two(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(0x17, utf8.encode(`${two(y % 100)}${rest}`));
  return tlv(0x18, utf8.encode(`${String(y).padStart(4, '0')}${rest}`));
}
