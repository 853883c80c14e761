import { describe, expect, it } from 'vitest';
import { type Config, ConfigError, loadConfig } from '../../../src/config/index.ts';
import { labelSelectorQuery } from '../../../src/config/label-selector.ts';

const H = 3_600_000;
const D = 24 * H;

/** The example from design.md, with its placeholders filled in. */
const DESIGN_EXAMPLE = `
defaults: { issuer: internal-ca, renewBefore: "33%", keyAlgorithm: ecdsa-p256, restart: auto }
issuers:
  - name: internal-ca
    ca: { secret: { namespace: cert-rotator, name: internal-ca } }
    allowedNamespaces: ["*"]            # glob list; a Secret elsewhere gets an IssuerNotAllowed event
  - name: letsencrypt
    acme:
      server: https://acme-v02.api.letsencrypt.org/directory
      email: ops@example.com
      accountKeySecret: { namespace: cert-rotator, name: letsencrypt-account }   # created if absent
      externalAccountBinding: { keyId: "kid-1", hmacKeySecret: { namespace: cert-rotator, name: eab, key: hmac } }
      solvers:
        - http01: {}
        - dns01: { rfc2136: { nameserver: "10.0.0.53:53", tsigKeyName: acme-key., tsigAlgorithm: hmac-sha256, tsigSecret: { namespace: cert-rotator, name: tsig, key: secret } } }
          selector: { dnsZones: [example.com] }
    allowedDomains: ["*.example.com"]
  - name: cluster-csr
    kubernetesCSR: { signerName: example.com/serving, autoApprove: true, expirationSeconds: 2592000 }
  - name: self
    selfSigned: {}
`;

