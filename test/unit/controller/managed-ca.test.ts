import { createPrivateKey, X509Certificate } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/index.ts';
import { parseSecretPolicy } from '../../../src/controller/annotations.ts';
import { SecretController } from '../../../src/controller/controller.ts';
import { evaluate } from '../../../src/controller/evaluate.ts';
import { managedCa } from '../../../src/controller/managed-ca.ts';
import { recordFromSecret } from '../../../src/controller/record.ts';
import { SelfSignedIssuer } from '../../../src/issuers/self-signed.ts';
import type { Issuer } from '../../../src/issuers/types.ts';
import type { KubeClients } from '../../../src/kube/client.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import {
  certificatesFromPem,
  generateKey,
  issueCertificate,
  readCertificateSummary,
} from '../../../src/pki/index.ts';
import { FakeClock } from '../queue/fake-clock.ts';
import { DAY, decodedCert, FakeEvents, FakeSecretApi, MIN, NS, tls } from './fakes.ts';

const A = 'cert-rotator.io/';
const S = 'status.cert-rotator.io/';

const CONFIG = `namespaces: [${NS}]
defaults: { issuer: internal-ca }
issuers:
  - { name: root, selfSigned: {}, allowCA: true }
  - { name: plain, selfSigned: {} }
  - { name: internal-ca, ca: { secret: { namespace: ${NS}, name: root-ca }, rollover: { enabled: ROLLOVER } } }
`;

function setup(rollover = true) {
  const clock = new FakeClock(Date.UTC(2030, 0, 1));
  const config = loadConfig(CONFIG.replace('ROLLOVER', String(rollover)));
  const issuers = new Map<string, Issuer>([
    ['root', new SelfSignedIssuer('root', 90 * DAY, true)],
    ['plain', new SelfSignedIssuer('plain', 90 * DAY)],
  ]);
  const api = new FakeSecretApi();
  const events = new FakeEvents();
  const controller = new SecretController({
    config,
    clients: { config: { makeApiClient: () => ({}) } } as unknown as KubeClients,
    issuers,
    events,
    log: pino({ level: 'silent' }),
    metrics: new Metrics({ processMetrics: false }),
    clock,
    secrets: api,
    random: () => 0.5,
  });
  return { clock, config, api, events, controller };
}

async function rootCa(commonName: string, now: number, lifetimeMs: number) {
  const key = await generateKey('ecdsa-p256');
  const ca = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { commonName, dnsNames: [], ipAddresses: [], uris: [] },
    notBefore: now - 60 * DAY,
    notAfter: now + lifetimeMs,
    issuer: 'self',
    isCA: true,
  });
  return { certPem: ca.certPem, keyPem: key.privateKeyPem };
}

const CA_ANNOTATIONS = {
  [`${A}enabled`]: 'true',
  [`${A}issuer`]: 'root',
  [`${A}is-ca`]: 'true',
  [`${A}ca-path-length`]: '2',
  [`${A}renew-before`]: '10d',
};

const decoded = (s: k8s.V1Secret, key: string) => Buffer.from(s.data?.[key] ?? '', 'base64').toString();

