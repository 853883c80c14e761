/** DNS messages (RFC 1035) to and from bytes: just what RFC2136 updates with TSIG need. */

export const RRType = { A: 1, NS: 2, CNAME: 5, SOA: 6, TXT: 16, AAAA: 28, TSIG: 250, ANY: 255 } as const;
export const RRClass = { IN: 1, NONE: 254, ANY: 255 } as const;
export const Opcode = { QUERY: 0, UPDATE: 5 } as const;
export const RCODE_NAMES = [
  'NOERROR',
  'FORMERR',
  'SERVFAIL',
  'NXDOMAIN',
  'NOTIMP',
  'REFUSED',
  'YXDOMAIN',
  'YXRRSET',
  'NXRRSET',
  'NOTAUTH',
  'NOTZONE',
];
export const TSIG_ERRORS: Record<number, string> = {
  16: 'BADSIG',
  17: 'BADKEY',
  18: 'BADTIME',
  22: 'BADTRUNC',
};

export interface Question {
  name: string;
  type: number;
  class: number;
}

export interface ResourceRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  rdata: Uint8Array;
}

export interface Message {
  id: number;
  /** QR, opcode, AA, TC, RD, RA, rcode bits of the header. */
  flags: number;
  questions: Question[];
  answers: ResourceRecord[];
  authority: ResourceRecord[];
  additional: ResourceRecord[];
}

export interface DecodedMessage extends Message {
  /** Byte offset where each additional record starts (TSIG verification strips the last one). */
  additionalOffsets: number[];
  /** Decoded rdata of TSIG records needs names; kept with the raw bytes. */
  raw: Uint8Array;
}

export function opcodeOf(flags: number): number {
  return (flags >> 11) & 0xf;
}
export function rcodeOf(flags: number): number {
  return flags & 0xf;
}
export function isTruncated(flags: number): boolean {
  return (flags & 0x0200) !== 0;
}
export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

/** Absolute name without the trailing dot, as written in configs: "example.test". */
export function normalizeName(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

export class Writer {
  private readonly parts: number[] = [];
  u8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.u8(v >> 8).u8(v);
  }
  u32(v: number): this {
    return this.u16(Math.floor(v / 65536)).u16(v % 65536);
  }
  u48(v: number): this {
    return this.u16(Math.floor(v / 2 ** 32)).u32(v % 2 ** 32);
  }
  bytes(b: Uint8Array): this {
    for (const x of b) this.parts.push(x);
    return this;
  }
  /** Uncompressed wire form. */
  name(name: string): this {
    return this.bytes(encodeName(name));
  }
  get length(): number {
    return this.parts.length;
  }
  toBytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export function encodeName(name: string): Uint8Array {
  const trimmed = name.replace(/\.$/, '');
  const out: number[] = [];
  if (trimmed !== '') {
    for (const label of trimmed.split('.')) {
      const bytes = new TextEncoder().encode(label);
      if (bytes.length === 0 || bytes.length > 63)
        throw new Error(`DNS name ${JSON.stringify(name)} has a bad label`);
      out.push(bytes.length, ...bytes);
    }
  }
  out.push(0);
  if (out.length > 255) throw new Error(`DNS name ${JSON.stringify(name)} is longer than 255 octets`);
  return Uint8Array.from(out);
}

/** TXT rdata: character-strings of at most 255 octets each. */
export function txtRdata(text: string): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  const w = new Writer();
  for (let i = 0; i === 0 || i < bytes.length; i += 255) {
    const chunk = bytes.subarray(i, i + 255);
    w.u8(chunk.length).bytes(chunk);
  }
  return w.toBytes();
}

export function readTxt(rdata: Uint8Array): string {
  let out = '';
  for (let i = 0; i < rdata.length; ) {
    const len = rdata[i] ?? 0;
    out += new TextDecoder().decode(rdata.subarray(i + 1, i + 1 + len));
    i += 1 + len;
  }
  return out;
}

function writeRR(w: Writer, rr: ResourceRecord): void {
  w.name(rr.name).u16(rr.type).u16(rr.class).u32(rr.ttl).u16(rr.rdata.length).bytes(rr.rdata);
}

export function encodeMessage(m: Message): Uint8Array {
  const w = new Writer();
  w.u16(m.id).u16(m.flags).u16(m.questions.length).u16(m.answers.length);
  w.u16(m.authority.length).u16(m.additional.length);
  for (const q of m.questions) w.name(q.name).u16(q.type).u16(q.class);
  for (const rr of [...m.answers, ...m.authority, ...m.additional]) writeRR(w, rr);
  return w.toBytes();
}

export class Reader {
  readonly buf: Uint8Array;
  at = 0;
  constructor(buf: Uint8Array, at = 0) {
    this.buf = buf;
    this.at = at;
  }
  private need(n: number): void {
    if (this.at + n > this.buf.length) throw new Error('DNS message is truncated');
  }
  u8(): number {
    this.need(1);
    return this.buf[this.at++] ?? 0;
  }
  u16(): number {
    return this.u8() * 256 + this.u8();
  }
  u32(): number {
    return this.u16() * 65536 + this.u16();
  }
  u48(): number {
    return this.u16() * 2 ** 32 + this.u32();
  }
  bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }
  /** A possibly compressed name; returned without the trailing dot, case kept. */
  name(): string {
    const labels: string[] = [];
    let at = this.at;
    let jumped = false;
    for (let hops = 0; hops < 128; hops++) {
      const len = this.buf[at];
      if (len === undefined) throw new Error('DNS name runs past the message');
      if (len === 0) {
        if (!jumped) this.at = at + 1;
        return labels.join('.');
      }
      if ((len & 0xc0) === 0xc0) {
        const ptr = ((len & 0x3f) << 8) | (this.buf[at + 1] ?? 0);
        if (!jumped) this.at = at + 2;
        jumped = true;
        at = ptr;
        continue;
      }
      labels.push(new TextDecoder().decode(this.buf.subarray(at + 1, at + 1 + len)));
      at += 1 + len;
    }
    throw new Error('DNS name has a compression loop');
  }
}

function readRR(r: Reader): ResourceRecord {
  const name = r.name();
  const type = r.u16();
  const cls = r.u16();
  const ttl = r.u32();
  const rdata = r.bytes(r.u16());
  return { name, type, class: cls, ttl, rdata };
}

export function decodeMessage(buf: Uint8Array): DecodedMessage {
  const r = new Reader(buf);
  const id = r.u16();
  const flags = r.u16();
  const [qd, an, ns, ar] = [r.u16(), r.u16(), r.u16(), r.u16()];
  const questions: Question[] = [];
  for (let i = 0; i < qd; i++) questions.push({ name: r.name(), type: r.u16(), class: r.u16() });
  const answers: ResourceRecord[] = [];
  for (let i = 0; i < an; i++) answers.push(readRR(r));
  const authority: ResourceRecord[] = [];
  for (let i = 0; i < ns; i++) authority.push(readRR(r));
  const additional: ResourceRecord[] = [];
  const additionalOffsets: number[] = [];
  for (let i = 0; i < ar; i++) {
    additionalOffsets.push(r.at);
    additional.push(readRR(r));
  }
  return { id, flags, questions, answers, authority, additional, additionalOffsets, raw: buf };
}
