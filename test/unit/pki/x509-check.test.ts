import { describe, expect, it } from 'vitest';
import { readCertificateSummary } from '../../../src/pki/der.ts';
import * as w from '../../../src/pki/der-write.ts';
import {
  assertSigningCa,
  firstCnOf,
  readWithOpenSsl,
  splitAltNames,
  withOpenSslCheck,
} from '../../../src/pki/x509-check.ts';
import { buildCertificate, CN, keys, name, O } from './differential.ts';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('reading node:crypto text', () => {
  it('splits subjectAltName text, JSON-quoted values included', () => {
    expect(
      splitAltNames('DNS:a.example, IP Address:1.2.3.4, DirName:"O=x\\u002cCN=y", URI:https://z/'),
    ).toEqual([
      { kind: 'DNS', value: 'a.example' },
      { kind: 'IP Address', value: '1.2.3.4' },
      { kind: 'DirName', value: 'O=x,CN=y' },
      { kind: 'URI', value: 'https://z/' },
    ]);
    expect(splitAltNames('DNS:"unterminated')).toBeUndefined();
  });

  it('takes the first CN of a multi-line name, with RFC 2253 and hex escapes', () => {
    expect(firstCnOf('O=x/y + CN=a\\, b\nCN=second')).toBe('a, b');
    expect(firstCnOf('C=DE\nCN=caf\u00e9 \\0A x')).toBe('caf\u00e9 \n x');
    expect(firstCnOf('O=only')).toBeUndefined();
    expect(firstCnOf(undefined)).toBeUndefined();
  });

  it('agrees with der.ts on a special-character CN and names', () => {
    const key = keys()[0]!.key;
    const cn = 'a, b + "c" \\ d\u0001 \u00e9 \ud834\udd1e';
    const d = buildCertificate({
      key,
      subject: name([
        [
          [O, 0x0c, utf8('Org')],
          [CN, 0x0c, utf8(cn)],
        ],
      ]),
      san: [w.tlv(0x82, utf8('x,y.example')), w.tlv(0x86, utf8('https://e/"q"'))],
    });
    const r = readWithOpenSsl(d);
    expect(r.subjectCommonName).toBe(cn);
    expect(r.dnsNames).toEqual(['x,y.example']);
    expect(r.uris).toEqual(['https://e/"q"']);
    expect(withOpenSslCheck(d, readCertificateSummary(d)).problems).toEqual([]);
  });
});

describe('cross-check', () => {
  it('records an openssl problem when the readings differ', () => {
    const d = buildCertificate({ key: keys()[0]!.key, san: [w.tlv(0x82, utf8('a.example'))] });
    const lying = { ...readCertificateSummary(d), dnsNames: ['b.example'] };
    expect(withOpenSslCheck(d, lying).problems).toEqual([
      { field: 'openssl', reason: 'it reads the DNS names differently' },
    ]);
  });

  it('a signing CA must be a CA by both readings and assert keyCertSign', () => {
    const key = keys()[0]!.key;
    const ca = buildCertificate({ key, ca: true });
    expect(() => assertSigningCa(ca, readCertificateSummary(ca))).not.toThrow();
    const leaf = buildCertificate({ key });
    expect(() => assertSigningCa(leaf, readCertificateSummary(leaf))).toThrow(
      expect.objectContaining({ code: 'ISSUER_NOT_CA', field: 'basicConstraints' }),
    );
    // cA set, keyUsage without keyCertSign (digitalSignature only): a CA by neither reading.
    const noCertSign = Buffer.from(ca);
    const ku = noCertSign.indexOf(Buffer.from(w.namedBits(0x60)));
    noCertSign.set(w.namedBits(0x01), ku); // same length: 03 02 07 80 for 03 02 01 06
    expect(() => assertSigningCa(noCertSign, readCertificateSummary(noCertSign))).toThrow(
      expect.objectContaining({ code: 'ISSUER_NOT_CA' }),
    );
    expect(readWithOpenSsl(noCertSign).isCA).toBe(false);
  });
});