describe('a CA Secret renewed by cert-rotator', () => {
  it('backing a ca issuer: the new CA goes to NAME-next and next-ca starts the rollover; tls.crt is untouched, and nothing more happens until the rollover is over', async () => {
    const t = setup();
    const now = t.clock.now();
    const old = await rootCa('Team root', now, 5 * DAY);
    t.controller.upsert(t.api.put(tls('root-ca', old, CA_ANNOTATIONS)));
    await t.controller.reconcile(`${NS}/root-ca`);

    const staged = t.api.get('root-ca-next');
    expect(t.api.created.map((s) => s.metadata?.name)).toEqual(['root-ca-next']);
    expect(staged.type).toBe('kubernetes.io/tls');
    expect(staged.metadata?.annotations).toEqual({ [`${S}staged-for`]: 'root-ca' });
    const next = readCertificateSummary(certificatesFromPem(decoded(staged, 'tls.crt'))[0]!);
    expect(next).toMatchObject({ isCA: true, keyCertSign: true, pathLen: 2, subjectCommonName: 'Team root' });
    expect(decoded(staged, 'tls.key')).not.toBe(old.keyPem);
    expect(
      new X509Certificate(decoded(staged, 'tls.crt')).checkPrivateKey(
        createPrivateKey(decoded(staged, 'tls.key')),
      ),
    ).toBe(true);

    const ca = t.api.get('root-ca');
    expect(decodedCert(ca)).toBe(old.certPem);
    expect(decoded(ca, 'tls.key')).toBe(old.keyPem);
    expect(ca.metadata?.annotations?.[`${A}next-ca`]).toBe('root-ca-next');
    expect(ca.metadata?.annotations?.[`${A}state`]).toBe('Issuing');
    expect(t.events.reasons()).toEqual(['Renewed']);
    expect(t.events.events[0]?.message).toContain('staged in Secret root-ca-next');
    expect(t.events.events[0]?.message).toContain('CA rollover of issuer "internal-ca"');

    // The watch shows the staged state: held, looked at again later, never renewed twice.
    t.controller.upsert(ca);
    expect(t.controller.nextLookAt(`${NS}/root-ca`)).toBeGreaterThan(now);
    await t.controller.reconcile(`${NS}/root-ca`);
    const during = t.api.put({
      ...t.api.get('root-ca'),
      metadata: {
        ...t.api.get('root-ca').metadata,
        annotations: { ...t.api.get('root-ca').metadata?.annotations, [`${S}ca-rollover-phase`]: 'Reissue' },
      },
    });
    t.controller.upsert(during);
    await t.controller.reconcile(`${NS}/root-ca`);
    // The status page says why it waits.
    const row = t.controller.statusView(() => undefined).find((r) => r.secret === 'root-ca');
    expect(row?.state).toBe('CARollover/Reissue');
    expect(row?.why).toContain(
      'its own renewal waits until the CA rollover is over (the CA rollover of issuer "internal-ca" is in Reissue)',
    );
    expect(t.api.created).toHaveLength(1);
    expect(t.api.replaced.map((s) => s.metadata?.name)).toEqual(['root-ca']);
  });

  it('after the rollover: records the CA now in tls.crt (Ready, not-after, renewal-time) and plans its next renewal from it', async () => {
    const t = setup();
    const now = t.clock.now();
    const current = await rootCa('Team root', now, 90 * DAY);
    t.controller.upsert(t.api.put(tls('root-ca', current, { ...CA_ANNOTATIONS, [`${A}state`]: 'Issuing' })));
    await t.controller.reconcile(`${NS}/root-ca`);
    const a = t.api.get('root-ca').metadata?.annotations ?? {};
    const notAfter = new X509Certificate(current.certPem).validToDate.getTime();
    expect(a[`${A}state`]).toBe('Ready');
    expect(Date.parse(a[`${A}not-after`] ?? '')).toBe(notAfter);
    expect(Date.parse(a[`${A}renewal-time`] ?? '')).toBe(notAfter - 10 * DAY);
    expect(a[`${A}revision`]).toBe('1');
    expect(decodedCert(t.api.get('root-ca'))).toBe(current.certPem);
    expect(t.events.events.map((e) => e.message)).toEqual([
      expect.stringMatching(/^the renewed CA is active: the CA rollover of issuer "internal-ca" is over/),
    ]);
    t.controller.upsert(t.api.get('root-ca'));
    expect(t.controller.nextLookAt(`${NS}/root-ca`)).toBe(notAfter - 10 * DAY);
    expect(t.api.created).toHaveLength(0);
  });

  it('never writes over a NAME-next it did not stage: a failed attempt that says so', async () => {
    const t = setup();
    const now = t.clock.now();
    const foreign = await rootCa('Someone else', now, 30 * DAY);
    t.api.put(tls('root-ca-next', foreign, {}));
    t.controller.upsert(t.api.put(tls('root-ca', await rootCa('Team root', now, DAY), CA_ANNOTATIONS)));
    await t.controller.reconcile(`${NS}/root-ca`);
    expect(decodedCert(t.api.get('root-ca-next'))).toBe(foreign.certPem);
    const a = t.api.get('root-ca').metadata?.annotations ?? {};
    expect(a[`${A}state`]).toBe('Failed');
    expect(a[`${A}last-error`]).toContain('was not staged by cert-rotator for root-ca');
    expect(a[`${A}next-ca`]).toBeUndefined();
    expect(t.events.reasons()).toEqual(['RenewalFailed']);
  });

  it('with the rollover off (or backing no issuer): renewed in place, still a CA with its path length', async () => {
    const t = setup(false);
    const now = t.clock.now();
    const old = await rootCa('Team root', now, DAY);
    t.controller.upsert(t.api.put(tls('root-ca', old, CA_ANNOTATIONS)));
    await t.controller.reconcile(`${NS}/root-ca`);
    const written = t.api.get('root-ca');
    expect(decodedCert(written)).not.toBe(old.certPem);
    expect(readCertificateSummary(certificatesFromPem(decodedCert(written))[0]!)).toMatchObject({
      isCA: true,
      pathLen: 2,
    });
    expect(t.api.created).toHaveLength(0);
    expect(written.metadata?.annotations?.[`${A}next-ca`]).toBeUndefined();
  });
});

