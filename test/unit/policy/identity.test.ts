import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.ts';
import { evaluate } from '../../../src/controller/evaluate.ts';
import { chooseIssuer } from '../../../src/controller/fallback.ts';
import type { SecretRecord } from '../../../src/controller/record.ts';
import type { CertSummary } from '../../../src/pki/index.ts';
import {
  checkIdentity,
  cidrContains,
  cidrProblem,
  type IdentityPolicy,
  subjectGlobMatch,
  uriGlobMatch,
} from '../../../src/policy/identity.ts';

const none = { dnsNames: [], ipAddresses: [], uris: [] };
const domainsOnly: IdentityPolicy = {
  name: 'internal',
  allowedNamespaces: ['*'],
  allowedDomains: ['*.example.com'],
};

describe('checkIdentity: the whole identity against the issuer policy', () => {
  it('refuses CN evil.example.org with allowedDomains *.example.com, naming the value', () => {
    const result = checkIdentity(domainsOnly, 'team-a', {
      ...none,
      commonName: 'evil.example.org',
      dnsNames: ['app.example.com'],
    });
    expect(result).toMatchObject({ allowed: false, part: 'commonName', value: 'evil.example.org' });
    expect(result.allowed === false && result.reason).toBe(
      'issuer "internal" does not allow common name "evil.example.org" (no allowedCommonNames; allowedDomains: *.example.com)',
    );
  });

  it('allows a CN that is a DNS name inside allowedDomains', () => {
    expect(
      checkIdentity(domainsOnly, 'a', {
        ...none,
        commonName: 'app.example.com',
        dnsNames: ['app.example.com'],
      }),
    ).toEqual({ allowed: true });
  });

  it('refuses IP and URI SANs when the restrictive issuer has no list for them', () => {
    const ip = checkIdentity(domainsOnly, 'a', {
      ...none,
      dnsNames: ['a.example.com'],
      ipAddresses: ['10.0.0.1'],
    });
    expect(ip).toMatchObject({ allowed: false, part: 'ipAddress', value: '10.0.0.1' });
    expect(ip.allowed === false && ip.reason).toContain(
      'does not allow IP address "10.0.0.1" (no allowedIPs;',
    );
    const uri = checkIdentity(domainsOnly, 'a', { ...none, uris: ['spiffe://cluster.local/ns/a/sa/b'] });
    expect(uri).toMatchObject({ allowed: false, part: 'uri', value: 'spiffe://cluster.local/ns/a/sa/b' });
    expect(uri.allowed === false && uri.reason).toContain('(no allowedURIs;');
  });

  it('refuses DNS names when only other lists are set (an unlisted kind is never let through)', () => {
    const ipsOnly: IdentityPolicy = { name: 'ips', allowedNamespaces: ['*'], allowedIPs: ['10.0.0.0/8'] };
    expect(checkIdentity(ipsOnly, 'a', { ...none, ipAddresses: ['10.1.2.3'] })).toEqual({ allowed: true });
    expect(checkIdentity(ipsOnly, 'a', { ...none, dnsNames: ['x.example.com'] })).toMatchObject({
      allowed: false,
      part: 'dnsName',
      value: 'x.example.com',
    });
    expect(
      checkIdentity(ipsOnly, 'a', { ...none, commonName: 'x', ipAddresses: ['10.1.2.3'] }),
    ).toMatchObject({ allowed: false, part: 'commonName' });
  });

  it('places no limit on names for an issuer without any identity list', () => {
    const open: IdentityPolicy = { name: 'open', allowedNamespaces: ['*'] };
    expect(
      checkIdentity(open, 'x', {
        commonName: 'anything',
        dnsNames: ['a.org'],
        ipAddresses: ['::1'],
        uris: ['spiffe://x/y'],
        organizations: ['o'],
      }),
    ).toEqual({ allowed: true });
  });

  it('still refuses a namespace outside allowedNamespaces first', () => {
    expect(checkIdentity({ ...domainsOnly, allowedNamespaces: ['team-*'] }, 'ops', none)).toMatchObject({
      allowed: false,
      part: 'namespace',
      value: 'ops',
    });
  });

  it('checks IPs by CIDR, URIs by glob, CNs and organizations by whole-value glob', () => {
    const full: IdentityPolicy = {
      name: 'full',
      allowedNamespaces: ['*'],
      allowedIPs: ['10.0.0.0/8', 'fd00::/8', '192.0.2.7'],
      allowedURIs: ['spiffe://cluster.local/ns/*/sa/*'],
      allowedCommonNames: ['svc-*', 'system:serviceaccount:ci:deployer'],
      allowedOrganizations: ['team-*'],
    };
    const ok = {
      commonName: 'svc-payments',
      dnsNames: [],
      ipAddresses: ['10.200.0.1', 'fd00::1', '192.0.2.7'],
      uris: ['spiffe://cluster.local/ns/pay/sa/api'],
      organizations: ['team-pay'],
    };
    expect(checkIdentity(full, 'a', ok)).toEqual({ allowed: true });
    expect(checkIdentity(full, 'a', { ...ok, ipAddresses: ['11.0.0.1'] })).toMatchObject({
      value: '11.0.0.1',
    });
    expect(checkIdentity(full, 'a', { ...ok, ipAddresses: ['192.0.2.8'] })).toMatchObject({
      value: '192.0.2.8',
    });
    expect(
      checkIdentity(full, 'a', { ...ok, uris: ['spiffe://cluster.local/ns/pay/sa/api/extra'] }),
    ).toMatchObject({ part: 'uri' });
    expect(checkIdentity(full, 'a', { ...ok, organizations: ['system:masters'] })).toMatchObject({
      part: 'organization',
      value: 'system:masters',
    });
    expect(checkIdentity(full, 'a', { ...ok, commonName: 'system:serviceaccount:ci:deployer' })).toEqual({
      allowed: true,
    });
    expect(checkIdentity(full, 'a', { ...ok, commonName: 'system:serviceaccount:ci:other' })).toMatchObject({
      part: 'commonName',
    });
  });
});

