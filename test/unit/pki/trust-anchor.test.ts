import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { trustAnchors } from '../../../src/pki/index.ts';
import { makeTestCA } from '../../testenv/tls-fixtures.ts';

const cns = (pem: string) =>
  (pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n/g) ?? []).map(
    (p) => new X509Certificate(p).subject,
  );

describe('trustAnchors: what a verifier must trust for a CA', () => {
  it('a root is its own anchor; old and new roots of a rollover are both kept, in order, once each', async () => {
    const [a, b] = [await makeTestCA('root A'), await makeTestCA('root B')];
    expect(cns(trustAnchors([a.certPem], []))).toEqual(['CN=root A']);
    expect(cns(trustAnchors([b.certPem, a.certPem, b.certPem], []))).toEqual(['CN=root B', 'CN=root A']);
  });

  it('an intermediate is anchored at its root, found in its own chain or in the pool (ca.crt)', async () => {
    const root = await makeTestCA('root');
    const mid = await makeTestCA('mid', undefined, root);
    expect(cns(trustAnchors([mid.certPem + root.certPem], []))).toEqual(['CN=root']);
    expect(cns(trustAnchors([mid.certPem], [root.certPem]))).toEqual(['CN=root']);
    // Two levels, the root only in the pool.
    const low = await makeTestCA('low', undefined, mid);
    expect(cns(trustAnchors([low.certPem + mid.certPem], [root.certPem]))).toEqual(['CN=root']);
  });

  it('two intermediates of one root (an intermediate rollover) need one anchor: the root', async () => {
    const root = await makeTestCA('root');
    const [oldMid, newMid] = [
      await makeTestCA('mid', undefined, root),
      await makeTestCA('mid', undefined, root),
    ];
    expect(cns(trustAnchors([newMid.certPem, oldMid.certPem], [root.certPem]))).toEqual(['CN=root']);
  });

  it('without its root anywhere, the topmost certificate found; a same-name impostor is not a parent', async () => {
    const root = await makeTestCA('root');
    const mid = await makeTestCA('mid', undefined, root);
    expect(cns(trustAnchors([mid.certPem], []))).toEqual(['CN=mid']);
    const impostor = await makeTestCA('root'); // the root's name, another key: it did not sign mid
    expect(cns(trustAnchors([mid.certPem], [impostor.certPem]))).toEqual(['CN=mid']);
  });

  it('skips empty and unreadable texts', async () => {
    const root = await makeTestCA('root');
    expect(cns(trustAnchors([undefined, '', root.certPem, 'not pem'], ['garbage']))).toEqual(['CN=root']);
  });
});
