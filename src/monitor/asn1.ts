/**
 * A small bounds-checked DER reader for the container formats the monitor opens (PKCS#12): just
 * enough to walk SEQUENCEs, read OIDs, INTEGERs and OCTET STRINGs. Certificates themselves are
 * read by pki/der.ts. Every read is checked against its parent's end, so hostile input can only
 * make it throw a ReadError, never read out of range or loop.
 */
import { ReadError } from './errors.ts';

export interface Tlv {
  tag: number;
  /** Offset of the contents in the buffer. */
  start: number;
  /** Offset just past the contents. */
  end: number;
  /** Offset of the tag (the whole element is buf[headerStart, end)). */
  headerStart: number;
}

export const Tag = {
  integer: 0x02,
  octetString: 0x04,
  oid: 0x06,
  sequence: 0x30,
  set: 0x31,
  context0: 0xa0,
  context0Primitive: 0x80,
} as const;

function bad(what: string): never {
  throw new ReadError('malformed', `not a valid keystore: ${what}`);
}

/** The element at `pos`, which must end at or before `limit`. */
export function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) bad('truncated element');
  const tag = buf[pos] as number;
  if ((tag & 0x1f) === 0x1f) bad('multi-byte tag');
  let len = buf[pos + 1] as number;
  let start = pos + 2;
  if (len === 0x80) bad('indefinite length (BER) is not supported');
  if (len > 0x80) {
    const n = len & 0x7f;
    if (n > 4 || start + n > limit) bad('length too long');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[start + i] as number);
    start += n;
  }
  const end = start + len;
  if (end > limit) bad('element overruns its parent');
  return { tag, start, end, headerStart: pos };
}

/** The elements inside a constructed element, in order. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = parent.start;
  while (pos < parent.end) {
    const t = readTlv(buf, pos, parent.end);
    out.push(t);
    pos = t.end;
    if (out.length > 10_000) bad('too many elements');
  }
  return out;
}

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) bad(`${what} expected`);
  return t;
}

export function contents(buf: Uint8Array, t: Tlv): Uint8Array {
  return buf.subarray(t.start, t.end);
}

/** Dotted text of an OBJECT IDENTIFIER element. */
export function oidText(buf: Uint8Array, t: Tlv): string {
  if (t.tag !== Tag.oid || t.end === t.start) bad('object identifier expected');
  const parts: number[] = [];
  let value = 0;
  for (let i = t.start; i < t.end; i++) {
    const b = buf[i] as number;
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 128) bad('object identifier component too large');
    if ((b & 0x80) === 0) {
      if (parts.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        parts.push(first, value - first * 40);
      } else parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

/** A small non-negative INTEGER (iteration counts, versions, key lengths). */
export function smallInt(buf: Uint8Array, t: Tlv, what: string): number {
  if (t.tag !== Tag.integer || t.end === t.start || t.end - t.start > 6)
    bad(`${what} must be a small integer`);
  if (((buf[t.start] as number) & 0x80) !== 0) bad(`${what} is negative`);
  let v = 0;
  for (let i = t.start; i < t.end; i++) v = v * 256 + (buf[i] as number);
  return v;
}
