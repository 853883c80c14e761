import { X509Certificate } from 'node:crypto';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';
import { CAIssuer } from '../../../src/issuers/ca.ts';
import type { CsrView, KubeCsrApi } from '../../../src/kube/csr-api.ts';
import { createCsrPem, generateKey, issueCertificate } from '../../../src/pki/index.ts';
import { CsrSigner } from '../../../src/signer/signer.ts';

/**
 * The CSR signer records what it issued before publishing it (FAKE CSR API: an in-memory CSR),
 * so a CA rollover's Retire can wait for the last leaf: the record is raised first, with the
 * CA's SHA-256, the leaf's notAfter and its lifetime; when the record cannot be written, the
 * certificate is not published.
 */
const DAY = 86_400_000;

async function setup(
  cover: (issuer: string, sha: string, notAfter: number, lifetime?: number) => Promise<void>,
) {
  const caKey = (await generateKey('ecdsa-p256')).privateKeyPem;
  const ca = await issueCertificate({
    subjectKeyPem: caKey,
    identity: { commonName: 'ledger CA', dnsNames: [], ipAddresses: [], uris: [] },
    notBefore: Date.now() - DAY,
    notAfter: Date.now() + 365 * DAY,
    issuer: 'self',
    isCA: true,
  });
  const config = loadConfig(`issuers:
  - name: w
    ca: { secret: { namespace: n, name: ca } }
    signer: { signerName: example.com/w, maxDuration: 1m }
    allowedDomains: ["*.example.com"]
`);
  const ic = config.issuers[0];
  if (ic?.kind !== 'ca' || !ic.signer) throw new Error('ca issuer with a signer expected');
  const issuer = new CAIssuer('w', ic.ca.secret, async () => ({
    data: { 'tls.crt': ca.certPem, 'tls.key': caKey },
    resourceVersion: '1',
  }));
  const key = (await generateKey('ecdsa-p256')).privateKeyPem;
  const csr: CsrView = {
    name: 'c1',
    uid: 'u1',
    resourceVersion: '1',
    created: Date.now(),
    labels: {},
    annotations: {},
    signerName: 'example.com/w',
    requestPem: await createCsrPem(key, { dnsNames: ['a.example.com'], ipAddresses: [], uris: [] }),
    usages: ['digital signature', 'server auth'],
    expirationSeconds: 600,
    username: 'someone',
    groups: [],
    extra: {},
    conditions: [{ type: 'Approved', status: 'True' } as CsrView['conditions'][number]],
  };
  const steps: string[] = [];
  const api = {
    get: async () => structuredClone(csr),
    writeStatus: async (_c: CsrView, status: { certificatePem?: string }) => {
      steps.push(status.certificatePem ? 'published' : 'failed');
      return true;
    },
    decide: async () => true,
    selfUsername: async () => undefined,
  } as unknown as KubeCsrApi;
  const signer = new CsrSigner({
    kubeConfig: {} as never,
    api,
    entries: [{ issuer: ic, signer: ic.signer, ca: issuer }],
    log: pino({ level: 'silent' }),
    ledger: {
      cover: async (...args) => {
        steps.push('recorded');
        await cover(...args);
      },
    },
  });
  return { signer, steps, caPem: ca.certPem };
}

describe('the CSR signer records what it issues (fake CSR API)', () => {
  it('raises the record of the signing CA before the certificate is published', async () => {
    const covered: Array<[issuer: string, sha: string, notAfter: number, lifetime?: number]> = [];
    const t = await setup(async (...args) => void covered.push(args));
    await t.signer.reconcile('c1');
    expect(t.steps).toEqual(['recorded', 'published']);
    const [issuer, sha, notAfter, lifetime] = covered[0] ?? [];
    expect(issuer).toBe('w');
    expect(sha).toBe(new X509Certificate(t.caPem).fingerprint256.replace(/:/g, '').toLowerCase());
    expect(lifetime).toBe(60_000); // expirationSeconds 600 capped at maxDuration 1m
    expect(notAfter).toBeGreaterThan(Date.now() + 50_000);
  });

  it('publishes nothing when the record cannot be written (the CSR is retried)', async () => {
    const t = await setup(async () => {
      throw new Error('configmaps "cert-rotator-csr-issued" is forbidden');
    });
    await expect(t.signer.reconcile('c1')).rejects.toThrow(/forbidden/);
    expect(t.steps).toEqual(['recorded']);
  });
});
