/**
 * The status page as a person sees it: a real controller watches real Secrets in several states
 * (expired, fine, planned, renewed, failing in backoff, waiting for a CSR approval, waiting for a
 * maintenance window, bad annotations, a hostile subject CN) and headless Chromium loads `/` from
 * its metrics port. The assertions read the DOM Chromium built; a screenshot is saved (into
 * docs/status-page.png with CERT_ROTATOR_UPDATE_SCREENSHOT=1). The same run checks the operator
 * metrics on /metrics: leader, work queues, API requests by verb and code.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metric } from '../../src/names.ts';
import { generateKey, issueCertificate } from '../../src/pki/index.ts';
import { type Browser, type BrowserPage, launchChromium } from '../testenv/chromium.ts';
import {
  type ControllerProcess,
  killAllControllers,
  metricValue,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { makeLeaf, makeTestCA, tlsSecret } from '../testenv/tls-fixtures.ts';

const A = 'cert-rotator.io/';
const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const HOSTILE_CN = '<script>__pwned=1</script><img src=x onerror=__pwned=2>';
const HOSTILE_ANNOTATION = '<b onmouseover="window.__pwned=3">33 days</b>';

const ns = useNamespace(import.meta.url);
let core: k8s.CoreV1Api;
let controller: ControllerProcess;
let metricsUrl = '';
let pageUrl = '';
let browser: Browser;
let page: BrowserPage;
let dir = '';

interface Row {
  secret: string;
  subject: string;
  issuer: string;
  why: string;
  state: string;
  lastEvent: string;
  className: string;
}

async function createLeafSecret(
  name: string,
  fromMs: number,
  toMs: number,
  annotations: Record<string, string> = {},
  opts: { commonName?: string; mismatchedKey?: boolean } = {},
): Promise<void> {
  let pair: { certPem: string; keyPem: string };
  if (opts.commonName !== undefined) {
    const key = await generateKey('ecdsa-p256');
    const now = Date.now();
    const issued = await issueCertificate({
      subjectKeyPem: key.privateKeyPem,
      identity: { commonName: opts.commonName, dnsNames: [`${name}.example.com`], ipAddresses: [], uris: [] },
      notBefore: now + fromMs,
      notAfter: now + toMs,
      issuer: 'self',
    });
    pair = { certPem: issued.certPem, keyPem: key.privateKeyPem };
  } else {
    pair = await makeLeaf({ dnsNames: [`${name}.example.com`], fromMs, toMs });
  }
  if (opts.mismatchedKey)
    pair.keyPem = (await makeLeaf({ dnsNames: ['x.example.com'], fromMs: -DAY, toMs: DAY })).keyPem;
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret(name, pair, annotations) });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cert-rotator-status-page-'));
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const ca = await makeTestCA('cert-rotator status page CA');
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
  // A window that opens 12 hours from now, so a due certificate waits for it.
  const windowHour = (new Date().getUTCHours() + 12) % 24;
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    defaults: { issuer: 'internal-ca' },
    renewalBackoff: { base: '1h', cap: '2h' },
    issuers: [
      { name: 'internal-ca', ca: { secret: { namespace: ns(), name: 'internal-ca' } } },
      {
        // No signer exists for this name, and nobody approves: the renewal waits for a person.
        name: 'nobody',
        kubernetesCSR: { signerName: 'example.com/nobody-signs', approvalHold: '2s', approvalTimeout: '10m' },
      },
    ],
  });
  await createLeafSecret('expired', -30 * DAY, -DAY);
  await createLeafSecret('fine', -30 * DAY, 60 * DAY);
  await createLeafSecret('hostile', -DAY, 20 * DAY, {}, { commonName: HOSTILE_CN });
  await createLeafSecret('planned', -25 * DAY, 5 * DAY, {
    [`${A}enabled`]: 'true',
    [`${A}renew-before`]: '2d',
  });
  await createLeafSecret('renewed', -10 * MIN, 2 * MIN, { [`${A}enabled`]: 'true' });
  await createLeafSecret(
    'failing',
    -27 * DAY,
    3 * DAY,
    { [`${A}enabled`]: 'true', [`${A}rotate-key`]: 'false' },
    { mismatchedKey: true },
  );
  await createLeafSecret('pending-csr', -27 * DAY, 3 * DAY, {
    [`${A}enabled`]: 'true',
    [`${A}issuer`]: 'nobody',
  });
  await createLeafSecret('windowed', -22 * DAY, 8 * DAY, {
    [`${A}enabled`]: 'true',
    [`${A}window`]: `0 ${windowHour} * * *`,
    [`${A}window-duration`]: '1h',
  });
  // A CA Secret that a rollover has left paused in Propagate (its own issuer's rollover would act on
  // it; this one is only shown): the row says so, whatever its renewal state.
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret('paused-ca', await makeTestCA('paused rollover CA'), {
      'status.cert-rotator.io/ca-rollover-phase': 'Propagate',
      'status.cert-rotator.io/ca-rollover-phase-since': new Date(Date.now() - 5 * MIN).toISOString(),
      [`${A}rollover-paused`]: 'true',
    }),
  });
  await createLeafSecret('bad-annotation', -DAY, 40 * DAY, {
    [`${A}enabled`]: 'true',
    [`${A}renew-before`]: HOSTILE_ANNOTATION,
  });

  controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  metricsUrl = await controller.metricsUrl();
  pageUrl = metricsUrl.replace(/\/metrics$/, '/');
  await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
  await waitFor('renewed to be renewed', async () => {
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'renewed' });
    return s.metadata?.annotations?.[`${A}revision`] === '1' || undefined;
  });
  await waitFor('failing to fail once', async () =>
    (await metricValue(metricsUrl, Metric.renewalsTotal, { issuer: 'internal-ca', result: 'failure' })) === 1
      ? true
      : undefined,
  );
  await controller.waitForLog(
    'the pending CSR to be left waiting',
    (l) =>
      l.secret === `${ns()}/pending-csr` && typeof l.msg === 'string' && l.msg.includes('looking again in'),
    60_000,
  );
  browser = await launchChromium(testEnv().bins.chromium);
  page = await browser.newPage(1600, 1000);
  await page.load(pageUrl);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await killAllControllers();
});

async function rows(): Promise<Row[]> {
  return await page.evaluate<Row[]>(`[...document.querySelectorAll('#certificates tbody tr')].map((tr) => {
    const td = [...tr.children].map((c) => c.textContent);
    return { secret: td[1], subject: td[2], issuer: td[3], why: td[7], state: td[8], lastEvent: td[9], className: tr.className };
  })`);
}

function row(all: Row[], name: string): Row {
  const r = all.find((x) => x.secret === name || x.secret === `${name}monitored`);
  if (!r) throw new Error(`no row for ${name} in ${all.map((x) => x.secret).join(', ')}`);
  return r;
}

describe('the status page in headless Chromium', () => {
  it('lists every certificate, soonest expiry first', async () => {
    const all = await rows();
    const names = all.map((r) => r.secret.replace(/monitored$/, ''));
    const expected = [
      'expired',
      'failing',
      'pending-csr',
      'planned',
      'windowed',
      'hostile',
      'bad-annotation',
      'fine',
      'internal-ca',
    ];
    for (const n of [...expected, 'renewed']) expect(names).toContain(n);
    // Order: by notAfter as the API server holds the certificates (renewed now has ~90 days).
    const notAfter = new Map<string, number>();
    for (const n of names) {
      const v = await metricValue(metricsUrl, Metric.certificateNotAfter, { secret: n });
      notAfter.set(n, v ?? Number.NaN);
    }
    const sorted = [...names].sort((a, b) => (notAfter.get(a) ?? 0) - (notAfter.get(b) ?? 0));
    expect(names).toEqual(sorted);
    expect(names[0]).toBe('expired');
    expect(await page.evaluate<string>("document.querySelector('#count-all').textContent")).toBe(
      `${names.length} certificates`,
    );
  });

  it('says why each renewal is planned when it is', async () => {
    const all = await rows();
    expect(row(all, 'planned').why).toMatch(/^renew-before 2d\b/);
    expect(row(all, 'planned').state).toBe('Ready');
    expect(row(all, 'failing').why).toMatch(/^backoff after 1 failed attempt: next attempt /);
    expect(row(all, 'failing').state).toBe('Failed');
    expect(row(all, 'failing').className).toBe('bad');
    expect(row(all, 'failing').lastEvent).toMatch(/^RenewalFailed/);
    expect(row(all, 'pending-csr').why).toMatch(/^waiting for its CertificateSigningRequest to be approved/);
    expect(row(all, 'pending-csr').state).toBe('Issuing');
    expect(row(all, 'windowed').why).toMatch(/waits for its maintenance window \(0 \d+ \* \* \*\)/);
    expect(row(all, 'expired').state).toBe('Expired');
    expect(row(all, 'fine').why).toMatch(/^monitored only/);
    expect(row(all, 'renewed').lastEvent).toMatch(/^Renewed/);
    expect(row(all, 'renewed').issuer).toBe('internal-ca');
    expect(row(all, 'bad-annotation').state).toBe('Invalid annotations');
    expect(row(all, 'paused-ca').state).toBe('CARollover/Propagate (paused)');
    expect(row(all, 'paused-ca').className).toBe('warn');
    expect(row(all, 'paused-ca').why).toMatch(
      /^CA rollover in phase Propagate since .+, paused by cert-rotator\.io\/rollover-paused; `cert-rotator ca status ISSUER`/,
    );
  });

  it('renders hostile text as text: no element is made of it and no script runs', async () => {
    const all = await rows();
    expect(row(all, 'hostile').subject).toContain(HOSTILE_CN);
    expect(row(all, 'bad-annotation').why).toContain(HOSTILE_ANNOTATION);
    const dom = await page.evaluate<{ scripts: number; imgs: number; bolds: number; pwned: unknown }>(
      `({ scripts: document.scripts.length, imgs: document.images.length,
          bolds: document.querySelectorAll('b').length, pwned: window.__pwned ?? null })`,
    );
    expect(dom).toEqual({ scripts: 0, imgs: 0, bolds: 0, pwned: null });
    expect(page.messages.filter((m) => /exception|Refused/.test(m))).toEqual([]);
  });

  it('shows the expiry timeline and recent activity, and is served with a strict policy', async () => {
    const svg = await page.evaluate<{ bars: number; lives: number; renewals: number }>(`({
      bars: document.querySelectorAll('#expiry-histogram rect').length,
      lives: document.querySelectorAll('#expiry-timeline rect').length,
      renewals: document.querySelectorAll('#expiry-timeline line.renew').length })`);
    expect(svg.bars).toBeGreaterThan(3);
    expect(svg.lives).toBeGreaterThanOrEqual(9);
    expect(svg.renewals).toBeGreaterThanOrEqual(5);
    const recent = await page.evaluate<string[]>(
      "[...document.querySelectorAll('#recent tbody tr')].map((tr) => tr.children[2].textContent + ' ' + tr.children[3].textContent)",
    );
    expect(recent).toContain(`Renewed ${ns()}/renewed`);
    expect(recent).toContain(`RenewalFailed ${ns()}/failing`);
    expect(await page.evaluate<string>("document.querySelector('meta[http-equiv=refresh]').content")).toBe(
      '30',
    );

    const res = await fetch(pageUrl);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'none'");
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await res.text();
    // Only metadata: no PEM block, no Secret's data (as base64 or decoded) reaches the page.
    expect(html).not.toContain('-----BEGIN');
    const secrets = await core.listNamespacedSecret({ namespace: ns() });
    const leaked = secrets.items.flatMap((s) =>
      Object.entries(s.data ?? {})
        .filter(([, v]) => {
          const text = Buffer.from(v, 'base64').toString('utf8');
          // Long values only: a short one (an issuer's name) may well be on the page as metadata.
          return (
            (v.length > 40 && html.includes(v.slice(20, 80))) ||
            (text.length > 40 && html.includes(text.slice(20, 80)))
          );
        })
        .map(([k]) => `${s.metadata?.name}/${k}`),
    );
    expect(leaked).toEqual([]);
    expect((await fetch(pageUrl, { method: 'POST' })).status).toBe(405);

    const png = await page.screenshot();
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.readUInt32BE(16)).toBe(1600);
    await writeFile(join(dir, 'status-page.png'), png);
    if (process.env.CERT_ROTATOR_UPDATE_SCREENSHOT === '1')
      await writeFile(new URL('../../docs/status-page.png', import.meta.url), png);
  });
});

describe('operator metrics of the same controller', () => {
  it('export leader, work queues and API requests by verb and code', async () => {
    const text = await (await fetch(metricsUrl)).text();
    expect(text).toMatch(new RegExp(`^${Metric.leader} 1$`, 'm'));
    expect(text).toMatch(new RegExp(`^${Metric.workqueueDepth}\\{queue="secrets"\\} \\d+$`, 'm'));
    expect(text).toMatch(new RegExp(`^${Metric.workqueueDepth}\\{queue="rollouts"\\} \\d+$`, 'm'));
    expect(text).toMatch(new RegExp(`^${Metric.workqueueOldestItemAge}\\{queue="secrets"\\} [\\d.]+$`, 'm'));
    const count = (verb: string, code: string) =>
      metricValue(metricsUrl, Metric.kubeApiRequestsTotal, { verb, code });
    expect(await count('list', '200')).toBeGreaterThanOrEqual(1);
    expect(await count('watch', '200')).toBeGreaterThanOrEqual(1);
    expect(await count('update', '200')).toBeGreaterThanOrEqual(2); // renewed's and failing's writes, the Lease
    expect(await count('create', '201')).toBeGreaterThanOrEqual(2); // Events, the CSR
    expect(await count('get', '200')).toBeGreaterThanOrEqual(1);
  });
});
