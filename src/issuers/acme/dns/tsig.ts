/** TSIG (RFC 8945) with HMAC-SHA256/512: signing requests and verifying the signed responses. */
import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  type DecodedMessage,
  decodeMessage,
  encodeName,
  Reader,
  RRClass,
  RRType,
  TSIG_ERRORS,
  Writer,
} from './wire.ts';

export interface TsigKey {
  /** Key name as configured on the server, e.g. "acme-key" or "acme-key.". */
  name: string;
  algorithm: 'hmac-sha256' | 'hmac-sha512';
  /** The shared secret (decoded from its base64 form). */
  secret: Uint8Array;
}

const FUDGE_SECONDS = 300;

function hashOf(alg: TsigKey['algorithm']): 'sha256' | 'sha512' {
  return alg === 'hmac-sha256' ? 'sha256' : 'sha512';
}

function canonical(name: string): Uint8Array {
  return encodeName(name.toLowerCase());
}

/** TSIG variables (RFC 8945 §4.3.3) that follow the message in the MAC input. */
function variables(
  key: TsigKey,
  timeSigned: number,
  fudge: number,
  error: number,
  other: Uint8Array,
): Uint8Array {
  return new Writer()
    .bytes(canonical(key.name))
    .u16(RRClass.ANY)
    .u32(0)
    .bytes(canonical(`${key.algorithm}.`))
    .u48(timeSigned)
    .u16(fudge)
    .u16(error)
    .u16(other.length)
    .bytes(other)
    .toBytes();
}

function mac(key: TsigKey, parts: Uint8Array[]): Uint8Array {
  const h = createHmac(hashOf(key.algorithm), key.secret);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/**
 * Appends a TSIG record to an encoded message (whose ARCOUNT does not count it yet).
 * Returns the signed message and the MAC, which the response's MAC covers.
 */
export function signMessage(
  message: Uint8Array,
  key: TsigKey,
  now = Date.now(),
): { signed: Uint8Array; mac: Uint8Array } {
  const timeSigned = Math.floor(now / 1000);
  const digest = mac(key, [message, variables(key, timeSigned, FUDGE_SECONDS, 0, new Uint8Array())]);
  const id = ((message[0] ?? 0) << 8) | (message[1] ?? 0);
  const rdata = new Writer()
    .bytes(canonical(`${key.algorithm}.`))
    .u48(timeSigned)
    .u16(FUDGE_SECONDS)
    .u16(digest.length)
    .bytes(digest)
    .u16(id)
    .u16(0)
    .u16(0)
    .toBytes();
  const rr = new Writer()
    .bytes(canonical(key.name))
    .u16(RRType.TSIG)
    .u16(RRClass.ANY)
    .u32(0)
    .u16(rdata.length)
    .bytes(rdata)
    .toBytes();
  const signed = new Uint8Array(message.length + rr.length);
  signed.set(message, 0);
  signed.set(rr, message.length);
  const arcount = (((signed[10] ?? 0) << 8) | (signed[11] ?? 0)) + 1;
  signed[10] = arcount >> 8;
  signed[11] = arcount & 0xff;
  return { signed, mac: digest };
}

interface TsigRdata {
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Uint8Array;
  originalId: number;
  error: number;
  other: Uint8Array;
}

function readTsigRdata(raw: Uint8Array, rdataOffset: number): TsigRdata {
  const r = new Reader(raw, rdataOffset);
  const algorithm = r.name();
  const timeSigned = r.u48();
  const fudge = r.u16();
  const m = r.bytes(r.u16());
  const originalId = r.u16();
  const error = r.u16();
  const other = r.bytes(r.u16());
  return { algorithm, timeSigned, fudge, mac: m, originalId, error, other };
}

/**
 * Checks the TSIG of a response to a request whose MAC was `requestMac`. Throws with the reason
 * when the response is unsigned, signed with another key, or its MAC or time is wrong.
 */
export function verifyResponse(
  msg: DecodedMessage,
  key: TsigKey,
  requestMac: Uint8Array,
  now = Date.now(),
): void {
  const last = msg.additional[msg.additional.length - 1];
  const start = msg.additionalOffsets[msg.additionalOffsets.length - 1];
  if (!last || start === undefined || last.type !== RRType.TSIG) {
    throw new Error('the DNS server did not sign its response (TSIG missing)');
  }
  // Offset of the rdata: after the owner name and the fixed 10 octets.
  const ownerEnd = new Reader(msg.raw, start);
  ownerEnd.name();
  const t = readTsigRdata(msg.raw, ownerEnd.at + 10);
  if (t.error !== 0) {
    throw new Error(
      `the DNS server rejected the TSIG signature: ${TSIG_ERRORS[t.error] ?? `error ${t.error}`}`,
    );
  }
  if (last.name.toLowerCase().replace(/\.$/, '') !== key.name.toLowerCase().replace(/\.$/, '')) {
    throw new Error(`the DNS response is signed with key ${last.name}, not ${key.name}`);
  }
  const stripped = msg.raw.slice(0, start);
  stripped[0] = t.originalId >> 8;
  stripped[1] = t.originalId & 0xff;
  const arcount = (((stripped[10] ?? 0) << 8) | (stripped[11] ?? 0)) - 1;
  stripped[10] = arcount >> 8;
  stripped[11] = arcount & 0xff;
  const expected = mac(key, [
    new Writer().u16(requestMac.length).toBytes(),
    requestMac,
    stripped,
    variables(key, t.timeSigned, t.fudge, t.error, t.other),
  ]);
  if (expected.length !== t.mac.length || !timingSafeEqual(expected, t.mac)) {
    throw new Error('the DNS response has a bad TSIG MAC');
  }
  if (Math.abs(Math.floor(now / 1000) - t.timeSigned) > t.fudge) {
    throw new Error('the DNS response TSIG time is outside the allowed fudge (clock skew?)');
  }
}

export { decodeMessage };
