import { describe, expect, it } from 'vitest';
import { certificatesFromPem, PkiError, splitPem, toPem } from '../../../src/pki/index.ts';

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof PkiError ? err.code : `not a PkiError: ${String(err)}`;
  }
  return undefined;
}

describe('toPem / splitPem', () => {
  it('round-trips with 64-column lines', () => {
    const der = bytes(200, 1);
    const pem = toPem('CERTIFICATE', der);
    const lines = pem.trimEnd().split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines.at(-1)).toBe('-----END CERTIFICATE-----');
    expect(lines.slice(1, -1).every((l) => l.length <= 64)).toBe(true);
    expect(lines[1]).toHaveLength(64);
    expect(pem.endsWith('\n')).toBe(true);
    expect(splitPem(pem)).toEqual([{ label: 'CERTIFICATE', der }]);
  });

  it('tolerates CRLF, indentation and text around and between blocks', () => {
    const a = bytes(100, 2);
    const k = bytes(40, 3);
    const text = [
      'Certificate:',
      '    Data: whatever openssl -text printed',
      toPem('CERTIFICATE', a)
        .replace(/\n/g, '\r\n')
        .replace(/^([A-Za-z0-9+/=]+)$/gm, '   $1  '),
      'between blocks',
      toPem('EC PRIVATE KEY', k),
      'trailer',
    ].join('\r\n');
    expect(splitPem(text)).toEqual([
      { label: 'CERTIFICATE', der: a },
      { label: 'EC PRIVATE KEY', der: k },
    ]);
  });

  it('returns no blocks for text without PEM', () => {
    expect(splitPem('')).toEqual([]);
    expect(splitPem('hello\nworld')).toEqual([]);
  });

  it('rejects bad base64, unterminated blocks, mismatched labels and headers', () => {
    const good = toPem('CERTIFICATE', bytes(30, 4));
    expect(codeOf(() => splitPem(good.replace('-----END CERTIFICATE-----\n', '')))).toBe('PEM_MALFORMED');
    expect(codeOf(() => splitPem(good.replace('END CERTIFICATE', 'END PRIVATE KEY')))).toBe('PEM_MALFORMED');
    expect(codeOf(() => splitPem(good.replace(/\n([A-Za-z0-9])/, '\n!$1')))).toBe('PEM_MALFORMED');
    expect(codeOf(() => splitPem(good.replace(/\n([A-Za-z0-9])/, '\n$1$1')))).toBe('PEM_MALFORMED'); // length % 4
    expect(codeOf(() => splitPem('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n'))).toBe(
      'PEM_MALFORMED',
    );
    expect(codeOf(() => splitPem('-----BEGIN CERTIFICATE-----\nAAA=\nAA==\n-----END CERTIFICATE-----'))).toBe(
      'PEM_MALFORMED',
    ); // padding in the middle
    const encrypted =
      '-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n';
    expect(codeOf(() => splitPem(encrypted))).toBe('PEM_MALFORMED');
    const nested = `-----BEGIN CERTIFICATE-----\n${good}-----END CERTIFICATE-----\n`;
    expect(codeOf(() => splitPem(nested))).toBe('PEM_MALFORMED');
  });

  it('error messages do not echo block contents', () => {
    const secret = 'c2VjcmV0LWtleS1tYXRlcmlhbA==!';
    try {
      splitPem(`-----BEGIN PRIVATE KEY-----\n${secret}\n-----END PRIVATE KEY-----`);
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).not.toContain('c2VjcmV0');
      expect((err as Error).message).toContain('PRIVATE KEY');
    }
  });
});

describe('certificatesFromPem', () => {
  it('returns a chain of 3 in order and skips other blocks', () => {
    const certs = [bytes(50, 5), bytes(60, 6), bytes(70, 7)];
    const text = toPem('PRIVATE KEY', bytes(20, 8)) + certs.map((c) => toPem('CERTIFICATE', c)).join('\n\n');
    expect(certificatesFromPem(text)).toEqual(certs);
  });

  it('throws NO_CERTIFICATE when there is none', () => {
    expect(codeOf(() => certificatesFromPem(''))).toBe('NO_CERTIFICATE');
    expect(codeOf(() => certificatesFromPem(toPem('PRIVATE KEY', bytes(10, 9))))).toBe('NO_CERTIFICATE');
  });

  it('throws PEM_MALFORMED rather than NO_CERTIFICATE for a broken block', () => {
    expect(
      codeOf(() => certificatesFromPem('-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----')),
    ).toBe('PEM_MALFORMED');
  });
});