describe('the globs and CIDRs', () => {
  it('URI globs: * and ? never cross a slash', () => {
    const p = 'spiffe://cluster.local/ns/*/sa/*';
    expect(uriGlobMatch(p, 'spiffe://cluster.local/ns/a/sa/b')).toBe(true);
    expect(uriGlobMatch(p, 'spiffe://cluster.local/ns/a/b/sa/c')).toBe(false);
    expect(uriGlobMatch(p, 'spiffe://cluster.local/ns/a/sa/b/c')).toBe(false);
    expect(uriGlobMatch(p, 'spiffe://cluster.local/ns//sa/')).toBe(true);
    expect(uriGlobMatch('https://x/?', 'https://x/a')).toBe(true);
    expect(uriGlobMatch('https://x?a', 'https://x/a')).toBe(false);
    // A wildcard stays inside one path segment: no query, fragment or percent-encoded slash.
    expect(uriGlobMatch(p, 'spiffe://cluster.local/ns/a/sa/b?x=1')).toBe(false);
    expect(uriGlobMatch(p, 'spiffe://cluster.local/ns/a/sa/b#f')).toBe(false);
    expect(uriGlobMatch(p, 'spiffe://cluster.local/ns/a%2Fb/sa/c')).toBe(false);
  });

  it('URI glob agrees with a reference regex on random inputs', () => {
    const alphabet = ['a', 'b', '/', ':', '#', '%'];
    const toRegex = (p: string) =>
      new RegExp(
        `^${[...p].map((c) => (c === '*' ? '[^/?#%]*' : c === '?' ? '[^/?#%]' : c.replace(/[/:]/g, '\\$&'))).join('')}$`,
      );
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 3000; i++) {
      const p = Array.from({ length: rnd(7) }, () => [...alphabet, '*', '?'][rnd(8)]).join('');
      const v = Array.from({ length: rnd(8) }, () => [...alphabet, '?'][rnd(7)]).join('');
      expect(uriGlobMatch(p, v), `${p} ~ ${v}`).toBe(toRegex(p).test(v));
    }
  });

  it('subject globs: "*" never grants a system: name', () => {
    expect(subjectGlobMatch('*', 'alice')).toBe(true);
    expect(subjectGlobMatch('*', 'system:masters')).toBe(false);
    expect(subjectGlobMatch('*:masters', 'system:masters')).toBe(false);
    expect(subjectGlobMatch('system:masters', 'system:masters')).toBe(true);
    expect(subjectGlobMatch('app-*', 'app-a:b')).toBe(true);
  });

  it('CIDRs: containment by prefix, families never mix, bad ones are named', () => {
    expect(cidrContains('10.0.0.0/8', '10.255.0.1')).toBe(true);
    expect(cidrContains('10.0.0.0/9', '10.128.0.1')).toBe(false);
    expect(cidrContains('0.0.0.0/0', '1.2.3.4')).toBe(true);
    expect(cidrContains('::/0', '1.2.3.4')).toBe(false);
    expect(cidrContains('fd00::/8', 'FD12::1')).toBe(true);
    expect(cidrContains('2001:db8::/33', '2001:db8:8000::1')).toBe(false);
    expect(cidrProblem('10.0.0.0/33')).toBe('"10.0.0.0/33" is not a CIDR such as 10.0.0.0/8 or fd00::/8');
    expect(cidrProblem('10.0.0.0/8')).toBeUndefined();
    expect(cidrProblem('example.com')).toBeDefined();
  });
});

