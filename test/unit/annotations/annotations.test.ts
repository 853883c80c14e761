import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/index.ts';
import { parseSecretPolicy, type SecretPolicy } from '../../../src/controller/annotations.ts';
import { Annotation, StatusAnnotation } from '../../../src/names.ts';

const H = 3_600_000;
const D = 24 * H;

const config = loadConfig(`
defaults: { issuer: internal-ca, renewBefore: 10d, keyAlgorithm: ecdsa-p384, restart: auto }
issuers:
  - name: internal-ca
    ca: { secret: { namespace: cert-rotator, name: internal-ca } }
  - name: letsencrypt
    acme:
      server: https://acme.example/dir
      accountKeySecret: { namespace: cert-rotator, name: le }
      solvers: [{ http01: {} }]
  - name: short
    selfSigned: {}
    duration: 24h
`);

function policyOf(annotations: Record<string, string> | undefined, cfg = config): SecretPolicy {
  const result = parseSecretPolicy(annotations, cfg);
  if (!result.ok) throw new Error(`unexpected errors: ${JSON.stringify(result.errors)}`);
  return result.policy;
}

function errorsOf(annotations: Record<string, string>, cfg = config) {
  const result = parseSecretPolicy(annotations, cfg);
  if (result.ok) throw new Error('expected errors');
  return result.errors;
}

