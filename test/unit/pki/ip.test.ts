import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalIp, formatIp, parseIp } from '../../../src/pki/index.ts';

/** The WHATWG URL host serializer is the reference for canonical IPv6 text. */
const viaUrl = (ip: string) => new URL(`http://[${ip}]/`).hostname.slice(1, -1);

describe('IP canonical form', () => {
  it('formats known values', () => {
    expect(canonicalIp('192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalIp('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalIp('::')).toBe('::');
    expect(canonicalIp('::1')).toBe('::1');
    expect(canonicalIp('1::')).toBe('1::');
    expect(canonicalIp('1:0:0:2:0:0:0:3')).toBe('1:0:0:2::3');
    expect(canonicalIp('1:0:2:0:3:0:4:0')).toBe('1:0:2:0:3:0:4:0'); // single zero groups stay
    expect(canonicalIp('::ffff:192.0.2.1')).toBe('::ffff:c000:201');
    expect(canonicalIp('0001:0002:0003:0004:0005:0006:7.8.9.10')).toBe('1:2:3:4:5:6:708:90a');
  });

  it('rejects non-addresses', () => {
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.256',
      '01.2.3.4',
      '1.2.3.4.5',
      'a.b.c.d',
      ':::',
      '1::2::3',
      '12345::',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      'fe80::1%eth0',
      '[::1]',
      '::1.2.3',
    ]) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });

  it('matches the URL serializer for any IPv6 text form', () => {
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        expect(canonicalIp(ip)).toBe(viaUrl(ip));
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips random 16-byte addresses', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        const text = formatIp(b, 0, 16);
        expect(text).toBe(viaUrl(text));
        expect(parseIp(text)).toEqual(b);
      }),
    );
  });

  it('round-trips IPv4', () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        expect(canonicalIp(ip)).toBe(ip);
        expect(formatIp(parseIp(ip)!, 0, 4)).toBe(ip);
      }),
    );
  });
});
