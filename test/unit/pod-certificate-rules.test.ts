import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.ts';
import type { IssuerConfig, PodCertificatesConfig } from '../../src/config/schema.ts';
import type { PcrView } from '../../src/kube/pcr-api.ts';
import { PodCertificateReason } from '../../src/names.ts';
import { createCsrPem } from '../../src/pki/index.ts';
import { planValidity, podIdentity, requestKey } from '../../src/signer/pod-certificate-rules.ts';

const S = 1000;
const H = 3_600_000;

function issuerOf(yaml: string): IssuerConfig & { kind: 'ca'; podCertificates: PodCertificatesConfig } {
  const issuer = loadConfig(yaml).issuers[0];
  if (issuer?.kind !== 'ca' || !issuer.podCertificates) throw new Error('no podCertificates');
  return issuer as IssuerConfig & { kind: 'ca'; podCertificates: PodCertificatesConfig };
}

const ISSUER = issuerOf(`
issuers:
  - name: pods
    ca: { secret: { namespace: cr, name: ca } }
    allowedURIs: ["spiffe://td/ns/apps/sa/*"]
    allowedDomains: ["*.apps.pod.local", "frontend.apps.svc.local"]
    podCertificates:
      allow: { namespaces: [apps, lab], serviceAccounts: ["web", "apps/api-*", "dotted.*"] }
      uris: ["spiffe://td/ns/{namespace}/sa/{serviceaccount}"]
      dnsNames: ["{podname}.{namespace}.pod.local", "{annotation:example.com/role}.{namespace}.svc.local"]
`);

function pcr(over: Partial<PcrView> = {}): PcrView {
  return {
    namespace: 'apps',
    name: 'web-0-abc',
    uid: 'u1',
    resourceVersion: '1',
    created: 0,
    signerName: 'cert-rotator.io/pods-pods',
    podName: 'web-0',
    podUID: 'pod-uid',
    serviceAccountName: 'web',
    serviceAccountUID: 'sa-uid',
    nodeName: 'node-a',
    nodeUID: 'node-uid',
    maxExpirationSeconds: 86_400,
    unverifiedUserAnnotations: {},
    conditions: [],
    ...over,
  };
}

describe('podCertificates config', () => {
  it('reads the block with its defaults', () => {
    expect(ISSUER.podCertificates).toEqual({
      signerName: 'cert-rotator.io/pods-pods',
      maxDurationMs: 24 * H,
      refreshAtFraction: 0.7,
      allow: { namespaces: ['apps', 'lab'], serviceAccounts: ['web', 'apps/api-*', 'dotted.*'] },
      uris: ['spiffe://td/ns/{namespace}/sa/{serviceaccount}'],
      dnsNames: ['{podname}.{namespace}.pod.local', '{annotation:example.com/role}.{namespace}.svc.local'],
      keyTypes: ['ECDSAP256', 'ECDSAP384', 'RSA3072', 'RSA4096', 'ED25519'],
    });
  });

  it('names every bad path: unknown keys, placeholders, wildcards, key types, bounds, clashes', () => {
    let message = '';
    try {
      loadConfig(`
issuers:
  - name: a
    ca: { secret: { namespace: cr, name: ca } }
    signer: { signerName: example.com/x }
    podCertificates:
      signerName: example.com/x
      maxDuration: 30m
      refreshAt: "95%"
      allow: { namespaces: ["Bad_NS"], serviceAccount: [x] }
      uris: ["spiffe://td/{pod}", "spiffe://td/static", "spiffe://td/{annotation:role}"]
      dnsNames: ["*.{namespace}.local"]
      keyTypes: [ECDSAP521]
      extra: 1
  - name: b
    selfSigned: {}
    podCertificates: {}
`);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message.split('\n')).toEqual([
      'issuers[0].podCertificates.extra: unknown key (known keys: signerName, maxDuration, refreshAt, allow, uris, dnsNames, keyTypes)',
      'issuers[0].podCertificates.maxDuration: "30m" is too short; a pod certificate lives at least 1h',
      'issuers[0].podCertificates.refreshAt: "95%" must be a percentage of the lifetime from 10% to 90%, e.g. "70%"',
      'issuers[0].podCertificates.allow.serviceAccount: unknown key; did you mean "serviceAccounts"?',
      'issuers[0].podCertificates.allow.namespaces[0]: "Bad_NS" is not a namespace glob',
      'issuers[0].podCertificates.uris[0]: "spiffe://td/{pod}": unknown placeholder {pod} (uris may use {namespace}, {podname}, {poduid}, {serviceaccount}, {serviceaccountuid}, {nodename}, {annotation:KEY})',
      'issuers[0].podCertificates.uris[1]: "spiffe://td/static" has no placeholder: every pod would get the same URI',
      'issuers[0].podCertificates.uris[2]: "spiffe://td/{annotation:role}": {annotation:role} must name a prefixed annotation key such as example.com/role',
      'issuers[0].podCertificates.dnsNames[0]: "*.{namespace}.local": a template names exact values; wildcards belong in allow-lists',
      'issuers[0].podCertificates.keyTypes[0]: "ECDSAP521" is not a key type cert-rotator signs (one of: ECDSAP256, ECDSAP384, RSA3072, RSA4096, ED25519)',
      'issuers[1].podCertificates: only a ca issuer can sign PodCertificateRequests',
    ]);
  });
});