describe('parseSecretPolicy', () => {
  it('takes every default from the config for a Secret without annotations', () => {
    const expected: SecretPolicy = {
      enabled: false,
      issuer: 'internal-ca',
      renewBefore: { kind: 'duration', ms: 10 * D },
      durationMs: 90 * D,
      identityOverride: {},
      fallbackKeyAlgorithm: 'ecdsa-p384',
      rotateKey: true,
      restart: { mode: 'auto' },
    };
    expect(policyOf(undefined)).toEqual(expected);
    expect(policyOf({ unrelated: 'x', [StatusAnnotation.state]: 'Ready' })).toEqual(expected);
  });

  it('reads every annotation', () => {
    const policy = policyOf({
      [Annotation.enabled]: 'true',
      [Annotation.issuer]: 'short',
      [Annotation.renewBefore]: '25%',
      [Annotation.duration]: '720h',
      [Annotation.dnsNames]: 'WWW.Example.com, *.api.example.com,www.example.com',
      [Annotation.ipAddresses]: '10.0.0.1, 2001:DB8:0:0::1',
      [Annotation.uris]: 'spiffe://cluster.local/ns/a/sa/b',
      [Annotation.commonName]: 'www.example.com',
      [Annotation.keyAlgorithm]: 'ed25519',
      [Annotation.rotateKey]: 'false',
      [Annotation.restart]: 'deployment/web, StatefulSet/db,daemonset/agent,deployment/web',
      [Annotation.window]: '0 2 * * 6',
      [Annotation.windowDuration]: '3h',
      [Annotation.windowTimezone]: 'Europe/Berlin',
    });
    expect(policy).toEqual({
      enabled: true,
      issuer: 'short',
      renewBefore: { kind: 'percent', fraction: 0.25 },
      durationMs: 30 * D,
      identityOverride: {
        commonName: 'www.example.com',
        dnsNames: ['www.example.com', '*.api.example.com'],
        ipAddresses: ['10.0.0.1', '2001:db8::1'],
        uris: ['spiffe://cluster.local/ns/a/sa/b'],
      },
      keyAlgorithm: 'ed25519',
      fallbackKeyAlgorithm: 'ecdsa-p384',
      rotateKey: false,
      restart: {
        mode: 'list',
        targets: [
          { kind: 'deployment', name: 'web' },
          { kind: 'statefulset', name: 'db' },
          { kind: 'daemonset', name: 'agent' },
        ],
      },
      window: { cron: '0 2 * * 6', durationMs: 3 * H, timezone: 'Europe/Berlin' },
    } satisfies SecretPolicy);
  });

  it('uses the issuer default lifetime, and none for ACME', () => {
    expect(policyOf({ [Annotation.issuer]: 'short' }).durationMs).toBe(24 * H);
    expect(policyOf({ [Annotation.issuer]: 'letsencrypt' }).durationMs).toBeUndefined();
  });

  it('defaults a window to one hour in UTC, and restart none', () => {
    const policy = policyOf({ [Annotation.window]: '@daily', [Annotation.restart]: 'none' });
    expect(policy.window).toEqual({ cron: '@daily', durationMs: H });
    expect(policy.restart).toEqual({ mode: 'none' });
  });

  it('requires an issuer for an enabled Secret when the config has no default', () => {
    const noDefault = loadConfig('issuers: [{ name: a, selfSigned: {} }, { name: b, selfSigned: {} }]');
    expect(errorsOf({ [Annotation.enabled]: 'true' }, noDefault)).toEqual([
      { annotation: Annotation.issuer, message: 'required: the config sets no defaults.issuer' },
    ]);
    expect(policyOf({}, noDefault).issuer).toBe('');
  });

  it.each<[string, Record<string, string>, string]>([
    ['enabled', { [Annotation.enabled]: 'yes' }, '"yes" must be "true" or "false"'],
    ['rotate-key', { [Annotation.rotateKey]: 'TRUE' }, '"TRUE" must be "true" or "false"'],
    [
      'issuer',
      { [Annotation.issuer]: 'nope' },
      'unknown issuer "nope" (issuers: internal-ca, letsencrypt, short)',
    ],
    [
      'renew-before',
      { [Annotation.renewBefore]: '100%' },
      '"100%" must be a percentage above 0% and below 100%, e.g. 33%',
    ],
    [
      'duration',
      { [Annotation.duration]: '30' },
      '"30" is not a duration; use a number and a unit (d, h, m, s, ms), e.g. 720h, 30d, 1h30m, 90s',
    ],
    [
      'duration',
      { [Annotation.duration]: '10m' },
      '"10m" is too short; a certificate lifetime must be at least 1h',
    ],
    [
      'duration',
      { [Annotation.issuer]: 'letsencrypt', [Annotation.duration]: '30d' },
      'issuer "letsencrypt" is an ACME issuer; the ACME server chooses the lifetime',
    ],
    [
      'dns-names',
      { [Annotation.dnsNames]: 'ok.example.com,bad_name.example.com' },
      '"bad_name.example.com" is not a valid DNS name (letters, digits and "-" per label; no leading or trailing "-")',
    ],
    [
      'dns-names',
      { [Annotation.dnsNames]: 'a.*.example.com' },
      '"a.*.example.com": a wildcard must be the whole first label',
    ],
    [
      'dns-names',
      { [Annotation.dnsNames]: '*.com' },
      '"*.com": a wildcard needs at least two labels after it (e.g. *.example.com)',
    ],
    [
      'dns-names',
      { [Annotation.dnsNames]: `${'a'.repeat(64)}.example.com` },
      'has a label longer than 63 characters',
    ],
    ['dns-names', { [Annotation.dnsNames]: '10.0.0.1' }, '"10.0.0.1" is an IP address, not a DNS name'],
    ['dns-names', { [Annotation.dnsNames]: 'example.com.' }, '"example.com." must not end with a dot'],
    [
      'dns-names',
      { [Annotation.dnsNames]: ' , ' },
      'is empty; remove the annotation or list at least one entry',
    ],
    [
      'ip-addresses',
      { [Annotation.ipAddresses]: '10.0.0.1,300.1.1.1,fe80::1%eth0' },
      '"300.1.1.1" is not an IPv4 or IPv6 address; "fe80::1%eth0" is not an IPv4 or IPv6 address',
    ],
    [
      'uris',
      { [Annotation.uris]: '/relative/path' },
      '"/relative/path" is not a URI with a scheme (e.g. spiffe://…)',
    ],
    [
      'uris',
      { [Annotation.uris]: 'https://exa mple.com' },
      '"https://exa mple.com" contains whitespace or control characters',
    ],
    ['common-name', { [Annotation.commonName]: 'x'.repeat(65) }, 'is longer than 64 characters'],
    ['common-name', { [Annotation.commonName]: 'a\u0007b' }, 'contains control characters'],
    [
      'key-algorithm',
      { [Annotation.keyAlgorithm]: 'rsa-1024' },
      '"rsa-1024" must be one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, ed25519',
    ],
    [
      'restart',
      { [Annotation.restart]: 'pod/x' },
      '"pod/x" is not kind/name with kind deployment, statefulset, daemonset; use auto, none, or a list such as deployment/web,statefulset/db,daemonset/agent',
    ],
    [
      'restart',
      { [Annotation.restart]: 'deployment/Web' },
      '"deployment/Web": "Web" is not a valid object name (lowercase DNS subdomain, at most 253 characters); use auto, none, or a list such as deployment/web,statefulset/db,daemonset/agent',
    ],
    [
      'restart',
      { [Annotation.restart]: 'deployment/other/web' },
      '"deployment/other/web" names another namespace; only workloads in the Secret\'s own namespace can be restarted; use auto, none, or a list such as deployment/web,statefulset/db,daemonset/agent',
    ],
    [
      'restart',
      { [Annotation.restart]: 'false' },
      '"false" is not kind/name with kind deployment, statefulset, daemonset; use auto, none, or a list such as deployment/web,statefulset/db,daemonset/agent',
    ],
    [
      'window',
      { [Annotation.window]: '0 2 * *' },
      '"0 2 * *" has 4 fields; use 5 (minute hour day-of-month month day-of-week)',
    ],
    [
      'window',
      { [Annotation.window]: '0 25 * * *' },
      '"0 25 * * *" is not a valid cron expression: Field value (25) is out of range',
    ],
    [
      'window-timezone',
      { [Annotation.window]: '0 2 * * *', [Annotation.windowTimezone]: 'Europe/Atlantis' },
      '"Europe/Atlantis" is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)',
    ],
    [
      'window-duration',
      { [Annotation.window]: '0 2 * * *', [Annotation.windowDuration]: '32d' },
      '"32d" is too long; the maximum is 31d',
    ],
    [
      'window-duration',
      { [Annotation.windowDuration]: '1h' },
      'has no effect without cert-rotator.io/window',
    ],
    [
      'window-timezone',
      { [Annotation.windowTimezone]: 'UTC' },
      'has no effect without cert-rotator.io/window',
    ],
  ])('%s: %j', (name, annotations, message) => {
    expect(errorsOf(annotations)).toEqual([
      { annotation: `cert-rotator.io/${name}`, message: expect.stringContaining(message) },
    ]);
  });

  it('reports unknown cert-rotator.io annotations but ignores the ones it writes', () => {
    expect(errorsOf({ 'cert-rotator.io/renew-befor': '10d', [StatusAnnotation.failures]: '3' })).toEqual([
      {
        annotation: 'cert-rotator.io/renew-befor',
        message: expect.stringMatching(/^unknown annotation; known: enabled, issuer, renew-before/),
      },
    ]);
  });

  it('reports every bad annotation at once', () => {
    const errors = errorsOf({
      [Annotation.enabled]: 'on',
      [Annotation.issuer]: 'nope',
      [Annotation.dnsNames]: 'bad name',
      [Annotation.window]: 'whenever',
    });
    expect(errors.map((e) => e.annotation)).toEqual([
      Annotation.enabled,
      Annotation.issuer,
      Annotation.dnsNames,
      Annotation.window,
    ]);
  });

  it('bounds sizes', () => {
    const many = Array.from({ length: 101 }, (_, i) => `h${i}.example.com`).join(',');
    expect(errorsOf({ [Annotation.dnsNames]: many })).toEqual([
      { annotation: Annotation.dnsNames, message: 'has 101 entries; the maximum is 100' },
    ]);
    const hundred = Array.from({ length: 100 }, (_, i) => `h${i}.example.com`).join(',');
    expect(policyOf({ [Annotation.dnsNames]: hundred }).identityOverride.dnsNames).toHaveLength(100);
    expect(errorsOf({ [Annotation.commonName]: 'x'.repeat(4097) })).toEqual([
      { annotation: Annotation.commonName, message: 'is longer than 4096 bytes' },
    ]);
    expect(errorsOf({ [Annotation.uris]: `spiffe://a/${'é'.repeat(2100)}` })).toEqual([
      { annotation: Annotation.uris, message: 'is longer than 4096 bytes' },
    ]);
  });
});

