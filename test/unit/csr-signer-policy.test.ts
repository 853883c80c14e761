import { describe, expect, it } from 'vitest';
import { type IssuerConfig, loadConfig } from '../../src/config/index.ts';
import { createCsrPem, generateKey, type Identity, parseCsr } from '../../src/pki/index.ts';
import { decideApproval, POD_NAME_EXTRA, type Requester } from '../../src/signer/approver.ts';
import { checkSigningRequest } from '../../src/signer/rules.ts';

const config = loadConfig(`
issuers:
  - name: wl
    ca: { secret: { namespace: cr, name: ca } }
    signer: { maxDuration: 1h, allowedUsages: [digital signature, server auth, client auth] }
    allowedURIs: ["spiffe://cluster.local/ns/*/sa/*"]
    allowedDomains: ["*.svc", "*.*.pod.cluster.local"]
    approve:
      serviceAccounts:
        namespaces: ["team-*"]
        uris: ["spiffe://cluster.local/ns/{namespace}/sa/{serviceaccount}"]
        dnsNames: ["*.{namespace}.svc", "{podname}.{namespace}.pod.cluster.local"]
`);
const issuer = config.issuers[0] as IssuerConfig & { kind: 'ca' };
const signer = issuer.signer!;
const approve = issuer.approve!;

async function csr(identity: Partial<Identity>, organizations: string[] = []) {
  const key = await generateKey('ecdsa-p256');
  return await parseCsr(
    await createCsrPem(
      key.privateKeyPem,
      { dnsNames: [], ipAddresses: [], uris: [], ...identity },
      organizations,
    ),
  );
}

const sa = (ns: string, name: string, pod?: string): Requester => ({
  username: `system:serviceaccount:${ns}:${name}`,
  groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
  extra: pod ? { [POD_NAME_EXTRA]: [pod] } : ({} as Record<string, string[]>),
});

describe('signer rules', () => {
  it('caps the lifetime at maxDuration and keeps the requested usages', async () => {
    const parsed = await csr({ uris: ['spiffe://cluster.local/ns/a/sa/b'] });
    expect(
      checkSigningRequest(
        issuer,
        signer,
        { usages: ['digital signature', 'client auth'], expirationSeconds: 7200 },
        parsed,
      ),
    ).toEqual({
      ok: true,
      identity: parsed.identity,
      organizations: [],
      usages: ['digital signature', 'client auth'],
      durationMs: 3_600_000,
      capped: 'expirationSeconds 7200 capped to maxDuration 1h',
    });
    expect(checkSigningRequest(issuer, signer, { usages: ['server auth'] }, parsed)).toMatchObject({
      durationMs: 3_600_000,
    });
  });

  it('names the broken rule: usage, names (whole identity), subject organizations', async () => {
    const ok = await csr({ dnsNames: ['x.svc'] });
    expect(checkSigningRequest(issuer, signer, { usages: ['key encipherment'] }, ok)).toMatchObject({
      ok: false,
      reason: 'CertRotatorUsageNotAllowed',
    });
    const cn = checkSigningRequest(
      issuer,
      signer,
      { usages: ['server auth'] },
      await csr({ commonName: 'admin', dnsNames: ['x.svc'] }),
    );
    expect(cn).toMatchObject({ ok: false, reason: 'CertRotatorNameNotAllowed' });
    expect(!cn.ok && cn.message).toContain('rule "allowedCommonNames"');
    expect(!cn.ok && cn.message).toContain('"admin"');
    const ip = checkSigningRequest(
      issuer,
      signer,
      { usages: ['server auth'] },
      await csr({ ipAddresses: ['10.0.0.1'] }),
    );
    expect(!ip.ok && ip.message).toContain('rule "allowedIPs"');
    const org = checkSigningRequest(
      issuer,
      signer,
      { usages: ['client auth'] },
      await csr({ dnsNames: ['x.svc'] }, ['system:masters']),
    );
    expect(!org.ok && org.message).toContain('"system:masters"');
    const empty = checkSigningRequest(issuer, signer, { usages: ['client auth'] }, await csr({}));
    expect(empty).toMatchObject({ ok: false, reason: 'CertRotatorNoIdentity' });
  });

  it('refuses a request whose signature does not verify', async () => {
    const parsed = await csr({ dnsNames: ['x.svc'] });
    expect(
      checkSigningRequest(issuer, signer, { usages: ['server auth'] }, { ...parsed, signatureValid: false }),
    ).toMatchObject({
      ok: false,
      reason: 'CertRotatorInvalidSignature',
    });
  });
});

describe('ServiceAccount approver', () => {
  it('approves exactly what the request proves: own SPIFFE ID, own namespace DNS, own pod name', async () => {
    const parsed = await csr({
      uris: ['spiffe://cluster.local/ns/team-a/sa/api'],
      dnsNames: ['api.team-a.svc', 'api-7f9.team-a.pod.cluster.local'],
    });
    const d = decideApproval('cert-rotator.io/wl', approve, sa('team-a', 'api', 'api-7f9'), parsed);
    expect(d.approve).toBe(true);
    expect(d.message).toContain('ServiceAccount team-a/api (pod api-7f9) may have');
  });

  it('denies, naming the offending name or requester', async () => {
    const own = await csr({ uris: ['spiffe://cluster.local/ns/team-a/sa/api'] });
    const cases: Array<[Requester, Awaited<ReturnType<typeof csr>>, string]> = [
      [
        sa('team-a', 'api'),
        await csr({ uris: ['spiffe://cluster.local/ns/team-a/sa/admin'] }),
        'may not have URI "spiffe://cluster.local/ns/team-a/sa/admin"',
      ],
      [
        sa('team-a', 'api'),
        await csr({ uris: ['spiffe://cluster.local/ns/team-b/sa/api'] }),
        '"spiffe://cluster.local/ns/team-b/sa/api"',
      ],
      [
        sa('team-a', 'api'),
        await csr({ dnsNames: ['api.team-b.svc'] }),
        'may not have DNS name "api.team-b.svc"',
      ],
      // {podname} templates need a pod-bound token: without one they allow nothing.
      [
        sa('team-a', 'api'),
        await csr({ dnsNames: ['x.team-a.pod.cluster.local'] }),
        'may not have DNS name "x.team-a.pod.cluster.local"',
      ],
      [
        sa('team-a', 'api'),
        await csr({ uris: ['spiffe://cluster.local/ns/team-a/sa/api'], ipAddresses: ['10.0.0.1'] }),
        'may not have IP address "10.0.0.1"',
      ],
      [sa('kube-system', 'api'), own, 'namespace "kube-system", which is not allowed'],
      [
        { username: 'alice', groups: ['system:authenticated'], extra: {} },
        own,
        'requester "alice" is not a ServiceAccount',
      ],
      [{ ...sa('team-a', 'api'), groups: ['system:authenticated'] }, own, 'is not a ServiceAccount'],
    ];
    for (const [requester, parsed, text] of cases) {
      const d = decideApproval('cert-rotator.io/wl', approve, requester, parsed);
      expect(d.approve, text).toBe(false);
      expect(d.message).toContain(text);
    }
  });
});
