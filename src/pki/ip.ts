/**
 * IP address text <-> bytes, with one canonical text form so that names requested in config and
 * names read from certificates compare equal: IPv4 dotted decimal; IPv6 as the WHATWG URL host
 * serializer writes it (lowercase hex, no leading zeros, the first longest run of two or more zero
 * groups compressed to "::", no embedded dotted quad).
 */

/** Formats 4 or 16 address bytes from `b[start..start+len)`. */
export function formatIp(b: Uint8Array, start: number, len: number): string {
  if (len === 4) {
    return `${b[start]!}.${b[start + 1]!}.${b[start + 2]!}.${b[start + 3]!}`;
  }
  const groups: number[] = new Array(8);
  for (let i = 0; i < 8; i++) groups[i] = (b[start + 2 * i]! << 8) | b[start + 2 * i + 1]!;
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestAt) {
      out += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    out += groups[i]!.toString(16);
    if (i < 7) out += ':';
  }
  return out;
}

function parseIpv4(text: string, out: number[]): boolean {
  const parts = text.split('.');
  if (parts.length !== 4) return false;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return false;
    const n = Number(p);
    if (n > 255) return false;
    out.push(n);
  }
  return true;
}

/** Parses an IPv4 or IPv6 literal (no brackets, no zone id) to 4 or 16 bytes; undefined if invalid. */
export function parseIp(text: string): Uint8Array | undefined {
  const v4: number[] = [];
  if (parseIpv4(text, v4)) return Uint8Array.from(v4);
  if (!text.includes(':')) return undefined;
  let head = text;
  let tail = '';
  const dbl = text.indexOf('::');
  if (dbl >= 0) {
    if (text.indexOf('::', dbl + 1) >= 0) return undefined;
    head = text.slice(0, dbl);
    tail = text.slice(dbl + 2);
  }
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === '' ? [] : tail.split(':');
  const groups: number[] = [];
  const all = [...headParts, ...tailParts];
  const embedded: number[] = [];
  const last = all[all.length - 1];
  if (last?.includes('.')) {
    if (!parseIpv4(last, embedded)) return undefined;
    if (tailParts.length > 0) tailParts.pop();
    else headParts.pop();
  }
  const toGroups = (parts: string[]): number[] | undefined => {
    const r: number[] = [];
    for (const p of parts) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
      r.push(Number.parseInt(p, 16));
    }
    return r;
  };
  const h = toGroups(headParts);
  const t = toGroups(tailParts);
  if (h === undefined || t === undefined) return undefined;
  const extra = embedded.length === 4 ? 2 : 0;
  const explicit = h.length + t.length + extra;
  if (dbl >= 0) {
    if (explicit > 7) return undefined;
    groups.push(...h, ...new Array<number>(8 - explicit).fill(0), ...t);
  } else {
    if (explicit !== 8) return undefined;
    groups.push(...h);
  }
  const bytes = new Uint8Array(16);
  for (let i = 0; i < groups.length; i++) {
    bytes[2 * i] = groups[i]! >> 8;
    bytes[2 * i + 1] = groups[i]! & 0xff;
  }
  if (extra) bytes.set(embedded, 12);
  return bytes;
}

/** Canonical text of an IP literal (see module doc), or undefined if it is not one. */
export function canonicalIp(text: string): string | undefined {
  const b = parseIp(text);
  return b === undefined ? undefined : formatIp(b, 0, b.length);
}