describe('CA policy (pure)', () => {
  const config = loadConfig(CONFIG.replace('ROLLOVER', 'true'));
  const policyErrors = (annotations: Record<string, string>) => {
    const r = parseSecretPolicy({ [`${A}enabled`]: 'true', ...annotations }, config);
    return r.ok ? [] : r.errors.map((e) => `${e.annotation}: ${e.message}`);
  };

  it('is-ca and ca-path-length are checked', () => {
    expect(policyErrors({ [`${A}is-ca`]: 'yes' })).toEqual([`${A}is-ca: "yes" must be "true" or "false"`]);
    expect(policyErrors({ [`${A}ca-path-length`]: '1' })).toEqual([
      `${A}ca-path-length: only with ${A}is-ca: "true"`,
    ]);
    for (const bad of ['-1', '9', '1.5', 'one', '007']) {
      expect(policyErrors({ [`${A}is-ca`]: 'true', [`${A}ca-path-length`]: bad })).toEqual([
        `${A}ca-path-length: "${bad}" must be an integer from 0 to 8`,
      ]);
    }
    expect(policyErrors({ [`${A}is-ca`]: 'true', [`${A}rotate-key`]: 'false' })[0]).toContain(
      'a CA gets a new key at every renewal',
    );
    const ok = parseSecretPolicy({ [`${A}is-ca`]: 'true', [`${A}ca-path-length`]: '0' }, config);
    expect(ok.ok && ok.policy.ca).toEqual({ pathLength: 0 });
  });

  const evaluated = async (name: string, annotations: Record<string, string>) => {
    const now = Date.UTC(2030, 0, 1);
    const secret = tls(name, await rootCa('x', now, DAY), { [`${A}enabled`]: 'true', ...annotations });
    return evaluate(
      recordFromSecret({ ...secret, metadata: { ...secret.metadata, resourceVersion: '1' } }),
      config,
      now,
    );
  };

  it('refuses a CA from an issuer without allowCA, from the issuer it backs, and a CA Secret opted in without is-ca', async () => {
    expect(await evaluated('some-ca', { [`${A}issuer`]: 'plain', [`${A}is-ca`]: 'true' })).toMatchObject({
      kind: 'not-allowed',
      reason: expect.stringContaining('issuer "plain" does not issue CA certificates: set allowCA: true'),
    });
    const self = loadConfig(
      `namespaces: [${NS}]\nissuers:\n  - { name: internal-ca, allowCA: true, ca: { secret: { namespace: ${NS}, name: root-ca } } }\n`,
    );
    const now = Date.UTC(2030, 0, 1);
    const own = tls('root-ca', await rootCa('x', now, DAY), {
      [`${A}enabled`]: 'true',
      [`${A}issuer`]: 'internal-ca',
      [`${A}is-ca`]: 'true',
    });
    expect(evaluate(recordFromSecret(own), self, now)).toMatchObject({
      kind: 'not-allowed',
      reason: expect.stringContaining('cannot issue its successor'),
    });
    expect(await evaluated('root-ca', { [`${A}issuer`]: 'root' })).toMatchObject({
      kind: 'invalid',
      errors: [
        { annotation: `${A}is-ca`, message: expect.stringContaining('is the CA of issuer "internal-ca"') },
      ],
    });
  });

  it('where a renewal goes: staged, held while a rollover runs, recorded after, in place when no issuer rolls it', () => {
    expect(managedCa(config, NS, 'root-ca', {})).toEqual({
      kind: 'stage',
      issuer: 'internal-ca',
      stagedName: 'root-ca-next',
    });
    expect(managedCa(config, NS, 'root-ca', { [`${A}next-ca`]: 'by-hand' })).toMatchObject({
      kind: 'held',
      why: expect.stringContaining('staged in Secret by-hand'),
    });
    expect(managedCa(config, NS, 'root-ca', { [`${S}ca-rollover-phase`]: 'Trust' })).toMatchObject({
      kind: 'held',
      why: 'the CA rollover of issuer "internal-ca" is in Trust',
    });
    expect(managedCa(config, NS, 'root-ca', { [`${A}state`]: 'Issuing' })).toEqual({
      kind: 'landed',
      issuer: 'internal-ca',
    });
    expect(managedCa(config, NS, 'other-ca', {})).toEqual({ kind: 'in-place' });
    expect(managedCa(config, 'elsewhere', 'root-ca', {})).toEqual({ kind: 'in-place' });
  });
});

