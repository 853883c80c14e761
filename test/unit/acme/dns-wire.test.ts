import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signMessage, verifyResponse } from '../../../src/issuers/acme/dns/tsig.ts';
import {
  decodeMessage,
  encodeMessage,
  encodeName,
  Opcode,
  RRClass,
  RRType,
  readTxt,
  txtRdata,
} from '../../../src/issuers/acme/dns/wire.ts';

const key = { name: 'acme-key.', algorithm: 'hmac-sha256' as const, secret: Buffer.alloc(32, 1) };

function update(id = 0x1234): Uint8Array {
  return encodeMessage({
    id,
    flags: Opcode.UPDATE << 11,
    questions: [{ name: 'example.test', type: RRType.SOA, class: RRClass.IN }],
    answers: [],
    authority: [
      {
        name: '_acme-challenge.example.test',
        type: RRType.TXT,
        class: RRClass.IN,
        ttl: 60,
        rdata: txtRdata('abc'),
      },
    ],
    additional: [],
  });
}

describe('DNS wire format', () => {
  it('encodes names as length-prefixed labels and rejects bad ones', () => {
    expect([...encodeName('a.bc.')]).toEqual([1, 97, 2, 98, 99, 0]);
    expect([...encodeName('')]).toEqual([0]);
    expect(() => encodeName('a..b')).toThrow(/bad label/);
    expect(() => encodeName(`${'x'.repeat(64)}.test`)).toThrow(/bad label/);
  });

  it('splits long TXT values into 255-octet strings and reads them back', () => {
    const long = 'y'.repeat(600);
    const rdata = txtRdata(long);
    expect(rdata[0]).toBe(255);
    expect(rdata.length).toBe(600 + 3);
    expect(readTxt(rdata)).toBe(long);
    expect([...txtRdata('')]).toEqual([0]);
  });

  it('round-trips a message and follows compression pointers', () => {
    const msg = decodeMessage(update());
    expect(msg.id).toBe(0x1234);
    expect(msg.questions[0]?.name).toBe('example.test');
    expect(msg.authority[0]?.name).toBe('_acme-challenge.example.test');
    // A pointer (0xc00c) back to the question's name.
    const withPointer = Uint8Array.from([
      0,
      1,
      0x80,
      0,
      0,
      1,
      0,
      1,
      0,
      0,
      0,
      0,
      ...encodeName('ex.test'),
      0,
      6,
      0,
      1,
      0xc0,
      12,
      0,
      6,
      0,
      1,
      0,
      0,
      0,
      30,
      0,
      0,
    ]);
    expect(decodeMessage(withPointer).answers[0]?.name).toBe('ex.test');
    expect(() => decodeMessage(withPointer.slice(0, 20))).toThrow(/truncated|past/);
  });

  it('rejects a compression loop', () => {
    const loop = Uint8Array.from([0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 6, 0, 1]);
    expect(() => decodeMessage(loop)).toThrow(/loop/);
  });
});

describe('TSIG', () => {
  it('appends one TSIG record and counts it in ARCOUNT', () => {
    const { signed, mac } = signMessage(update(), key, Date.UTC(2026, 0, 1));
    const msg = decodeMessage(signed);
    expect(msg.additional).toHaveLength(1);
    expect(msg.additional[0]?.type).toBe(RRType.TSIG);
    expect(msg.additional[0]?.name).toBe('acme-key');
    expect(mac.length).toBe(32);
  });

  it('verifies a response signed the way a server signs it, and rejects tampering or another key', () => {
    const now = Date.UTC(2026, 0, 1);
    const request = signMessage(update(), key, now);
    // A "server" response: same id, QR set, signed with the request MAC prefixed (RFC 8945 §4.3.1).
    const body = update();
    body[2] = (body[2] ?? 0) | 0x80;
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(request.mac.length);
    const vars = decodeMessage(signMessage(body, key, now).signed);
    // Re-sign manually: MAC over prefix + requestMac + body + variables, as verifyResponse expects.
    const signedResp = signMessage(body, key, now).signed;
    const start = vars.additionalOffsets[0] ?? 0;
    const variables = Buffer.concat([
      Buffer.from(encodeName('acme-key')),
      Buffer.from([0, 255, 0, 0, 0, 0]),
      Buffer.from(encodeName('hmac-sha256.')),
      Buffer.from([
        0,
        0,
        ...Buffer.from(
          Math.floor(now / 1000)
            .toString(16)
            .padStart(8, '0'),
          'hex',
        ),
      ]),
      Buffer.from([1, 44, 0, 0, 0, 0]),
    ]);
    const mac = createHmac('sha256', key.secret)
      .update(prefix)
      .update(request.mac)
      .update(body)
      .update(variables)
      .digest();
    // Replace the MAC in the response's TSIG rdata (same length) with the response MAC.
    const macAt = signedResp.length - 6 - 32;
    signedResp.set(mac, macAt);
    expect(start).toBeGreaterThan(0);
    expect(() => verifyResponse(decodeMessage(signedResp), key, request.mac, now)).not.toThrow();
    const tampered = signedResp.slice();
    tampered[start - 1] = (tampered[start - 1] ?? 0) ^ 1;
    expect(() => verifyResponse(decodeMessage(tampered), key, request.mac, now)).toThrow(/bad TSIG MAC/);
    expect(() =>
      verifyResponse(decodeMessage(signedResp), { ...key, secret: Buffer.alloc(32, 2) }, request.mac, now),
    ).toThrow(/bad TSIG MAC/);
    expect(() => verifyResponse(decodeMessage(signedResp), key, request.mac, now + 3_600_000)).toThrow(
      /fudge/,
    );
    expect(() => verifyResponse(decodeMessage(body), key, request.mac, now)).toThrow(/did not sign/);
  });
});