describe('annotations the controller writes are never input (rolling upgrades)', () => {
  it('every status annotation, with any value, leaves the policy valid and unchanged', () => {
    const base = policyOf({ [Annotation.enabled]: 'true' });
    const status: Record<string, string> = {};
    for (const key of Object.values(StatusAnnotation)) status[key] = '\u0000 not a value anything parses';
    expect(policyOf({ [Annotation.enabled]: 'true', ...status })).toEqual(base);
  });

  it('a status annotation that only a newer version knows is ignored, not an unknown annotation', () => {
    const base = policyOf({ [Annotation.enabled]: 'true' });
    expect(
      policyOf({
        [Annotation.enabled]: 'true',
        'status.cert-rotator.io/added-in-0.9': 'x'.repeat(10_000),
        'status.cert-rotator.io/another': '',
      }),
    ).toEqual(base);
    // The input prefix stays strict: a typo there is still reported.
    expect(errorsOf({ 'cert-rotator.io/enabeld': 'true' })[0]?.annotation).toBe('cert-rotator.io/enabeld');
  });

  it('renew-requested-at is due once: the handled token (a status annotation) turns it off', () => {
    expect(policyOf({ [Annotation.renewRequestedAt]: 't1' }).renewRequest).toBe('t1');
    expect(
      policyOf({ [Annotation.renewRequestedAt]: 't1', [StatusAnnotation.renewRequestHandled]: 't1' })
        .renewRequest,
    ).toBeUndefined();
    expect(policyOf({ [Annotation.renewRequestedAt]: ' ' }).renewRequest).toBeUndefined();
    expect(errorsOf({ [Annotation.renewRequestedAt]: 'x'.repeat(5000) })[0]?.annotation).toBe(
      Annotation.renewRequestedAt,
    );
  });
});
