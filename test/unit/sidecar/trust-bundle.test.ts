import { describe, expect, it } from 'vitest';
import { checkBundle } from '../../../src/sidecar/trust-bundle.ts';
import { makeLeaf, makeTestCA } from '../../testenv/tls-fixtures.ts';

describe('checkBundle: what --ca-bundle-configmap accepts as ca.crt', () => {
  it('accepts CA certificates, normalised and deduplicated', async () => {
    const a = await makeTestCA('bundle A');
    const b = await makeTestCA('bundle B');
    const checked = checkBundle(`# comment\n${a.certPem}\n${b.certPem}${a.certPem}`);
    expect(checked).toEqual({ pem: a.certPem + b.certPem });
  });

  it('refuses a leaf, a key, malformed PEM and text without blocks', async () => {
    const ca = await makeTestCA('bundle CA');
    const leaf = await makeLeaf({ dnsNames: ['x.test'], fromMs: -60_000, toMs: 600_000, ca });
    expect(checkBundle(ca.certPem + leaf.certPem)).toEqual({
      problem: 'certificate 2 is not a CA (basicConstraints cA, keyCertSign)',
    });
    expect(checkBundle(ca.certPem + ca.keyPem)).toEqual({
      problem: 'block 2 is a PRIVATE KEY, not a CERTIFICATE',
    });
    expect(checkBundle('-----BEGIN CERTIFICATE-----\nQUFB\n')).toMatchObject({
      problem: expect.stringMatching(/not terminated/),
    });
    expect(checkBundle('-----BEGIN CERTIFICATE-----\nQUFB\n-----END CERTIFICATE-----\n')).toMatchObject({
      problem: expect.stringMatching(/^certificate 1: /),
    });
    expect(checkBundle('hello')).toEqual({ problem: 'holds no PEM block' });
  });
});
