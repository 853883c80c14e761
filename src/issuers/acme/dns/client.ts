/** A DNS client for one server: queries and RFC2136 UPDATEs over UDP (TCP when truncated). */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP, isIPv6, Socket } from 'node:net';
import { signMessage, type TsigKey, verifyResponse } from './tsig.ts';
import {
  type DecodedMessage,
  decodeMessage,
  encodeMessage,
  isTruncated,
  normalizeName,
  Opcode,
  type Question,
  type ResourceRecord,
  RRClass,
  RRType,
  rcodeName,
  rcodeOf,
  readTxt,
} from './wire.ts';

export class DnsError extends Error {
  readonly rcode: string;
  constructor(message: string, rcode: string) {
    super(message);
    this.name = 'DnsError';
    this.rcode = rcode;
  }
}

export interface DnsServer {
  host: string;
  port: number;
}

/** "10.0.0.53:53" / "[fd00::53]:53" → host and port. */
export function parseServer(hostPort: string): DnsServer {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+)):(\d+)$/.exec(hostPort);
  if (!m) return { host: hostPort, port: 53 };
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}

export class DnsClient {
  readonly server: DnsServer;
  private readonly timeoutMs: number;
  private readonly tries: number;

  constructor(server: DnsServer, opts: { timeoutMs?: number; tries?: number } = {}) {
    this.server = server;
    this.timeoutMs = opts.timeoutMs ?? 2_000;
    this.tries = opts.tries ?? 3;
  }

  private describe(): string {
    return `${this.server.host}:${this.server.port}`;
  }

  async query(name: string, type: number): Promise<DecodedMessage> {
    const id = randomInt(0, 65536);
    const question = { name, type, class: RRClass.IN };
    const msg = encodeMessage({
      id,
      flags: 0,
      questions: [question],
      answers: [],
      authority: [],
      additional: [],
    });
    return await this.exchange(msg, id, question);
  }

  /** TXT strings of `name` as this server answers them (empty when none). */
  async txt(name: string): Promise<string[]> {
    const res = await this.query(name, RRType.TXT);
    return res.answers
      .filter((rr) => rr.type === RRType.TXT && normalizeName(rr.name) === normalizeName(name))
      .map((rr) => readTxt(rr.rdata));
  }

  /**
   * The zone `name` is in, from the SOA this (authoritative) server returns: the answer's SOA
   * when `name` is the apex, else the authority section's. Walks up a label at a time when the
   * server says nothing useful.
   */
  async findZone(name: string): Promise<string> {
    let candidate = normalizeName(name);
    for (;;) {
      const res = await this.query(candidate, RRType.SOA);
      const rcode = rcodeName(rcodeOf(res.flags));
      if (rcode === 'NOERROR' || rcode === 'NXDOMAIN') {
        const soa = [...res.answers, ...res.authority].find((rr) => rr.type === RRType.SOA);
        if (soa) return normalizeName(soa.name);
      }
      const dot = candidate.indexOf('.');
      if (dot < 0) {
        throw new DnsError(`${this.describe()} is not authoritative for any zone containing ${name}`, rcode);
      }
      candidate = candidate.slice(dot + 1);
    }
  }

  /** Sends an UPDATE for `zone` (no prerequisites); throws with the server's rcode on refusal. */
  async update(zone: string, updates: ResourceRecord[], key?: TsigKey): Promise<void> {
    const id = randomInt(0, 65536);
    const zoneSection = { name: zone, type: RRType.SOA, class: RRClass.IN };
    const msg = encodeMessage({
      id,
      flags: Opcode.UPDATE << 11,
      questions: [zoneSection],
      answers: [],
      authority: updates,
      additional: [],
    });
    const signed = key ? signMessage(msg, key) : undefined;
    const res = await this.exchange(signed?.signed ?? msg, id, zoneSection);
    const rcode = rcodeName(rcodeOf(res.flags));
    if (key && signed) {
      try {
        verifyResponse(res, key, signed.mac);
      } catch (err) {
        throw new DnsError(`UPDATE of zone ${zone} at ${this.describe()}: ${(err as Error).message}`, rcode);
      }
    }
    if (rcode !== 'NOERROR') {
      throw new DnsError(
        `${this.describe()} answered ${rcode} to the UPDATE of zone ${zone}${rcode === 'REFUSED' || rcode === 'NOTAUTH' ? ' (check the TSIG key and the update policy)' : ''}`,
        rcode,
      );
    }
  }

