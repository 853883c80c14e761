import { X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acmeCertId, certificatesFromPem } from '../../src/pki/index.ts';
import { makeCA } from '../testenv/certs.ts';
import {
  type ControllerProcess,
  killAllControllers,
  metricValue,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { httpsGet, waitFor } from '../testenv/net.ts';
import { type Pebble, pebbleLog, startPebble } from '../testenv/pebble.ts';
import {
  decoded,
  makeLeaf,
  tlsSecret,
  waitForRevision as waitForSecretRevision,
} from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const A = 'cert-rotator.io/';
const DAY = 86_400_000;

let core: k8s.CoreV1Api;
let pebble: Pebble;
let configPath: string;
let controller: ControllerProcess;

const waitForRevision = (name: string, revision: string) => waitForSecretRevision(core, ns(), name, revision);

/** Pebble's management API: override the ARI answer for one certificate. */
async function setRenewalInfo(certPem: string, window: { start: Date; end: Date }): Promise<void> {
  const body = JSON.stringify({
    Certificate: certPem,
    ARIResponse: JSON.stringify({
      suggestedWindow: { start: window.start.toISOString(), end: window.end.toISOString() },
    }),
  });
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(
      `${pebble.managementUrl}/set-renewal-info/`,
      {
        method: 'POST',
        ca: pebble.tlsCaPem,
        headers: { 'content-type': 'application/json', 'user-agent': 'cert-rotator-test' },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => {
          if (res.statusCode !== 200) console.log('set-renewal-info', res.statusCode, text);
          resolve(res.statusCode ?? 0);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
  expect(status).toBe(200);
}

beforeAll(async () => {
  const env = testEnv();
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-acme-ari-'));
  pebble = await startPebble(
    { pebble: env.bins.pebble, challtestsrv: env.bins.challtestsrv },
    await makeCA('cert-rotator-test-pebble-ari'),
    join(dir, 'pebble'),
    // One profile: Pebble picks a random one for orders that name none.
    { profiles: { default: { description: '90 days', validityPeriod: 90 * 86_400 } } },
  );
  configPath = await writeConfig(dir, {
    namespaces: [ns()],
    leaderElection: { namespace: ns(), leaseDuration: '3s', renewDeadline: '2s', retryPeriod: '500ms' },
    issuers: [
      {
        name: 'pebble',
        acme: {
          server: pebble.directoryUrl,
          caBundle: pebble.tlsCaPem,
          accountKeySecret: { namespace: ns(), name: 'pebble-account' },
          solvers: [{ http01: { address: `127.0.0.1:${pebble.httpPort}` } }],
        },
      },
    ],
  });
  controller = startControllerProcess({ configPath, kubeconfigPath: env.kubeconfigPath });
});

afterAll(async () => {
  await killAllControllers();
  await pebble?.stop();
});

describe('ACME Renewal Information (RFC 9773) against Pebble 2.10 (real)', () => {
  let firstPem = '';

  it('plans the renewal inside the window Pebble suggests, not at renew-before', async () => {
    const old = await makeLeaf({ dnsNames: ['ari.example.test'], fromMs: -DAY, toMs: 60_000 });
    // renew-before 10d would renew 80 days into Pebble's 90-day certificate; its window is ~day 60.
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('ari-web', old, { [`${A}enabled`]: 'true', [`${A}renew-before`]: '10d' }),
    });
    const s = await waitForRevision('ari-web', '1');
    firstPem = decoded(s, 'tls.crt');
    const leaf = new X509Certificate(firstPem);
    const notAfter = Date.parse(leaf.validTo);

    // The window, asked from Pebble with the certID (Pebble rejects a malformed or unknown one).
    const der = certificatesFromPem(firstPem)[0];
    if (!der) throw new Error('no leaf');
    const certId = acmeCertId(der);
    const dir = JSON.parse((await httpsGet(pebble.directoryUrl, { ca: pebble.tlsCaPem })).body) as {
      renewalInfo: string;
    };
    const info = await httpsGet(`${dir.renewalInfo}/${certId}`, { ca: pebble.tlsCaPem });
    expect(info.status).toBe(200);
    const window = JSON.parse(info.body).suggestedWindow as { start: string; end: string };
    const start = Date.parse(window.start);
    const end = Date.parse(window.end);
    expect(end - start).toBeGreaterThan(DAY);
    // renew-before alone would plan after the window: the window must win.
    expect(end).toBeLessThan(notAfter - 10 * DAY);

    const metrics = await controller.metricsUrl();
    const planned = await waitFor('the ARI-planned renewal time', async () => {
      const v = await metricValue(metrics, 'cert_rotator_certificate_renewal_timestamp_seconds', {
        secret: 'ari-web',
      });
      // Until the answer arrives the plan is renew-before's: notAfter - 10d.
      return v !== undefined && Math.abs(v * 1000 - (notAfter - 10 * DAY)) > 1000 ? v * 1000 : undefined;
    });
    expect(planned).toBeGreaterThanOrEqual(start);
    expect(planned).toBeLessThan(end);
    // Stable: the same point on every evaluation (seeded by the certificate).
    await new Promise((r) => setTimeout(r, 500));
    const again = await metricValue(metrics, 'cert_rotator_certificate_renewal_timestamp_seconds', {
      secret: 'ari-web',
    });
    expect((again ?? 0) * 1000).toBe(planned);
    expect(await pebbleLog(pebble)).not.toContain('is a replacement of');
    // Pebble's Retry-After (6h) is honoured: no re-polling loop, whatever the watch does.
    const lookups = async () =>
      (await pebbleLog(pebble))
        .split('\n')
        .filter((l) => l.includes('GET /draft-ietf-acme-ari-03/renewalInfo/')).length;
    const before = await lookups();
    const sec = await core.readNamespacedSecret({ namespace: ns(), name: 'ari-web' });
    sec.metadata = { ...sec.metadata, labels: { poked: 'yes' } };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'ari-web', body: sec });
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await lookups()).toBe(before);
  });

  it('a window that has begun renews at once, and the new order names the old certificate in replaces', async () => {
    const now = Date.now();
    await setRenewalInfo(firstPem, { start: new Date(now - 120_000), end: new Date(now - 60_000) });
    // The answer was cached with Pebble's Retry-After (6h): a restarted controller asks again.
    await controller.stop();
    controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
    const s = await waitForRevision('ari-web', '2');
    expect(decoded(s, 'tls.crt')).not.toBe(firstPem);
    const log = await pebbleLog(pebble);
    expect(log).toMatch(/ARI: order "[^"]+" is a replacement of "[^"]+"/);
  });
});