const MIN = 60_000;
function summary(over: Partial<CertSummary>): CertSummary {
  return {
    notBefore: Date.now() - 10 * MIN,
    notAfter: Date.now() + MIN,
    serialHex: '01',
    dnsNames: [],
    ipAddresses: [],
    uris: [],
    isCA: false,
    selfIssued: false,
    spkiSha256: 'x',
    publicKeySha256: 'x',
    serialFlag: undefined,
    keyCertSign: false,
    problems: [],
    keyAlgorithm: 'ecdsa-p256',
    ...over,
  };
}
function record(cert: CertSummary, annotations: Record<string, string> = {}): SecretRecord {
  return {
    namespace: 'team-a',
    name: 's',
    uid: 'u',
    resourceVersion: '1',
    annotations: { 'cert-rotator.io/enabled': 'true', ...annotations },
    managed: true,
    cert,
  };
}

describe('the controller checks what it would issue, including what it copies from tls.crt', () => {
  const config = loadConfig(`
issuers:
  - name: internal
    ca: { secret: { namespace: x, name: ca } }
    allowedDomains: ["*.example.com"]
    fallback: open
  - name: open
    selfSigned: {}
  - name: narrow
    selfSigned: {}
    allowedDomains: ["*.example.com"]
defaults: { issuer: internal }
`);

  it('an IP SAN copied from the current certificate makes the Secret IssuerNotAllowed', () => {
    const ev = evaluate(
      record(summary({ dnsNames: ['a.example.com'], ipAddresses: ['10.0.0.9'] })),
      config,
      Date.now(),
    );
    expect(ev).toMatchObject({ kind: 'not-allowed', issuer: 'internal' });
    expect(ev.kind === 'not-allowed' && ev.reason).toContain('"10.0.0.9"');
  });

  it('a certificate not acceptable to act on is planned at its renewal time, and its names are not checked', () => {
    const cert = summary({
      dnsNames: ['a.example.com'],
      ipAddresses: ['10.0.0.9'],
      notAfter: Date.now() + 90 * 86_400_000,
      notBefore: Date.now() - 86_400_000,
      problems: [{ field: 'subjectAltName', reason: 'unknown GeneralName tag 0x89' }],
    });
    const ev = evaluate(record(cert, { 'cert-rotator.io/dns-names': 'b.example.com' }), config, Date.now());
    expect(ev.kind).toBe('planned');
    if (ev.kind !== 'planned') return;
    expect(ev.identity.dnsNames).toEqual(['b.example.com']);
    expect(ev.identity.ipAddresses).toEqual([]);
    expect(ev.decision.action).toBe('wait');
    expect(ev.decision.at).toBeGreaterThan(Date.now() + 50 * 86_400_000);
  });

  it('a common-name annotation outside the lists is refused, naming it', () => {
    const ev = evaluate(
      record(summary({ dnsNames: ['a.example.com'] }), { 'cert-rotator.io/common-name': 'evil.example.org' }),
      config,
      Date.now(),
    );
    expect(ev.kind === 'not-allowed' && ev.reason).toContain('common name "evil.example.org"');
  });

  it('a fallback whose policy refuses the identity is not used', () => {
    const internal = config.issuers[0]!;
    const narrowFallback = { ...internal, fallback: 'narrow' };
    const identity = {
      commonName: 'evil.example.org',
      dnsNames: ['a.example.com'],
      ipAddresses: [],
      uris: [],
    };
    expect(chooseIssuer(narrowFallback, 5, config, 'team-a', identity).name).toBe('internal');
    expect(chooseIssuer(internal, 5, config, 'team-a', identity).name).toBe('open');
  });
});