function issues(yaml: string): string[] {
  try {
    loadConfig(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const configError = err as ConfigError;
    expect(configError.message).toBe(configError.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
    return configError.message.split('\n');
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('loads the design.md example with every default applied', () => {
    const config: Config = loadConfig(DESIGN_EXAMPLE);
    expect(config.defaults).toEqual({
      issuer: 'internal-ca',
      renewBefore: { kind: 'percent', fraction: 0.33 },
      keyAlgorithm: 'ecdsa-p256',
      restart: 'auto',
    });
    expect(config.issuers).toEqual([
      {
        name: 'internal-ca',
        kind: 'ca',
        ca: {
          secret: { namespace: 'cert-rotator', name: 'internal-ca' },
          rollover: {
            enabled: true,
            trustPropagationMs: 5 * 60_000,
            maxWaitMs: 3_600_000,
            onMaxWait: 'continue',
            reissuePerMinute: 60,
            reissueWindows: [],
            retireAfterMs: D,
            checkIntervalMs: 30_000,
          },
        },
        allowedNamespaces: ['*'],
        durationMs: 90 * D,
      },
      {
        name: 'letsencrypt',
        kind: 'acme',
        acme: {
          server: 'https://acme-v02.api.letsencrypt.org/directory',
          maxOrdersPerHour: 5,
          ari: true,
          email: 'ops@example.com',
          accountKeySecret: { namespace: 'cert-rotator', name: 'letsencrypt-account' },
          externalAccountBinding: {
            keyId: 'kid-1',
            hmacKeySecret: { namespace: 'cert-rotator', name: 'eab', key: 'hmac' },
          },
          solvers: [
            { kind: 'http01' },
            {
              kind: 'dns01',
              rfc2136: {
                nameserver: '10.0.0.53:53',
                tsig: {
                  keyName: 'acme-key.',
                  algorithm: 'hmac-sha256',
                  secret: { namespace: 'cert-rotator', name: 'tsig', key: 'secret' },
                },
              },
              selector: { dnsZones: ['example.com'] },
            },
          ],
        },
        allowedNamespaces: ['*'],
        allowedDomains: ['*.example.com'],
      },
      {
        name: 'cluster-csr',
        kind: 'kubernetesCSR',
        kubernetesCSR: {
          signerName: 'example.com/serving',
          autoApprove: true,
          expirationSeconds: 2592000,
          usages: ['digital signature', 'server auth'],
          approvalTimeoutMs: 15 * 60_000,
          approvalHoldMs: 20_000,
        },
        allowedNamespaces: ['*'],
        durationMs: 30 * D,
      },
      { name: 'self', kind: 'selfSigned', allowedNamespaces: ['*'], durationMs: 90 * D },
    ]);
    expect(config.namespaces).toBe('all');
    expect(config.resyncIntervalMs).toBe(10 * H);
    expect(config.concurrency).toBe(4);
    expect(config.metrics).toEqual({ address: ':9402' });
    expect(config.leaderElection).toEqual({
      enabled: true,
      leaseName: 'cert-rotator',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
    expect(config.rollout).toEqual({ debounceMs: 5_000 });
  });

  it('loads an empty file as all defaults, monitoring only', () => {
    const config = loadConfig('');
    expect(config.issuers).toEqual([]);
    expect(config.defaults.issuer).toBeUndefined();
    expect(config.defaults.renewBefore).toEqual({ kind: 'percent', fraction: 1 / 3 });
    expect(loadConfig('# nothing here\n')).toEqual(config);
  });

  it('takes the only issuer as the default issuer', () => {
    expect(loadConfig('issuers: [{ name: self, selfSigned: {} }]').defaults.issuer).toBe('self');
  });

  it('reads every top-level setting', () => {
    const config = loadConfig(`
namespaces: [team-a, team-b, team-a]
resyncInterval: 30m
concurrency: 16
metrics: { address: "127.0.0.1:9090" }
leaderElection: { enabled: false, namespace: ops, leaseName: rotator, leaseDuration: 30s, renewDeadline: 20s, retryPeriod: 5s }
rollout: { debounce: "0" }
defaults: { renewBefore: 720h, keyAlgorithm: rsa-3072, restart: none, duration: 30d }
issuers:
  - name: ca
    ca: { secret: { namespace: pki, name: root } }
    duration: 2160h
    allowedNamespaces: [team-*, "prod-??"]
    fallback: self
  - name: self
    selfSigned:
`);
    expect(config.namespaces).toEqual(['team-a', 'team-b']);
    expect(config.resyncIntervalMs).toBe(30 * 60_000);
    expect(config.concurrency).toBe(16);
    expect(config.metrics.address).toBe('127.0.0.1:9090');
    expect(config.leaderElection).toEqual({
      enabled: false,
      namespace: 'ops',
      leaseName: 'rotator',
      leaseDurationMs: 30_000,
      renewDeadlineMs: 20_000,
      retryPeriodMs: 5_000,
    });
    expect(config.rollout.debounceMs).toBe(0);
    expect(config.defaults).toEqual({
      renewBefore: { kind: 'duration', ms: 720 * H },
      keyAlgorithm: 'rsa-3072',
      restart: 'none',
      durationMs: 30 * D,
    });
    expect(config.issuers[0]).toMatchObject({
      durationMs: 90 * D,
      allowedNamespaces: ['team-*', 'prod-??'],
      fallback: 'self',
    });
    expect(config.issuers[1]).toEqual({
      name: 'self',
      kind: 'selfSigned',
      allowedNamespaces: ['*'],
      durationMs: 90 * D,
    });
  });

  it('reports every bad path of a bad file at once', () => {
    expect(
      issues(`
defaults: { issuer: x, renewBefore: "150%", keyAlgorithm: dsa, restart: sometimes }
issuers:
  - name: internal-ca
    ca: { secret: { namespace: cert-rotator } }
  - name: Bad_Name
    selfSigned: {}
    allowedNamespaces: []
  - name: letsencrypt
    acme:
      server: http://acme.example.com/directory
      email: not-an-email
      accountKeySecret: { namespace: cert-rotator, name: le }
      solvers:
        - dns01: { rfc2136: { nameserver: "10.0.0.53:99999", tsigAlgorithm: hmac-md5, tsigKeyName: k } }
    fallback: nowhere
  - name: csr
    kubernetesCSR: { signerName: serving, expirationSeconds: 60 }
  - name: internal-ca
    ca: { secret: { namespace: a, name: b } }
    selfSigned: {}
  - name: empty
concurrency: 100
resyncInterval: 10
metrics: { address: "9402" }
leaderElection: { leaseDuration: 5s }
rollout: { debounce: -1s }
`),
    ).toEqual([
      'defaults.issuer: unknown issuer "x" (issuers: internal-ca, Bad_Name, letsencrypt, csr, empty)',
      'defaults.renewBefore: "150%" must be a percentage above 0% and below 100%, e.g. 33%',
      'defaults.keyAlgorithm: "dsa" must be one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, ed25519',
      'defaults.restart: "sometimes" must be auto or none (lists are per Secret, by annotation)',
      'issuers[0].ca.secret.name: required',
      'issuers[1].name: "Bad_Name" is not a valid issuer name (lowercase letters, digits and "-", at most 63 characters)',
      'issuers[1].allowedNamespaces: must not be empty (omit the key for the default)',
      'issuers[2].acme.server: "http://acme.example.com/directory" must be an https:// URL of an ACME directory',
      'issuers[2].acme.email: "not-an-email" is not an email address',
      'issuers[2].acme.solvers[0].dns01.rfc2136.nameserver: "10.0.0.53:99999" must be host:port, e.g. 10.0.0.53:53 or [fd00::53]:53',
      'issuers[2].acme.solvers[0].dns01.rfc2136.tsigAlgorithm: "hmac-md5" must be hmac-sha256 or hmac-sha512',
      'issuers[2].acme.solvers[0].dns01.rfc2136.tsigSecret: required when the other TSIG setting is given (set tsigKeyName and tsigSecret together)',
      'issuers[3].kubernetesCSR.signerName: "serving" must look like "example.com/serving" (domain/path)',
      'issuers[3].kubernetesCSR.expirationSeconds: must be between 600 and 315360000, got 60',
      'issuers[4]: has ca and selfSigned; choose exactly one of ca, selfSigned, acme, kubernetesCSR',
      'issuers[4].name: duplicate issuer name "internal-ca" (also issuers[0])',
      'issuers[5]: needs exactly one of ca, selfSigned, acme, kubernetesCSR',
      'issuers[2].fallback: unknown issuer "nowhere"',
      'resyncInterval: must be a string, got number 10',
      'concurrency: must be between 1 and 64, got 100',
      'metrics.address: "9402" must be [host]:port, e.g. ":9402" or "127.0.0.1:9402"',
      'leaderElection.renewDeadline: must be shorter than leaseDuration',
      'rollout.debounce: "-1s" is negative; use a number and a unit (d, h, m, s, ms), e.g. 720h, 30d, 1h30m, 90s',
    ]);
  });

  it('rejects unknown keys at every level, suggesting the likely one', () => {
    expect(
      issues(`
namepsaces: [default]
defaults: { renewbefore: 10d }
issuers:
  - name: ca
    ca: { secret: { namespace: a, name: b, key: tls.crt } }
    allowedNamespace: ["*"]
  - name: le
    acme:
      server: https://acme.example/dir
      accountKeySecret: { namespace: a, name: b }
      solvers: [{ http01: { ingressClass: nginx } }]
      skipTLSVerify: true
metrics: { adress: ":9402" }
`),
    ).toEqual([
      'namepsaces: unknown key; did you mean "namespaces"?',
      'defaults.renewbefore: unknown key; did you mean "renewBefore"?',
      'issuers[0].allowedNamespace: unknown key; did you mean "allowedNamespaces"?',
      'issuers[0].ca.secret.key: unknown key (known keys: namespace, name)',
      'issuers[1].acme.skipTLSVerify: unknown key (known keys: server, email, accountKeySecret, externalAccountBinding, solvers, caBundle, maxOrdersPerHour, ari)',
      'issuers[1].acme.solvers[0].http01.ingressClass: unknown key (known keys: address, podIP, ingress, ingressClassName, ingressAnnotations)',
      'metrics.adress: unknown key; did you mean "address"?',
    ]);
  });

  it('checks fallbacks', () => {
    expect(
      issues(`
issuers:
  - { name: a, selfSigned: {}, fallback: b }
  - { name: b, selfSigned: {}, fallback: a }
  - { name: c, selfSigned: {}, fallback: c }
`),
    ).toEqual([
      'issuers[0].fallback: fallback cycle: a -> b -> a',
      'issuers[1].fallback: fallback cycle: b -> a -> b',
      'issuers[2].fallback: must name another issuer, not the issuer itself',
    ]);
  });

  it('checks issuer-specific rules', () => {
    expect(
      issues(`
issuers:
  - name: le
    duration: 30d
    acme: { server: https://acme.example/dir, accountKeySecret: { namespace: a, name: b }, solvers: [], caBundle: nope }
  - name: csr
    duration: 30m
    kubernetesCSR: { signerName: example.com/x, autoApprove: "yes" }
  - name: csr2
    duration: 2h
    kubernetesCSR: { signerName: example.com/x, expirationSeconds: 3600 }
  - name: ca
    allowedDomains: ["*.Example.com"]
    ca: { secret: { namespace: Bad, name: "x y" } }
`),
    ).toEqual([
      'issuers[0].duration: not supported for acme issuers (the ACME server chooses the lifetime)',
      'issuers[0].acme.solvers: must be a non-empty list of solvers (http01 or dns01)',
      'issuers[0].acme.caBundle: must be PEM text with at least one "-----BEGIN CERTIFICATE-----" block',
      'issuers[1].duration: "30m" is too short; a certificate lifetime must be at least 1h',
      'issuers[1].kubernetesCSR.autoApprove: must be true or false, got the string "yes"',
      'issuers[2].duration: set either duration or kubernetesCSR.expirationSeconds, not both',
      'issuers[3].allowedDomains[0]: "*.Example.com" may contain only lowercase letters, digits, "-", "." and the wildcards * and ?',
      'issuers[3].ca.secret.namespace: "Bad" is not a valid namespace name (lowercase letters, digits and "-", at most 63)',
      'issuers[3].ca.secret.name: "x y" is not a valid object name (lowercase DNS subdomain, at most 253 characters)',
    ]);
  });

  it('normalizes an RFC 2136 nameserver and allows no TSIG', () => {
    const config = loadConfig(`
issuers:
  - name: le
    acme:
      server: https://acme.example/dir
      accountKeySecret: { namespace: a, name: b }
      solvers:
        - dns01: { rfc2136: { nameserver: ns1.example.com } }
        - dns01: { rfc2136: { nameserver: "[fd00::53]:5353" } }
`);
    const issuer = config.issuers[0];
    expect(issuer?.kind === 'acme' && issuer.acme.solvers).toEqual([
      { kind: 'dns01', rfc2136: { nameserver: 'ns1.example.com:53' } },
      { kind: 'dns01', rfc2136: { nameserver: '[fd00::53]:5353' } },
    ]);
  });

  it('reports YAML syntax errors, duplicate keys and a non-mapping document', () => {
    expect(issues('a: [1\nb: 2')).toEqual([
      '(file): Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1',
    ]);
    expect(issues('concurrency: 1\nconcurrency: 2')).toEqual([
      '(file): Map keys must be unique at line 2, column 1',
    ]);
    expect(issues('- 1')).toEqual(['(root): must be a mapping, got a list']);
  });

  it('refuses alias bombs', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 8; i++)
      bomb.push(`${'bcdefghi'[i]}: &${'bcdefghi'[i]} [${Array(10).fill(`*${'abcdefgh'[i]}`).join(', ')}]`);
    expect(issues(bomb.join('\n'))[0]).toMatch(/^\(file\): .*alias/i);
  });
});

describe('config of the CSR issuer, signer and identity lists', () => {
  it('reads the identity allow-lists and reports bad entries by path', () => {
    const config = loadConfig(`
issuers:
  - name: wl
    selfSigned: {}
    allowedIPs: ["10.0.0.0/8", "fd00::/8"]
    allowedURIs: ["spiffe://cluster.local/ns/*/sa/*"]
    allowedCommonNames: ["svc-*"]
`);
    expect(config.issuers[0]).toMatchObject({
      allowedIPs: ['10.0.0.0/8', 'fd00::/8'],
      allowedURIs: ['spiffe://cluster.local/ns/*/sa/*'],
      allowedCommonNames: ['svc-*'],
    });
    expect(
      issues(`
issuers:
  - name: wl
    selfSigned: {}
    allowedIPs: ["10.0.0.0/33"]
    allowedURIs: ["no scheme"]
`),
    ).toEqual([
      'issuers[0].allowedIPs[0]: "10.0.0.0/33" is not a CIDR such as 10.0.0.0/8 or fd00::/8',
      'issuers[0].allowedURIs[0]: "no scheme" must be printable ASCII without spaces',
    ]);
  });

  it('defaults usages per signer and refuses what a Secret cannot use, saying why', () => {
    const config = loadConfig(`
issuers:
  - name: kcm-client
    kubernetesCSR: { signerName: kubernetes.io/kube-apiserver-client, autoApprove: true, approvalTimeout: 30s, approvalHold: 5s }
    allowedCommonNames: ["app-*"]
`);
    expect(config.issuers[0]).toMatchObject({
      kubernetesCSR: {
        usages: ['digital signature', 'key encipherment', 'client auth'],
        approvalTimeoutMs: 30_000,
        approvalHoldMs: 5_000,
      },
    });
    expect(
      issues(`
issuers:
  - name: held
    kubernetesCSR: { signerName: example.com/serving, approvalHold: 0s }
`).join('\n'),
    ).toMatch(/approvalHold/);
    const problems = issues(`
issuers:
  - name: kubelet
    kubernetesCSR: { signerName: kubernetes.io/kubelet-serving }
  - name: client-no-list
    kubernetesCSR: { signerName: kubernetes.io/kube-apiserver-client }
  - name: bad-usage
    kubernetesCSR: { signerName: example.com/x, usages: [server auth, flying], approvalTimeout: 1s }
`);
    expect(problems[0]).toMatch(
      /^issuers\[0\]\.kubernetesCSR\.signerName: "kubernetes.io\/kubelet-serving" cannot be used: .*O=system:nodes/,
    );
    expect(problems[1]).toMatch(
      /^issuers\[1\]\.kubernetesCSR\.signerName: a client-auth issuer .* must list allowedCommonNames/,
    );
    expect(problems.slice(2)).toEqual([
      'issuers[2].kubernetesCSR.usages[1]: "flying" is not a usage here (one of: signing, digital signature, content commitment, key encipherment, key agreement, data encipherment, cert sign, crl sign, encipher only, decipher only, any, server auth, client auth, code signing, email protection, s/mime, ipsec end system, ipsec tunnel, ipsec user, timestamping, ocsp signing, microsoft sgc, netscape sgc)',
      'issuers[2].kubernetesCSR.approvalTimeout: "1s" is too short; the minimum is 5s',
    ]);
  });

  it('reads signer and approver on a ca issuer, and only there', () => {
    const config = loadConfig(`
issuers:
  - name: workload-ca
    ca: { secret: { namespace: cr, name: wca } }
    signer: { maxDuration: 1m }
    approve:
      serviceAccounts:
        namespaces: ["team-*"]
        uris: ["spiffe://cluster.local/ns/{namespace}/sa/{serviceaccount}"]
        dnsNames: ["{podname}.{namespace}.pod.cluster.local"]
`);
    expect(config.issuers[0]).toMatchObject({
      signer: {
        signerName: 'cert-rotator.io/workload-ca',
        maxDurationMs: 60_000,
        allowedUsages: ['digital signature', 'key encipherment', 'server auth', 'client auth'],
      },
      approve: {
        serviceAccounts: {
          namespaces: ['team-*'],
          uris: ['spiffe://cluster.local/ns/{namespace}/sa/{serviceaccount}'],
          dnsNames: ['{podname}.{namespace}.pod.cluster.local'],
        },
      },
    });
    expect(
      issues(`
issuers:
  - name: a
    ca: { secret: { namespace: cr, name: wca } }
    signer: { signerName: kubernetes.io/mine, maxDuration: 30s, allowedUsages: [cert sign] }
    approve: { serviceAccounts: { namespaces: [x], uris: ["spiffe://td/{pod}"] } }
  - name: b
    selfSigned: {}
    signer: {}
`),
    ).toEqual([
      'issuers[0].signer.signerName: "kubernetes.io/mine": kubernetes.io/ signers belong to Kubernetes; use e.g. cert-rotator.io/a',
      'issuers[0].signer.maxDuration: "30s" is too short; the minimum is 1m',
      'issuers[0].signer.allowedUsages[0]: "cert sign" is not a usage here (one of: digital signature, key encipherment, server auth, client auth)',
      'issuers[0].approve.serviceAccounts.uris[0]: "spiffe://td/{pod}": unknown placeholder {pod} (uris may use {namespace}, {serviceaccount})',
      'issuers[1].signer: only a ca issuer can sign CSRs',
    ]);
  });
});

describe('ui, notices and notifications', () => {
  const base = 'issuers: [{ name: self, selfSigned: {} }]\n';
  it("defaults: status page on, notices at 14d, 7d and expiry with the rules' 15m grace, no webhooks", () => {
    const c = loadConfig(base);
    expect(c.ui).toEqual({ enabled: true });
    expect(c.notices).toEqual({
      enabled: true,
      thresholdsMs: [14 * D, 7 * D, 0],
      checkIntervalMs: 60_000,
      graceMs: 15 * 60_000,
    });
    expect(c.notifications).toEqual({ webhooks: [], resendIntervalMs: 60_000 });
  });

  it('reads them, thresholds longest first and once each', () => {
    const c = loadConfig(`${base}ui: { enabled: false }
notices: { thresholds: ["0", 30d, 7d, 30d], checkInterval: 10s, grace: "0" }
notifications:
  resendInterval: 30s
  webhooks:
    - { name: am, url: "http://alertmanager:9093" }
    - { name: chat, url: "https://hooks.example/x", format: json, timeout: 2s }
`);
    expect(c.ui.enabled).toBe(false);
    expect(c.notices).toMatchObject({
      thresholdsMs: [30 * D, 7 * D, 0],
      checkIntervalMs: 10_000,
      graceMs: 0,
    });
    expect(c.notifications).toEqual({
      resendIntervalMs: 30_000,
      webhooks: [
        { name: 'am', url: 'http://alertmanager:9093', format: 'alertmanager', timeoutMs: 10_000 },
        { name: 'chat', url: 'https://hooks.example/x', format: 'json', timeoutMs: 2_000 },
      ],
    });
  });

  it('names every bad value', () => {
    expect(
      issues(`${base}ui: { enabled: "yes" }
notices: { thresholds: [soon] }
notifications:
  webhooks:
    - { name: a, url: "ftp://x" }
    - { name: a, url: "http://y", format: slack }
    - { name: b }
`),
    ).toEqual([
      expect.stringMatching(/^ui\.enabled: /),
      expect.stringMatching(/^notices\.thresholds\[0\]: "soon" is not a duration/),
      'notifications.webhooks[0].url: "ftp://x" must be an http(s) URL',
      'notifications.webhooks[1].name: "a" is used twice',
      'notifications.webhooks[1].format: must be "alertmanager" or "json", got "slack"',
      'notifications.webhooks[2].url: is required',
    ]);
  });
});

describe('ca.rollover', () => {
  const ca = (rollover: string) =>
    `issuers: [{ name: c, ca: { secret: { namespace: n, name: s }, rollover: ${rollover} } }]\n`;

  it('reads shortened timings', () => {
    const config = loadConfig(
      ca(
        '{ trustPropagation: 2s, maxWait: 4s, onMaxWait: hold, reissue: { maxPerMinute: 5 }, retireAfter: 6s, checkInterval: 1s }',
      ),
    );
    const issuer = config.issuers[0];
    expect(issuer?.kind === 'ca' ? issuer.ca.rollover : undefined).toEqual({
      enabled: true,
      trustPropagationMs: 2000,
      maxWaitMs: 4000,
      onMaxWait: 'hold',
      reissuePerMinute: 5,
      reissueWindows: [],
      retireAfterMs: 6000,
      checkIntervalMs: 1000,
    });
  });

  it('reads Reissue maintenance windows (duration 1h and UTC by default) and refuses bad ones', () => {
    const config = loadConfig(
      ca(
        '{ reissue: { windows: [{ cron: "0 2 * * 1-5", duration: 3h, timezone: Europe/Berlin }, { cron: "30 22 * * 6" }] } }',
      ),
    );
    const issuer = config.issuers[0];
    expect(issuer?.kind === 'ca' ? issuer.ca.rollover.reissueWindows : undefined).toEqual([
      { cron: '0 2 * * 1-5', durationMs: 3 * 3_600_000, timezone: 'Europe/Berlin' },
      { cron: '30 22 * * 6', durationMs: 3_600_000 },
    ]);
    const w = (windows: string) => issues(ca(`{ reissue: { windows: ${windows} } }`));
    expect(w('[]')).toEqual([expect.stringMatching(/reissue\.windows: must be a non-empty list/)]);
    expect(w('[{ cron: "0 2 * *" }]')).toEqual([
      expect.stringMatching(/reissue\.windows\[0\]\.cron: "0 2 \* \*" has 4 fields; use 5/),
    ]);
    expect(w('[{ cron: "0 2 * * *", timezone: Mars/Olympus }]')).toEqual([
      expect.stringMatching(/windows\[0\]\.timezone: "Mars\/Olympus" is not an IANA time zone name/),
    ]);
    expect(w('[{ cron: "0 2 * * *", duration: 10s }]')).toEqual([
      expect.stringMatching(/windows\[0\]\.duration: must be at least checkInterval/),
    ]);
    expect(w('[{ cron: "0 0 30 2 *" }]')).toEqual([
      expect.stringMatching(/windows\[0\]\.cron: "0 0 30 2 \*" never matches a date/),
    ]);
    expect(w('[{ cron: "0 2 * * *", length: 1h }]')).toEqual([
      expect.stringMatching(/windows\[0\]\.length: unknown key/),
    ]);
    expect(w('[{ duration: 1h }]')).toEqual([expect.stringMatching(/windows\[0\]\.cron: required/)]);
  });

  it('refuses unknown keys, a bad onMaxWait, maxWait below trustPropagation and a too short interval', () => {
    expect(issues(ca('{ windows: x }'))).toEqual([
      expect.stringMatching(/^issuers\[0\]\.ca\.rollover.*windows/),
    ]);
    expect(issues(ca('{ onMaxWait: skip }'))).toEqual([
      expect.stringMatching(/^issuers\[0\]\.ca\.rollover\.onMaxWait: .*"continue" or "hold"/),
    ]);
    expect(issues(ca('{ trustPropagation: 10m, maxWait: 1m }'))).toEqual([
      expect.stringMatching(/^issuers\[0\]\.ca\.rollover\.maxWait: must be at least trustPropagation/),
    ]);
    expect(issues(ca('{ checkInterval: 100ms }'))).toEqual([
      expect.stringMatching(/checkInterval: must be at least 1s/),
    ]);
    expect(issues(ca('{ enabled: "no" }'))).toEqual([
      expect.stringMatching(/rollover\.enabled: must be true or false/),
    ]);
    expect(issues(ca('{ reissue: { maxPerMinute: 0 } }'))).toEqual([
      expect.stringMatching(/reissue\.maxPerMinute: must be between 1 and 100000/),
    ]);
  });
});

describe('trustBundles', () => {
  const base = `issuers:
  - { name: c, ca: { secret: { namespace: n, name: s } } }
  - { name: self, selfSigned: {} }
`;
  const tb = (entry: string) => `${base}trustBundles: [${entry}]\n`;
  it('reads a ConfigMap per ca issuer, key ca.crt by default', () => {
    const config = loadConfig(tb('{ issuer: c, configMap: { name: c-trust }, namespaces: [a, b, a] }'));
    expect(config.trustBundles).toEqual([
      { issuer: 'c', configMap: { name: 'c-trust', key: 'ca.crt' }, namespaces: ['a', 'b'] },
    ]);
    expect(loadConfig(base).trustBundles).toEqual([]);
  });

  it('reads a namespace label selector, with or without a list', () => {
    const config = loadConfig(
      tb(`{ issuer: c, configMap: { name: t }, namespaceSelector: { matchLabels: { team: a }, matchExpressions: [
        { key: example.com/tier, operator: In, values: [web, api] }, { key: legacy, operator: DoesNotExist } ] } }`),
    );
    expect(config.trustBundles[0]).toEqual({
      issuer: 'c',
      configMap: { name: 't', key: 'ca.crt' },
      namespaces: [],
      namespaceSelector: {
        matchLabels: { team: 'a' },
        matchExpressions: [
          { key: 'example.com/tier', operator: 'In', values: ['web', 'api'] },
          { key: 'legacy', operator: 'DoesNotExist', values: [] },
        ],
      },
    });
    expect(
      labelSelectorQuery(
        config.trustBundles[0]?.namespaceSelector ?? { matchLabels: {}, matchExpressions: [] },
      ),
    ).toBe('team=a,example.com/tier in (web,api),!legacy');
    expect(
      loadConfig(tb('{ issuer: c, configMap: { name: t }, namespaces: [x], namespaceSelector: {} }'))
        .trustBundles[0],
    ).toMatchObject({ namespaces: ['x'], namespaceSelector: { matchLabels: {}, matchExpressions: [] } });
  });

  it('refuses a bad selector: operator, values, label syntax', () => {
    expect(
      issues(
        tb(`{ issuer: c, configMap: { name: t }, namespaceSelector: { matchLabels: { "-bad": x, ok: 1 },
          matchExpressions: [ { key: a, operator: Equals }, { key: b, operator: In },
          { key: c, operator: Exists, values: [x] }, { key: d, operator: NotIn, values: ["no way"] } ] } }`),
      ),
    ).toEqual([
      expect.stringMatching(/namespaceSelector\.matchLabels\.-bad: "-bad" is not a label key/),
      expect.stringMatching(/namespaceSelector\.matchLabels\.ok: must be a string/),
      expect.stringMatching(
        /matchExpressions\[0\]\.operator: "Equals" is not one of In, NotIn, Exists, DoesNotExist/,
      ),
      expect.stringMatching(/matchExpressions\[1\]\.values: required \(non-empty\) for In/),
      expect.stringMatching(/matchExpressions\[2\]\.values: must be empty for Exists/),
      expect.stringMatching(/matchExpressions\[3\]\.values\[0\]: "no way" is not a label value/),
    ]);
    expect(
      issues(tb('{ issuer: c, configMap: { name: t }, namespaceSelector: { matchLabel: {} } }')),
    ).toEqual([
      expect.stringMatching(/namespaceSelector\.matchLabel: unknown key; did you mean "matchLabels"/),
    ]);
  });

  it('reads a ClusterTrustBundle, unlinked or linked to a signer, with default names', () => {
    expect(loadConfig(tb('{ issuer: c, clusterTrustBundle: {} }')).trustBundles[0]).toEqual({
      issuer: 'c',
      namespaces: [],
      clusterTrustBundle: { name: 'cert-rotator.c' },
    });
    expect(
      loadConfig(tb('{ issuer: c, clusterTrustBundle: { signerName: example.com/mesh } }')).trustBundles[0],
    ).toMatchObject({ clusterTrustBundle: { name: 'example.com:mesh:c', signerName: 'example.com/mesh' } });
    expect(
      loadConfig(
        tb('{ issuer: c, clusterTrustBundle: { signerName: example.com/a/b, name: "example.com:a:b:v2" } }'),
      ).trustBundles[0],
    ).toMatchObject({ clusterTrustBundle: { name: 'example.com:a:b:v2', signerName: 'example.com/a/b' } });
  });

  it('refuses a ClusterTrustBundle name that does not follow the signer rule', () => {
    expect(
      issues(tb('{ issuer: c, clusterTrustBundle: { signerName: example.com/mesh, name: mesh-trust } }')),
    ).toEqual([
      expect.stringMatching(
        /clusterTrustBundle\.name: "mesh-trust" must start with "example\.com:mesh:" \(the signerName with "\/" replaced by ":", then ":"\)/,
      ),
    ]);
    expect(
      issues(
        tb('{ issuer: c, clusterTrustBundle: { signerName: example.com/mesh, name: "example.com:mesh:" } }'),
      ),
    ).toEqual([expect.stringMatching(/must start with "example\.com:mesh:".*and go on after it/)]);
    expect(issues(tb('{ issuer: c, clusterTrustBundle: { name: "example.com:mesh:x" } }'))).toEqual([
      expect.stringMatching(/clusterTrustBundle\.name: .*without signerName.*no ":"/),
    ]);
    expect(issues(tb('{ issuer: c, clusterTrustBundle: { signerName: mesh } }'))).toEqual([
      expect.stringMatching(/clusterTrustBundle\.signerName: "mesh" must look like "example.com\/serving"/),
    ]);
    expect(
      issues(
        `${base}trustBundles: [{ issuer: c, clusterTrustBundle: {} }, { issuer: c, clusterTrustBundle: { name: cert-rotator.c } }]\n`,
      ),
    ).toEqual([
      expect.stringMatching(
        /^trustBundles\[1\]\.clusterTrustBundle: ClusterTrustBundle cert-rotator\.c is also written by trustBundles\[0\]/,
      ),
    ]);
  });

  it('refuses a non-ca issuer, a bad key, a ConfigMap without namespaces and an entry with nothing to write', () => {
    expect(issues(tb('{ issuer: self, configMap: { name: t }, namespaces: [a] }'))).toEqual([
      expect.stringMatching(/^trustBundles\[0\]\.issuer: "self" is not a ca issuer/),
    ]);
    expect(issues(tb('{ issuer: c, configMap: { name: t, key: "a/b" }, namespaces: [a] }'))).toEqual([
      expect.stringMatching(/configMap\.key: "a\/b" is not a valid ConfigMap key/),
    ]);
    expect(issues(tb('{ issuer: c, configMap: { name: t } }'))).toEqual([
      expect.stringMatching(/^trustBundles\[0\]: configMap needs namespaces and\/or namespaceSelector/),
    ]);
    expect(issues(tb('{ issuer: c, namespaces: [a] }'))).toEqual([
      expect.stringMatching(/^trustBundles\[0\]\.configMap: required with namespaces or namespaceSelector/),
    ]);
    expect(issues(tb('{ issuer: c }'))).toEqual([
      expect.stringMatching(/^trustBundles\[0\]: nothing to write/),
    ]);
    expect(
      issues(`issuers: [{ name: c, ca: { secret: { namespace: n, name: s }, rollover: { enabled: false } } }]
trustBundles: [{ issuer: c, clusterTrustBundle: {} }]\n`),
    ).toEqual([
      expect.stringMatching(/^trustBundles\[0\]\.issuer: issuer "c" has ca.rollover.enabled: false/),
    ]);
  });
});