describe('allowCA in the config', () => {
  const issuesOf = (yaml: string) => {
    try {
      loadConfig(yaml);
      return [];
    } catch (err) {
      return err instanceof ConfigError ? err.issues.map((i) => `${i.path}: ${i.message}`) : [String(err)];
    }
  };
  it('only selfSigned and ca issuers, only true or false', () => {
    expect(
      issuesOf(
        'issuers:\n  - { name: csr, allowCA: true, kubernetesCSR: { signerName: example.com/x } }\n  - { name: s, selfSigned: {}, allowCA: "yes" }\n',
      ),
    ).toEqual([
      'issuers[0].allowCA: a kubernetesCSR issuer cannot issue CA certificates; only selfSigned (a root) and ca (an intermediate) issuers can',
      'issuers[1].allowCA: must be true or false, got the string "yes"',
    ]);
    const ok = loadConfig(
      'issuers:\n  - { name: s, selfSigned: {}, allowCA: true }\n  - { name: t, selfSigned: {} }\n',
    );
    expect(ok.issuers.map((i) => i.allowCA)).toEqual([true, undefined]);
  });
});

describe('the issuers refuse a CA they may not issue (defense in depth)', () => {
  it('selfSigned without allowCA', async () => {
    const key = await generateKey('ecdsa-p256');
    await expect(
      new SelfSignedIssuer('plain').issue({
        namespace: NS,
        secretName: 'x',
        identity: { commonName: 'x', dnsNames: [], ipAddresses: [], uris: [] },
        keyPem: key.privateKeyPem,
        now: Date.now(),
        ca: {},
      }),
    ).rejects.toThrow('issuer "plain" does not issue CA certificates');
  });
  it('a leaf is still a leaf', async () => {
    const key = await generateKey('ecdsa-p256');
    const r = await new SelfSignedIssuer('root', MIN * 120, true).issue({
      namespace: NS,
      secretName: 'x',
      identity: { dnsNames: ['x.example.com'], ipAddresses: [], uris: [] },
      keyPem: key.privateKeyPem,
      now: Date.now(),
    });
    expect(new X509Certificate(r.chainPem).ca).toBe(false);
  });
});
