import { X509Certificate } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { trustSet } from '../../../src/issuers/ca.ts';
import { generateKey, issueCertificate } from '../../../src/pki/index.ts';
import { findOverwrite } from '../../../src/rollover/overwrite.ts';

const NOW = Date.now();
const DAY = 86_400_000;
const b64 = (t: string) => Buffer.from(t).toString('base64');
interface Pair {
  certPem: string;
  keyPem: string;
}

async function cert(cn: string, parent: Pair | 'self', isCA = true): Promise<Pair & { chainPem: string }> {
  const keyPem = (await generateKey('ecdsa-p256')).privateKeyPem;
  const out = await issueCertificate({
    subjectKeyPem: keyPem,
    identity: { commonName: cn, dnsNames: isCA ? [] : [`${cn}.example.com`], ipAddresses: [], uris: [] },
    notBefore: NOW - DAY,
    notAfter: NOW + 30 * DAY,
    issuer: parent,
    isCA,
  });
  return { certPem: out.certPem, keyPem, chainPem: out.chainPem };
}

const subjects = (pem: string) =>
  (pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n/g) ?? []).map(
    (p) => new X509Certificate(p).subject,
  );

describe('an intermediate CA overwritten in place', () => {
  it('is found through the leaf’s chain, and its old root stays in the trust set next to the new one', async () => {
    const [oldRoot, newRoot] = [await cert('old root', 'self'), await cert('new root', 'self')];
    const oldMid = await cert('team CA', { certPem: oldRoot.certPem, keyPem: oldRoot.keyPem });
    const newMid = await cert('team CA', { certPem: newRoot.certPem, keyPem: newRoot.keyPem });
    const leaf = await cert('web', { certPem: oldMid.chainPem, keyPem: oldMid.keyPem }, false);
    const issued: k8s.V1Secret = {
      metadata: { namespace: 'ns', name: 'web' },
      data: { 'tls.crt': b64(leaf.chainPem), 'ca.crt': b64(oldRoot.certPem) },
    };
    const active = new X509Certificate(newMid.certPem);
    const found = findOverwrite(active, 'sha256-of-what-was-recorded', [issued]);
    expect(found.overwritten).toBe(true);
    expect(found.old?.subject).toBe('CN=team CA');
    expect(found.old?.fingerprint256).toBe(new X509Certificate(oldMid.certPem).fingerprint256);
    expect(subjects(found.oldChainPem)).toEqual(['CN=team CA', 'CN=old root']);
    const trust = trustSet(newMid.chainPem, { 'ca.crt': newRoot.certPem, 'previous.crt': found.oldChainPem });
    expect(subjects(trust)).toEqual(['CN=new root', 'CN=old root']);
  });

  it('a leaf the active CA signed names nothing', async () => {
    const root = await cert('root', 'self');
    const leaf = await cert('web', root, false);
    const found = findOverwrite(new X509Certificate(root.certPem), undefined, [
      { metadata: { name: 'web' }, data: { 'tls.crt': b64(leaf.chainPem), 'ca.crt': b64(root.certPem) } },
    ]);
    expect(found).toMatchObject({ old: undefined, overwritten: false, oldChainPem: '' });
  });

  it('with the record gone, a CA of another name counts only when cert-rotator had renewed the leaf with it', async () => {
    const [oldCa, newCa] = [await cert('CA 2025', 'self'), await cert('CA 2026', 'self')];
    const leaf = await cert('web', oldCa, false);
    const issued = (annotations: Record<string, string>): k8s.V1Secret => ({
      metadata: { namespace: 'ns', name: 'web', annotations },
      data: { 'tls.crt': b64(leaf.chainPem), 'ca.crt': b64(oldCa.certPem) },
    });
    const active = new X509Certificate(newCa.certPem);
    const renewed = findOverwrite(active, undefined, [
      issued({ 'cert-rotator.io/last-renewed': '2026-01-01T00:00:00Z' }),
    ]);
    expect(renewed.overwritten).toBe(true);
    expect(renewed.old?.subject).toBe('CN=CA 2025');
    // Never renewed here (cert-rotator just installed): the leaf's CA is not taken for a replaced one.
    expect(findOverwrite(active, undefined, [issued({})]).overwritten).toBe(false);
  });
});
