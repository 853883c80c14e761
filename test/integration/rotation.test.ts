import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificatesFromPem, keyMatchesCertificate, readCertificateSummary } from '../../src/pki/index.ts';
import {
  allControllerOutput,
  type ControllerProcess,
  killAllControllers,
  metricValue,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import {
  decoded,
  eventsFor,
  makeLeaf,
  makeTestCA,
  type Pair,
  tlsSecret,
  waitForRevision as waitForSecretRevision,
} from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const A = 'cert-rotator.io/';

let core: k8s.CoreV1Api;
let ca: Pair;
let controller: ControllerProcess;
let metricsUrl: string;

async function read(name: string): Promise<k8s.V1Secret> {
  return await core.readNamespacedSecret({ namespace: ns(), name });
}

async function create(secret: k8s.V1Secret): Promise<k8s.V1Secret> {
  return await core.createNamespacedSecret({ namespace: ns(), body: secret });
}

const waitForRevision = (name: string, revision = '1', timeoutMs = 30_000) =>
  waitForSecretRevision(core, ns(), name, revision, timeoutMs);

async function waitForEvent(name: string, reason: string): Promise<k8s.CoreV1Event> {
  return await waitFor(`a ${reason} event on ${name}`, async () =>
    (await eventsFor(core, ns(), name)).find((e) => e.reason === reason),
  );
}

function leafOf(secret: k8s.V1Secret): ReturnType<typeof readCertificateSummary> {
  const der = certificatesFromPem(decoded(secret, 'tls.crt'))[0];
  if (!der) throw new Error('no certificate');
  return readCertificateSummary(der);
}

beforeAll(async () => {
  const env = testEnv();
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  ca = await makeTestCA();
  await create(tlsSecret('internal-ca', ca));
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-rotation-'));
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    defaults: { issuer: 'internal-ca' },
    issuers: [
      { name: 'internal-ca', ca: { secret: { namespace: ns(), name: 'internal-ca' } } },
      { name: 'self', selfSigned: {} },
      { name: 'elsewhere-only', selfSigned: {}, allowedNamespaces: ['other-*'] },
      { name: 'example-only', selfSigned: {}, allowedDomains: ['*.example.com'] },
    ],
  });
  controller = startControllerProcess({ configPath, kubeconfigPath: env.kubeconfigPath });
  metricsUrl = await controller.metricsUrl();
  await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
});

afterAll(async () => {
  await killAllControllers();
});

