/**
 * Strict decoding of the ASN.1 string types and OBJECT IDENTIFIER contents an X.509 name or
 * general name can carry. Each function takes a content range and returns the decoded value or
 * a reason it is invalid; none throws. Used by der.ts for the "acceptable to act on" level, where
 * a string OpenSSL would refuse (invalid UTF-8, a surrogate in a BMPString, a code point past
 * U+10FFFF) must be refused too, never replaced with U+FFFD.
 */

/** Tags of the string types decoded here (universal class, primitive). */
export const StringTag = {
  utf8: 0x0c,
  numeric: 0x12,
  printable: 0x13,
  teletex: 0x14,
  ia5: 0x16,
  visible: 0x1a,
  universal: 0x1c,
  bmp: 0x1e,
} as const;

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Result of a strict decode: the string, or why the bytes are not a valid value of the type. */
export type Decoded = { ok: true; value: string } | { ok: false; reason: string };

const bad = (reason: string): Decoded => ({ ok: false, reason });

function ascii(
  b: Uint8Array,
  start: number,
  end: number,
  allowed: (c: number) => boolean,
  type: string,
): Decoded {
  let s = '';
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    if (!allowed(c)) return bad(`${type} holds byte 0x${c.toString(16).padStart(2, '0')}`);
    s += String.fromCharCode(c);
  }
  return { ok: true, value: s };
}

const isPrintableChar = (c: number): boolean =>
  (c >= 0x41 && c <= 0x5a) ||
  (c >= 0x61 && c <= 0x7a) ||
  (c >= 0x30 && c <= 0x39) ||
  c === 0x20 ||
  c === 0x27 ||
  (c >= 0x28 && c <= 0x29) ||
  (c >= 0x2b && c <= 0x2f) ||
  c === 0x3a ||
  c === 0x3d ||
  c === 0x3f;

/** IA5String: 7-bit bytes (DNS names, URIs, e-mail addresses are IA5). */
export function ia5(b: Uint8Array, start: number, end: number): Decoded {
  return ascii(b, start, end, (c) => c < 0x80, 'IA5String');
}

/**
 * Decodes a string of one of the standard ASN.1 string types. `undefined` when `tag` is not a
 * string type this reader knows (the caller decides whether that is acceptable).
 */
export function decodeString(b: Uint8Array, tag: number, start: number, end: number): Decoded | undefined {
  switch (tag) {
    case StringTag.utf8: {
      let ascii = true;
      for (let i = start; i < end; i++) if (b[i]! >= 0x80) ascii = false;
      if (ascii) return { ok: true, value: latin1(b, start, end) };
      try {
        return { ok: true, value: fatalUtf8.decode(b.subarray(start, end)) };
      } catch {
        return bad('UTF8String is not valid UTF-8');
      }
    }
    case StringTag.numeric:
      return ascii(b, start, end, (c) => c === 0x20 || (c >= 0x30 && c <= 0x39), 'NumericString');
    case StringTag.printable:
      return ascii(b, start, end, isPrintableChar, 'PrintableString');
    case StringTag.teletex:
      // T.61 read as Latin-1, as OpenSSL and every TLS library do.
      return ascii(b, start, end, () => true, 'TeletexString');
    case StringTag.ia5:
      return ia5(b, start, end);
    case StringTag.visible:
      return ascii(b, start, end, (c) => c >= 0x20 && c <= 0x7e, 'VisibleString');
    case StringTag.bmp: {
      if ((end - start) % 2 !== 0) return bad('BMPString has an odd length');
      let s = '';
      for (let i = start; i < end; i += 2) {
        const u = (b[i]! << 8) | b[i + 1]!;
        if (u >= 0xd800 && u <= 0xdfff) return bad('BMPString holds a surrogate');
        s += String.fromCharCode(u);
      }
      return { ok: true, value: s };
    }
    case StringTag.universal: {
      if ((end - start) % 4 !== 0) return bad('UniversalString length is not a multiple of 4');
      let s = '';
      for (let i = start; i < end; i += 4) {
        const cp = ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
          return bad('UniversalString holds an invalid code point');
        s += String.fromCodePoint(cp);
      }
      return { ok: true, value: s };
    }
    default:
      return undefined;
  }
}

function latin1(b: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF. */
function utf8Valid(b: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let min: number;
    let cp: number;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      min = 0x80;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      min = 0x800;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      min = 0x10000;
      cp = c & 0x07;
    } else return false;
    if (i + n >= end) return false; // truncated sequence
    for (let k = 1; k <= n; k++) {
      const d = b[i + k]!;
      if ((d & 0xc0) !== 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

/**
 * Why b[start..end) is not a valid value of string type `tag`, without building the string:
 * undefined when it is valid, a reason otherwise ('not a standard string type' for other tags).
 */
export function stringProblem(b: Uint8Array, tag: number, start: number, end: number): string | undefined {
  const scan = (ok: (c: number) => boolean, type: string): string | undefined => {
    for (let i = start; i < end; i++)
      if (!ok(b[i]!)) return `${type} holds byte 0x${b[i]!.toString(16).padStart(2, '0')}`;
    return undefined;
  };
  switch (tag) {
    case StringTag.utf8:
      return utf8Valid(b, start, end) ? undefined : 'UTF8String is not valid UTF-8';
    case StringTag.numeric:
      return scan((c) => c === 0x20 || (c >= 0x30 && c <= 0x39), 'NumericString');
    case StringTag.printable:
      return scan(isPrintableChar, 'PrintableString');
    case StringTag.teletex:
      return undefined;
    case StringTag.ia5:
      return scan((c) => c < 0x80, 'IA5String');
    case StringTag.visible:
      return scan((c) => c >= 0x20 && c <= 0x7e, 'VisibleString');
    default: {
      // BMP and Universal strings are rare: decode them to check.
      const d = decodeString(b, tag, start, end);
      if (d === undefined) return 'not a standard string type';
      return d.ok ? undefined : d.reason;
    }
  }
}

/**
 * Why the OBJECT IDENTIFIER content b[start..end) is not valid DER (X.690 8.19), or undefined:
 * non-empty, every subidentifier minimal (no leading 0x80 octet) and terminated.
 */
export function oidProblem(b: Uint8Array, start: number, end: number): string | undefined {
  if (start === end) return 'empty OBJECT IDENTIFIER';
  let atStart = true;
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    if (atStart && c === 0x80) return 'OBJECT IDENTIFIER subidentifier is not minimal';
    atStart = (c & 0x80) === 0;
  }
  if (!atStart) return 'OBJECT IDENTIFIER ends inside a subidentifier';
  return undefined;
}

/** Dotted text of a valid OID's content (for messages); call only after oidProblem() said none. */
export function oidText(b: Uint8Array, start: number, end: number): string {
  const arcs: number[] = [];
  let v = 0;
  for (let i = start; i < end; i++) {
    v = v * 128 + (b[i]! & 0x7f);
    if ((b[i]! & 0x80) === 0) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}
