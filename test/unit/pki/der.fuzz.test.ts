import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type CertSummary,
  issueCertificate,
  PkiError,
  readCertificateSummary,
} from '../../../src/pki/index.ts';
import { DAY, der, identity, keyFor, makeRootCa } from './fixtures.ts';

/** Runs the fast path and classifies the outcome; anything but a summary or DER_MALFORMED fails. */
function outcome(d: Uint8Array): 'ok' | 'malformed' {
  try {
    const s: CertSummary = readCertificateSummary(d);
    expect(typeof s.notBefore).toBe('number');
    return 'ok';
  } catch (err) {
    if (err instanceof PkiError && err.code === 'DER_MALFORMED') return 'malformed';
    throw err;
  }
}

let samples: Uint8Array[] = [];

beforeAll(async () => {
  const ca = await makeRootCa('rsa-2048');
  const leaf = await issueCertificate({
    subjectKeyPem: await keyFor('ecdsa-p256'),
    identity: identity({
      commonName: 'fuzz',
      dnsNames: ['a.example', 'b.example'],
      ipAddresses: ['192.0.2.7', '2001:db8::7'],
      uris: ['https://example.com/x'],
    }),
    notBefore: Date.UTC(2040, 0, 1),
    notAfter: Date.UTC(2060, 0, 1),
    issuer: ca,
  });
  const selfEd = await issueCertificate({
    subjectKeyPem: await keyFor('ed25519'),
    identity: identity({ commonName: 'ed' }),
    notBefore: Date.now(),
    notAfter: Date.now() + DAY,
    issuer: 'self',
    isCA: true,
  });
  samples = [der(leaf.certPem), der(ca.certPem), der(selfEd.certPem)];
}, 60_000);

describe('fast path on hostile input', () => {
  it('random bytes give a summary or DER_MALFORMED', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        outcome(bytes);
      }),
      { numRuns: 5000 },
    );
  });

  it('random bytes behind a plausible SEQUENCE header give a summary or DER_MALFORMED', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: 3 }), (body, form) => {
        const len = body.length;
        const head =
          form === 0 && len < 128
            ? [0x30, len]
            : form === 1
              ? [0x30, 0x82, len >> 8, len & 0xff]
              : form === 2
                ? [0x30, 0x80]
                : [0x30, 0x84, 0xff, 0xff, 0xff, 0xff];
        outcome(Uint8Array.from([...head, ...body]));
      }),
      { numRuns: 3000 },
    );
  });

  it('every truncation of a valid certificate is DER_MALFORMED', () => {
    for (const d of samples) {
      expect(outcome(d)).toBe('ok');
      for (let n = 0; n < d.length; n++) expect(outcome(d.subarray(0, n))).toBe('malformed');
    }
  });

  it('every single-bit flip of a valid certificate gives a summary or DER_MALFORMED', () => {
    let malformed = 0;
    let total = 0;
    for (const d of samples) {
      const copy = d.slice();
      for (let i = 0; i < copy.length; i++) {
        for (let bit = 0; bit < 8; bit++) {
          copy[i]! ^= 1 << bit;
          if (outcome(copy) === 'malformed') malformed++;
          total++;
          copy[i]! ^= 1 << bit;
        }
      }
    }
    // Flips in key bits, signatures and string contents still parse; flips in headers do not.
    expect(malformed).toBeGreaterThan(0);
    expect(malformed).toBeLessThan(total);
  });

  it('random multi-byte corruption, insertion and deletion give a summary or DER_MALFORMED', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 2 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 })), {
          minLength: 1,
          maxLength: 8,
        }),
        (which, edits) => {
          let bytes = Array.from(samples[which]!);
          for (const [pos, value, kind] of edits) {
            const at = pos % (bytes.length + 1);
            if (kind === 0) bytes[Math.min(at, bytes.length - 1)] = value;
            else if (kind === 1) bytes.splice(at, 0, value);
            else bytes = bytes.filter((_, i) => i !== at);
          }
          outcome(Uint8Array.from(bytes));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('rejects a 1 MiB buffer of nested headers quickly', () => {
    const big = new Uint8Array(1 << 20);
    for (let i = 0; i < big.length; i += 2) {
      big[i] = 0x30;
      big[i + 1] = 0x7f;
    }
    const t0 = performance.now();
    expect(outcome(big)).toBe('malformed');
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