  /** The server's address as datagrams from it carry it (a host name is resolved once). */
  private async address(): Promise<string> {
    if (isIP(this.server.host)) return this.server.host;
    return (await lookup(this.server.host)).address;
  }

  private async exchange(msg: Uint8Array, id: number, question: Question): Promise<DecodedMessage> {
    let lastError: unknown;
    const address = await this.address();
    for (let attempt = 0; attempt < this.tries; attempt++) {
      try {
        const res = await this.udp(msg, id, address, question);
        return isTruncated(res.flags) ? await this.tcp(msg, id, address, question) : res;
      } catch (err) {
        lastError = err;
      }
    }
    throw lastError instanceof Error ? lastError : new Error(String(lastError));
  }

  private udp(msg: Uint8Array, id: number, address: string, question: Question): Promise<DecodedMessage> {
    return new Promise((resolve, reject) => {
      const socket = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
      const done = (err: Error | undefined, res?: DecodedMessage) => {
        clearTimeout(timer);
        socket.close();
        if (err) reject(err);
        else if (res) resolve(res);
      };
      const timer = setTimeout(
        () => done(new Error(`no DNS answer from ${this.describe()} within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      socket.on('error', (err) => done(err));
      socket.on('message', (buf, from) => {
        // Only the server we asked may answer (a datagram from any other address or port is
        // somebody guessing), and only to the question we asked.
        if (from.address !== address || from.port !== this.server.port) return;
        try {
          const res = decodeMessage(new Uint8Array(buf));
          if (res.id === id && (res.flags & 0x8000) !== 0 && answersQuestion(res, question))
            done(undefined, res);
        } catch {
          // Not an answer to us (or garbage): keep waiting until the timeout.
        }
      });
      socket.send(msg, this.server.port, address, (err) => {
        if (err) done(err);
      });
    });
  }

  private tcp(msg: Uint8Array, id: number, address: string, question: Question): Promise<DecodedMessage> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      let buf = Buffer.alloc(0);
      const done = (err: Error | undefined, res?: DecodedMessage) => {
        clearTimeout(timer);
        socket.destroy();
        if (err) reject(err);
        else if (res) resolve(res);
      };
      const timer = setTimeout(
        () => done(new Error(`no DNS answer over TCP from ${this.describe()} within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      socket.on('error', (err) => done(err));
      socket.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 2) return;
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) return;
        try {
          const res = decodeMessage(new Uint8Array(buf.subarray(2, 2 + len)));
          if (res.id !== id) done(new Error('DNS answer over TCP has the wrong id'));
          else if (!answersQuestion(res, question))
            done(new Error(`DNS answer over TCP from ${this.describe()} is for another question`));
          else done(undefined, res);
        } catch (err) {
          done(err as Error);
        }
      });
      socket.connect(this.server.port, address, () => {
        const head = Buffer.alloc(2);
        head.writeUInt16BE(msg.length, 0);
        socket.write(Buffer.concat([head, msg]));
      });
    });
  }
}

/** The answer repeats exactly the one question asked (RFC 1035 §4.1.2; RFC 2136 §3.8 for UPDATE). */
function answersQuestion(res: DecodedMessage, q: Question): boolean {
  const echoed = res.questions[0];
  return (
    res.questions.length === 1 &&
    echoed !== undefined &&
    normalizeName(echoed.name) === normalizeName(q.name) &&
    echoed.type === q.type &&
    echoed.class === q.class
  );
}