describe('the pod identity', () => {
  it('fills the templates from the request; a template whose annotation is absent is left out', () => {
    expect(podIdentity(ISSUER, ISSUER.podCertificates, pcr())).toEqual({
      ok: true,
      identity: { uris: ['spiffe://td/ns/apps/sa/web'], dnsNames: ['web-0.apps.pod.local'], ipAddresses: [] },
    });
    const withRole = podIdentity(
      ISSUER,
      ISSUER.podCertificates,
      pcr({ unverifiedUserAnnotations: { 'example.com/role': 'frontend' } }),
    );
    expect(withRole.ok && withRole.identity.dnsNames).toEqual([
      'web-0.apps.pod.local',
      'frontend.apps.svc.local',
    ]);
  });

  it.each([
    [{ namespace: 'other' }, PodCertificateReason.namespaceNotAllowed, 'namespace "other" is not allowed'],
    [
      { serviceAccountName: 'batch' },
      PodCertificateReason.serviceAccountNotAllowed,
      'apps/batch is not allowed',
    ],
    [
      { namespace: 'lab', serviceAccountName: 'api-x' },
      PodCertificateReason.serviceAccountNotAllowed,
      'lab/api-x',
    ],
    [
      { namespace: 'lab' },
      PodCertificateReason.identityNotAllowed,
      'does not allow "web-0.lab.pod.local" (allowedDomains',
    ],
    [
      { unverifiedUserAnnotations: { 'example.com/role': 'admin' } },
      PodCertificateReason.identityNotAllowed,
      'does not allow "admin.apps.svc.local"',
    ],
    [
      { unverifiedUserAnnotations: { 'example.com/role': 'a.b' } },
      PodCertificateReason.invalidUserAnnotations,
      'must be one DNS label',
    ],
    [
      { unverifiedUserAnnotations: { 'x.io/other': 'v', 'a.io/z': 'w' } },
      PodCertificateReason.invalidUserAnnotations,
      'key "a.io/z", "x.io/other" is not understood (known: example.com/role)',
    ],
  ] as const)('denies %j with %s', (over, reason, text) => {
    const result = podIdentity(ISSUER, ISSUER.podCertificates, pcr(over));
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.denial.reason).toBe(reason);
      expect(result.denial.message).toContain(text);
      expect(result.denial.message).toContain(
        'cert-rotator issuer "pods" (signer cert-rotator.io/pods-pods)',
      );
    }
  });

  it('a ServiceAccount glob spans a dotted name', () => {
    const result = podIdentity(
      { ...ISSUER, allowedURIs: ['spiffe://td/ns/apps/sa/*'] },
      ISSUER.podCertificates,
      pcr({ serviceAccountName: 'dotted.name' }),
    );
    expect(result.ok).toBe(true);
  });
});