describe('rotation against the real API server', () => {
  it('renews a certificate that expires in minutes: CA-signed, key matches, names kept, status and event written', async () => {
    const old = await makeLeaf({
      dnsNames: ['app.example.com', 'www.example.com'],
      fromMs: -10 * MIN,
      toMs: 2 * MIN,
    });
    await create(tlsSecret('expiring', old, { [`${A}enabled`]: 'true' }));
    const renewed = await waitForRevision('expiring');

    const leaf = leafOf(renewed);
    expect(leaf.dnsNames).toEqual(['app.example.com', 'www.example.com']);
    expect(leaf.notAfter - Date.now()).toBeGreaterThan(89 * DAY);
    expect(
      keyMatchesCertificate(
        decoded(renewed, 'tls.key'),
        certificatesFromPem(decoded(renewed, 'tls.crt'))[0] as Uint8Array,
      ),
    ).toBe(true);
    expect(decoded(renewed, 'tls.key')).not.toBe(old.keyPem); // rotate-key defaults to true
    // Signed by the CA from the issuer's Secret, which is also written to ca.crt.
    const x = new X509Certificate(decoded(renewed, 'tls.crt'));
    expect(x.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(decoded(renewed, 'ca.crt')).toBe(new X509Certificate(ca.certPem).toString());
    const ann = renewed.metadata?.annotations ?? {};
    expect(ann[`${A}state`]).toBe('Ready');
    expect(Date.parse(ann[`${A}not-after`] ?? '')).toBe(Math.floor(leaf.notAfter / 1000) * 1000);
    const event = await waitForEvent('expiring', 'Renewed');
    expect(event.type).toBe('Normal');
    expect(event.message).toContain('internal-ca');
  });

  it('honours renew-before as a duration, a percentage and the one-third default', async () => {
    // Each certificate: 10 h lifetime, 4 h left. Due iff renew-before > 4 h.
    const cases = [
      { name: 'rb-duration-due', rb: '5h', due: true },
      { name: 'rb-duration-wait', rb: '3h', due: false },
      { name: 'rb-percent-due', rb: '50%', due: true },
      { name: 'rb-percent-wait', rb: '30%', due: false },
      { name: 'rb-default-wait', rb: undefined, due: false }, // one third of 10 h = 3h20m < 4 h
    ];
    const created = new Map<string, Pair>();
    for (const c of cases) {
      const pair = await makeLeaf({ dnsNames: [`${c.name}.example.com`], fromMs: -6 * HOUR, toMs: 4 * HOUR });
      created.set(c.name, pair);
      await create(
        tlsSecret(c.name, pair, { [`${A}enabled`]: 'true', ...(c.rb ? { [`${A}renew-before`]: c.rb } : {}) }),
      );
    }
    for (const c of cases.filter((x) => x.due)) await waitForRevision(c.name);
    for (const c of cases.filter((x) => !x.due)) {
      // The planned renewal time is exported: notAfter − renewBefore.
      const pair = created.get(c.name) as Pair;
      const notAfter = new X509Certificate(pair.certPem).validToDate.getTime() / 1000;
      const expected = {
        'rb-duration-wait': notAfter - 3 * 3600,
        'rb-percent-wait': notAfter - 0.3 * 36_000,
        'rb-default-wait': notAfter - 36_000 / 3,
      }[c.name] as number;
      const planned = await waitFor(`the renewal-time metric of ${c.name}`, () =>
        metricValue(metricsUrl, 'cert_rotator_certificate_renewal_timestamp_seconds', { secret: c.name }),
      );
      expect(Math.abs(planned - expected)).toBeLessThan(2);
      const s = await read(c.name);
      expect(decoded(s, 'tls.crt')).toBe(pair.certPem);
      expect(s.metadata?.annotations?.[`${A}revision`]).toBeUndefined();
    }
  });

  it('never writes a Secret that is not opted in, even with an expired certificate, and still exports it', async () => {
    const pair = await makeLeaf({ dnsNames: ['expired.example.com'], fromMs: -2 * DAY, toMs: -DAY });
    const created = await create(tlsSecret('monitored-only', pair, { [`${A}enabled`]: 'false' }));
    const opaque = await create(tlsSecret('opaque-optin', pair, { [`${A}enabled`]: 'true' }, 'Opaque'));
    const ready = await waitFor('the monitored Secret in the metrics', () =>
      metricValue(metricsUrl, 'cert_rotator_certificate_ready', {
        secret: 'monitored-only',
        managed: 'false',
      }),
    );
    expect(ready).toBe(0);
    // Let a managed renewal go through after it, so the controller has certainly seen both.
    const probe = await makeLeaf({ dnsNames: ['probe.example.com'], fromMs: -2 * DAY, toMs: -DAY });
    await create(tlsSecret('after-monitored', probe, { [`${A}enabled`]: 'true' }));
    await waitForRevision('after-monitored');
    expect((await read('monitored-only')).metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
    expect((await read('opaque-optin')).metadata?.resourceVersion).toBe(opaque.metadata?.resourceVersion);
    expect(
      await metricValue(metricsUrl, 'cert_rotator_certificate_ready', { secret: 'opaque-optin' }),
    ).toBeUndefined();
  });

  it('exports certificate_ready as of the scrape: it turns 0 when the certificate expires, with no other change', async () => {
    const pair = await makeLeaf({ dnsNames: ['short.example.com'], fromMs: -MIN, toMs: 4_000 });
    await create(tlsSecret('expires-soon', pair, {}));
    const labels = { secret: 'expires-soon', managed: 'false' };
    expect(
      await waitFor('ready=1', async () =>
        (await metricValue(metricsUrl, 'cert_rotator_certificate_ready', labels)) === 1 ? 1 : undefined,
      ),
    ).toBe(1);
    await waitFor(
      'ready=0 after notAfter',
      async () =>
        (await metricValue(metricsUrl, 'cert_rotator_certificate_ready', labels)) === 0 ? true : undefined,
      { timeoutMs: 15_000, intervalMs: 250 },
    );
    const notAfter = await metricValue(
      metricsUrl,
      'cert_rotator_certificate_not_after_timestamp_seconds',
      labels,
    );
    expect(notAfter).toBe(Math.floor(new X509Certificate(pair.certPem).validToDate.getTime() / 1000));
  });

  it('waits for the maintenance window, but rotates at once when too little lifetime remains', async () => {
    // A window on 1 January only: not open now (unless the suite runs on 1 January).
    const window = {
      [`${A}window`]: '0 3 1 1 *',
      [`${A}window-duration`]: '1h',
      [`${A}window-timezone`]: 'UTC',
    };
    const today = new Date();
    if (today.getUTCMonth() === 0 && today.getUTCDate() === 1) return;
    // 30 days lifetime, 5 days left: due (one third), emergency point is 24 h before notAfter.
    const waiting = await makeLeaf({
      dnsNames: ['window-wait.example.com'],
      fromMs: -25 * DAY,
      toMs: 5 * DAY,
    });
    // 30 days lifetime, 20 h left: past the emergency point.
    const urgent = await makeLeaf({
      dnsNames: ['window-urgent.example.com'],
      fromMs: -29 * DAY,
      toMs: 20 * HOUR,
    });
    const open = await makeLeaf({ dnsNames: ['window-open.example.com'], fromMs: -25 * DAY, toMs: 5 * DAY });
    const w = await create(tlsSecret('window-wait', waiting, { [`${A}enabled`]: 'true', ...window }));
    await create(tlsSecret('window-urgent', urgent, { [`${A}enabled`]: 'true', ...window }));
    await create(
      tlsSecret('window-open', open, {
        [`${A}enabled`]: 'true',
        [`${A}window`]: '* * * * *',
        [`${A}window-duration`]: '1h',
      }),
    );
    await waitForRevision('window-urgent');
    await waitForRevision('window-open');
    expect((await read('window-wait')).metadata?.resourceVersion).toBe(w.metadata?.resourceVersion);
    const planned = await metricValue(metricsUrl, 'cert_rotator_certificate_renewal_timestamp_seconds', {
      secret: 'window-wait',
    });
    expect(planned).toBeLessThan(Date.now() / 1000); // due, yet held back by the window
  });

  it('renews an opted-in Secret whose tls.crt is malformed when annotations name the identity', async () => {
    await create({
      metadata: {
        name: 'garbage-named',
        annotations: { [`${A}enabled`]: 'true', [`${A}dns-names`]: 'fixed.example.com' },
      },
      type: 'kubernetes.io/tls',
      data: {
        'tls.crt': Buffer.from('-----BEGIN CERTIFICATE-----\nnot base64!\n').toString('base64'),
        'tls.key': '',
      },
    });
    const s = await waitForRevision('garbage-named');
    expect(leafOf(s).dnsNames).toEqual(['fixed.example.com']);
  });
});

describe('bad input ends in an event and no certificate written', () => {
  async function expectUntouched(
    name: string,
    before: k8s.V1Secret,
    allowStatusWrite: boolean,
  ): Promise<void> {
    const now = await read(name);
    expect(now.data).toEqual(before.data);
    if (!allowStatusWrite) expect(now.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
  }

  it('malformed PEM with no identity to issue for: RenewalFailed, data untouched, Failed status', async () => {
    const before = await create({
      metadata: { name: 'garbage', annotations: { [`${A}enabled`]: 'true' } },
      type: 'kubernetes.io/tls',
      data: {
        'tls.crt': Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n').toString(
          'base64',
        ),
        'tls.key': '',
      },
    });
    const event = await waitForEvent('garbage', 'RenewalFailed');
    expect(event.type).toBe('Warning');
    expect(event.message).toMatch(/nothing to issue for/);
    const after = await waitFor('the Failed state', async () => {
      const s = await read('garbage');
      return s.metadata?.annotations?.[`${A}state`] === 'Failed' ? s : undefined;
    });
    expect(after.metadata?.annotations?.[`${A}failures`]).toBe('1');
    await expectUntouched('garbage', before, true);
  });

  it('a certificate readable but not acceptable to act on: RenewalFailed naming the part, or renewed for the annotated names only', async () => {
    // pyca/cryptography's malformed-san.pem: an otherName without its [0] wrapper (OpenSSL then
    // reads no SAN at all). Expired in 2017, so its planned renewal time is now.
    const certPem = readFileSync(new URL('../unit/pki/corpus/malformed-san.pem', import.meta.url), 'utf8');
    const before = await create(
      tlsSecret('unacceptable', { certPem, keyPem: '' }, { [`${A}enabled`]: 'true' }),
    );
    const event = await waitForEvent('unacceptable', 'RenewalFailed');
    expect(event.type).toBe('Warning');
    expect(event.message).toContain(
      'tls.crt is readable but not acceptable to act on (subjectAltName: expected otherName [0] value)',
    );
    await waitFor('the Failed state', async () =>
      (await read('unacceptable')).metadata?.annotations?.[`${A}state`] === 'Failed' ? true : undefined,
    );
    await expectUntouched('unacceptable', before, true);

    await create(
      tlsSecret(
        'unacceptable-named',
        { certPem, keyPem: '' },
        { [`${A}enabled`]: 'true', [`${A}dns-names`]: 'named.example.com' },
      ),
    );
    const renewed = await waitForRevision('unacceptable-named');
    expect(leafOf(renewed)).toMatchObject({ dnsNames: ['named.example.com'], problems: [] });
  });

  it('key/cert mismatch with rotate-key "false": RenewalFailed and the pair left as it was', async () => {
    const a = await makeLeaf({ dnsNames: ['mismatch.example.com'], fromMs: -DAY, toMs: MIN });
    const b = await makeLeaf({ dnsNames: ['other.example.com'], fromMs: -DAY, toMs: DAY });
    const before = await create(
      tlsSecret(
        'mismatch',
        { certPem: a.certPem, keyPem: b.keyPem },
        { [`${A}enabled`]: 'true', [`${A}rotate-key`]: 'false' },
      ),
    );
    const event = await waitForEvent('mismatch', 'RenewalFailed');
    expect(event.message).toMatch(/tls\.key does not match tls\.crt/);
    await expectUntouched('mismatch', before, true);
  });

  it('bad annotations: InvalidAnnotation naming each one, Secret not written at all', async () => {
    const pair = await makeLeaf({ dnsNames: ['bad.example.com'], fromMs: -DAY, toMs: MIN });
    const before = await create(
      tlsSecret('bad-annotations', pair, {
        [`${A}enabled`]: 'true',
        [`${A}renew-before`]: 'soon',
        [`${A}key-algorithm`]: 'dsa-1024',
      }),
    );
    const event = await waitForEvent('bad-annotations', 'InvalidAnnotation');
    expect(event.type).toBe('Warning');
    expect(event.message).toContain('cert-rotator.io/renew-before');
    expect(event.message).toContain('cert-rotator.io/key-algorithm');
    await expectUntouched('bad-annotations', before, false);
    expect(
      await metricValue(metricsUrl, 'cert_rotator_secret_errors_total', { reason: 'InvalidAnnotation' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('unknown issuer: InvalidAnnotation, not written', async () => {
    const pair = await makeLeaf({ dnsNames: ['unknown.example.com'], fromMs: -DAY, toMs: MIN });
    const before = await create(
      tlsSecret('unknown-issuer', pair, { [`${A}enabled`]: 'true', [`${A}issuer`]: 'nope' }),
    );
    const event = await waitForEvent('unknown-issuer', 'InvalidAnnotation');
    expect(event.message).toContain('nope');
    await expectUntouched('unknown-issuer', before, false);
  });

  it('issuer not allowed in this namespace or for these names: IssuerNotAllowed, not written', async () => {
    const pair = await makeLeaf({ dnsNames: ['ns.example.org'], fromMs: -DAY, toMs: MIN });
    const nsBefore = await create(
      tlsSecret('wrong-namespace', pair, { [`${A}enabled`]: 'true', [`${A}issuer`]: 'elsewhere-only' }),
    );
    const domBefore = await create(
      tlsSecret('wrong-domain', pair, { [`${A}enabled`]: 'true', [`${A}issuer`]: 'example-only' }),
    );
    expect((await waitForEvent('wrong-namespace', 'IssuerNotAllowed')).message).toContain(ns());
    expect((await waitForEvent('wrong-domain', 'IssuerNotAllowed')).message).toContain('ns.example.org');
    await expectUntouched('wrong-namespace', nsBefore, false);
    await expectUntouched('wrong-domain', domBefore, false);
  });

  it('a CA Secret whose key does not match its certificate: RenewalFailed naming the CA, nothing issued', async () => {
    const other = await makeTestCA('impostor');
    await create(tlsSecret('broken-ca', { certPem: ca.certPem, keyPem: other.keyPem }));
    // A second controller run with a config whose CA issuer points at the broken Secret.
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-badca-'));
    const configPath = await writeConfig(dir, {
      namespaces: [ns()],
      issuers: [{ name: 'broken', ca: { secret: { namespace: ns(), name: 'broken-ca' } } }],
      defaults: { issuer: 'broken' },
    });
    // The suite's controller would renew the Secret below with its own 'self' issuer: stop it first.
    expect(await controller.stop()).toBe(0);
    const pair = await makeLeaf({ dnsNames: ['badca.example.com'], fromMs: -DAY, toMs: MIN });
    const before = await create(
      tlsSecret('uses-broken-ca', pair, { [`${A}enabled`]: 'true', [`${A}issuer`]: 'self' }),
    );
    const second = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
    try {
      // 'self' is not in this config: InvalidAnnotation; switch the Secret to the broken CA.
      await waitForEvent('uses-broken-ca', 'InvalidAnnotation');
      const s = await read('uses-broken-ca');
      s.metadata = { ...s.metadata, annotations: { ...s.metadata?.annotations, [`${A}issuer`]: 'broken' } };
      const updated = await core.replaceNamespacedSecret({
        namespace: ns(),
        name: 'uses-broken-ca',
        body: s,
      });
      const event = await waitFor('RenewalFailed naming the CA Secret', async () =>
        (await eventsFor(core, ns(), 'uses-broken-ca')).find(
          (e) => e.reason === 'RenewalFailed' && e.message?.includes(`${ns()}/broken-ca`),
        ),
      );
      expect(event.message).toMatch(/tls\.key does not match tls\.crt/);
      expect((await read('uses-broken-ca')).data).toEqual(updated.data);
      expect(before.data).toEqual(updated.data);
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});

describe('logs', () => {
  it('never contain key material: no PEM private key, no base64 of one, no piece of any tls.key', async () => {
    const text = allControllerOutput();
    expect(text).toContain('certificate renewed'); // the scan covers real renewals at debug level
    expect(text).not.toMatch(/PRIVATE KEY/);
    expect(text).not.toContain('LS0tLS1CRUdJTi'); // base64 of "-----BEGIN"
    const secrets = await core.listNamespacedSecret({ namespace: ns() });
    let keys = 0;
    for (const s of secrets.items) {
      const key = decoded(s, 'tls.key');
      const body = key.split('\n').filter((l) => l && !l.startsWith('-----'));
      for (const line of body) {
        if (line.length >= 32) {
          expect(text).not.toContain(line);
          keys++;
        }
      }
      const raw = s.data?.['tls.key'];
      if (raw) expect(text).not.toContain(raw.slice(0, 40));
    }
    expect(keys).toBeGreaterThan(10);
  });
});