describe('the requested key', () => {
  const stub = async (privateKeyPem: string) =>
    Buffer.from(
      (await createCsrPem(privateKeyPem, { dnsNames: [], ipAddresses: [], uris: [] }))
        .replace(/-----[A-Z ]+-----/g, '')
        .replace(/\s+/g, ''),
      'base64',
    );

  it('reads a stub request and verifies its signature; a tampered one is denied', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const der = await stub(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const good = await requestKey(ISSUER, ISSUER.podCertificates, pcr({ stubPKCS10Request: der }));
    expect(good.ok && good.keyType).toBe('ECDSAP256');
    const bad = Buffer.from(der);
    bad[bad.length - 5] = (bad[bad.length - 5] ?? 0) ^ 0xff;
    const tampered = await requestKey(ISSUER, ISSUER.podCertificates, pcr({ stubPKCS10Request: bad }));
    expect(tampered.ok).toBe(false);
  });

  it('denies a key type the block does not list with UnsupportedKeyType, naming the supported ones', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const der = await stub(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const cfg = { ...ISSUER.podCertificates, keyTypes: ['ECDSAP256'] };
    const result = await requestKey(ISSUER, cfg, pcr({ stubPKCS10Request: der }));
    expect(result).toMatchObject({
      ok: false,
      denial: { reason: 'UnsupportedKeyType' },
    });
    expect(!result.ok && result.denial.message).toContain(
      'key type ED25519 is not signed here (supported key types: ECDSAP256)',
    );
  });

  it('verifies the deprecated proof of possession over the pod UID', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const proof = sign(null, Buffer.from('pod-uid'), privateKey);
    const ok = await requestKey(
      ISSUER,
      ISSUER.podCertificates,
      pcr({ pkixPublicKey: spki, proofOfPossession: proof }),
    );
    expect(ok.ok).toBe(true);
    const wrongPod = await requestKey(
      ISSUER,
      ISSUER.podCertificates,
      pcr({ podUID: 'another', pkixPublicKey: spki, proofOfPossession: proof }),
    );
    expect(wrongPod).toMatchObject({ ok: false, denial: { reason: PodCertificateReason.invalidRequest } });
  });
});

describe('validity', () => {
  const now = Date.UTC(2026, 0, 1, 12, 0, 0, 500);
  const base = { now, maxExpirationSeconds: 86_400, maxDurationMs: 24 * H, caNotAfter: now + 365 * 24 * H };

  it('backdates notBefore 4 minutes and puts beginRefreshAt at the fraction', () => {
    const plan = planValidity({ ...base, refreshAtFraction: 0.7 });
    expect(plan).toEqual({
      ok: true,
      notBefore: Math.floor(now / S) * S - 240 * S,
      notAfter: Math.floor(now / S) * S - 240 * S + 24 * H,
      beginRefreshAt: Math.floor(now / S) * S - 240 * S + 0.7 * 24 * H,
      limitedBy: 'spec.maxExpirationSeconds 86400',
    });
  });

  it('takes the least of maxExpirationSeconds, maxDuration and the CA; clamps refresh into the API window', () => {
    const byDuration = planValidity({ ...base, maxDurationMs: 2 * H, refreshAtFraction: 0.9 });
    expect(byDuration.ok && byDuration.limitedBy).toBe('maxDuration 2h');
    const byCa = planValidity({ ...base, caNotAfter: now + 90 * 60_000, refreshAtFraction: 0.1 });
    if (!byCa.ok) throw new Error('expected a plan');
    expect(byCa.limitedBy).toBe('the CA certificate expiry');
    expect(byCa.notAfter).toBeLessThanOrEqual(now + 90 * 60_000);
    // 10% of ~94 minutes is under the API's 10-minute minimum: clamped up.
    expect(byCa.beginRefreshAt - byCa.notBefore).toBe(600 * S);
    const oneHour = planValidity({ ...base, maxExpirationSeconds: 3_600, refreshAtFraction: 0.9 });
    if (!oneHour.ok) throw new Error('expected a plan');
    expect(oneHour.notAfter - oneHour.beginRefreshAt).toBe(600 * S);
  });

  it('less than an hour of CA left is no plan at all', () => {
    const plan = planValidity({ ...base, caNotAfter: now + 50 * 60_000, refreshAtFraction: 0.7 });
    expect(plan.ok).toBe(false);
    expect(!plan.ok && plan.message).toMatch(/at least 1h, but the CA certificate expiry leaves 3240s/);
  });
});
