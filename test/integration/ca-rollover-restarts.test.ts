/**
 * A CA rollover through crashes and failovers in every phase, against the real API server:
 * the leader crashes in Trust after writing one Secret's ca.crt (fault injection), its standby
 * takes over; that one crashes in Reissue after asking one Secret for its renewal; a restart
 * with a closed maintenance window asks nobody else; a restart with an open window finishes the
 * wave; in Retire the leader is killed while the old CA waits for the last leaf the CSR signer
 * issued with it, and the standby finishes. Seen from the cluster: every phase entered once and
 * in order (a watch on the CA Secret), every Secret re-issued exactly once (a watch on the leaf
 * serials), and the old CA's key kept until the CSR signer's leaf has expired.
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCsrPem, generateKey } from '../../src/pki/index.ts';
import {
  type ControllerProcess,
  killAllControllers,
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
  waitForRevision,
} from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const HOUR = 3_600_000;
const A = 'cert-rotator.io/';
const S = 'status.cert-rotator.io/';
const SECRETS = ['svc-0', 'svc-1', 'svc-2', 'svc-3'];
const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;

let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let certs: k8s.CertificatesV1Api;
let dir: string;
let signerName: string;
let ca1: Pair;
const csrNames: string[] = [];
/** Every phase value the CA Secret took, in order, as the watch saw it ('' = none). */
const phases: string[] = [];
/** When the watch saw each phase begin. */
const entered: Array<[string, number]> = [];
/** Per Secret: every leaf serial seen by the watch, in order, without repeats. */
const serials = new Map<string, string[]>();
let stopWatch: (() => void) | undefined;
/** Set when the watch ended before the test stopped it (its record would be incomplete). */
let watchEnded: string | undefined;

const pemOf = (p: string) => new X509Certificate(p).toString();
const caSecret = () => core.readNamespacedSecret({ namespace: ns(), name: 'issuing-ca' });
const phaseOf = (s: k8s.V1Secret) => s.metadata?.annotations?.[`${S}ca-rollover-phase`] ?? '';
const secret = (name: string) => core.readNamespacedSecret({ namespace: ns(), name });

function config(windows?: Array<{ cron: string; duration: string }>) {
  return {
    namespaces: [ns()],
    defaults: { issuer: 'internal-ca' },
    leaderElection: { namespace: ns(), leaseDuration: '2s', renewDeadline: '1500ms', retryPeriod: '300ms' },
    issuers: [
      {
        name: 'internal-ca',
        ca: {
          secret: { namespace: ns(), name: 'issuing-ca' },
          rollover: {
            trustPropagation: '1s',
            maxWait: '2s',
            reissue: { maxPerMinute: 100, ...(windows ? { windows } : {}) },
            retireAfter: '1s',
            checkInterval: '1s',
          },
        },
        // The CSR signer of the same CA: its leaves cannot be re-issued, Retire waits for them.
        signer: { signerName, maxDuration: '1m' },
        allowedDomains: ['*.example.com'],
      },
    ],
  };
}

function start(configPath: string, crashAfter?: string): ControllerProcess {
  return startControllerProcess({
    configPath,
    kubeconfigPath: testEnv().kubeconfigPath,
    ...(crashAfter ? { env: { CERT_ROTATOR_TEST_CRASH_AFTER: crashAfter } } : {}),
  });
}

const leader = (c: ControllerProcess) => c.waitForLog('leadership', (l) => l.msg === 'became leader', 60_000);
const ready = (c: ControllerProcess) =>
  c.waitForLog('the initial list', (l) => l.msg === 'initial list processed', 60_000);

async function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KUBECONFIG: testEnv().kubeconfigPath },
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  proc.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const code = await new Promise<number | null>((resolve) => proc.once('close', resolve));
  return { code, stdout, stderr };
}

/** A CSR for the signer, approved by the admin, signed by cert-rotator: the leaf. */
async function csrLeaf(name: string): Promise<X509Certificate> {
  const key = await generateKey('ecdsa-p256');
  const request = await createCsrPem(key.privateKeyPem, {
    dnsNames: [`${name}.example.com`],
    ipAddresses: [],
    uris: [],
  });
  const created = await certs.createCertificateSigningRequest({
    body: {
      metadata: { name: `${ns()}-${name}` },
      spec: {
        signerName,
        request: Buffer.from(request).toString('base64'),
        usages: ['digital signature', 'server auth'],
        expirationSeconds: 600,
      },
    },
  });
  csrNames.push(created.metadata?.name ?? '');
  created.status = {
    conditions: [
      { type: 'Approved', status: 'True', reason: 'TestApproved', message: 'approved by the test' },
    ],
  };
  await certs.replaceCertificateSigningRequestApproval({ name: created.metadata?.name ?? '', body: created });
  const issued = await waitFor(`CSR ${name} signed`, async () => {
    const c = await certs.readCertificateSigningRequest({ name: created.metadata?.name ?? '' });
    return c.status?.certificate ? c.status.certificate : undefined;
  });
  return new X509Certificate(Buffer.from(issued, 'base64'));
}

/**
 * Watches the namespace's Secrets: the CA Secret's phase changes and each leaf's serials. The
 * client ends a watch after a while: it is resumed from the last resourceVersion seen, so no
 * change is missed (a 410 would end it for good and fail the test).
 */
async function watchSecrets(): Promise<void> {
  const watch = new k8s.Watch(kc);
  let lastVersion = '';
  let stopped = false;
  const seen = (s: k8s.V1Secret) => {
    lastVersion = s.metadata?.resourceVersion ?? lastVersion;
    const name = s.metadata?.name ?? '';
    if (name === 'issuing-ca') {
      const phase = phaseOf(s);
      if (phases.at(-1) !== phase) {
        phases.push(phase);
        entered.push([phase || (entered.length === 0 ? 'none' : 'done'), Date.now()]);
      }
      return;
    }
    if (!SECRETS.includes(name)) return;
    const serial = new X509Certificate(decoded(s, 'tls.crt')).serialNumber;
    const list = serials.get(name) ?? [];
    if (list.at(-1) !== serial) list.push(serial);
    serials.set(name, list);
  };
  const list = await core.listNamespacedSecret({ namespace: ns() });
  for (const s of list.items) seen(s);
  lastVersion = list.metadata?.resourceVersion ?? '';
  let current: AbortController | undefined;
  const run = async (): Promise<void> => {
    current = await watch.watch(
      `/api/v1/namespaces/${ns()}/secrets`,
      { resourceVersion: lastVersion, allowWatchBookmarks: true },
      (type, obj: k8s.V1Secret) => {
        if (type === 'ADDED' || type === 'MODIFIED') seen(obj);
        else if (type === 'BOOKMARK') lastVersion = obj.metadata?.resourceVersion ?? lastVersion;
        else if (type === 'ERROR') watchEnded = `the Secret watch failed: ${JSON.stringify(obj)}`;
      },
      () => {
        if (!stopped && watchEnded === undefined)
          void run().catch((err: unknown) => (watchEnded = String(err)));
      },
    );
  };
  await run();
  stopWatch = () => {
    stopped = true;
    current?.abort();
  };
}

async function annotateCa(changes: Record<string, string>): Promise<void> {
  const s = await caSecret();
  s.metadata = { ...s.metadata, annotations: { ...s.metadata?.annotations, ...changes } };
  await core.replaceNamespacedSecret({ namespace: ns(), name: 'issuing-ca', body: s });
}

async function waitingEvent(pattern: RegExp): Promise<k8s.CoreV1Event> {
  return await waitFor(`a CARolloverWaiting event matching ${pattern}`, async () =>
    (await eventsFor(core, ns(), 'issuing-ca')).find(
      (e) => e.reason === 'CARolloverWaiting' && pattern.test(e.message ?? ''),
    ),
  );
}

/** A daily window of `minutes` starting at `startMs` (UTC, to the minute). */
function dailyWindow(startMs: number, minutes: number) {
  const d = new Date(startMs);
  return { cron: `${d.getUTCMinutes()} ${d.getUTCHours()} * * *`, duration: `${minutes}m` };
}

beforeAll(async () => {
  kc = adminKubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  certs = kc.makeApiClient(k8s.CertificatesV1Api);
  signerName = `cert-rotator.io/${ns()}`;
  dir = await mkdtemp(join(tmpdir(), 'cert-rotator-rollover-restarts-'));
  ca1 = await makeTestCA('restarts CA 1');
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('issuing-ca', ca1) });
});

afterAll(async () => {
  stopWatch?.();
  stopWatch = undefined;
  await killAllControllers();
  for (const name of csrNames) await certs.deleteCertificateSigningRequest({ name }).catch(() => undefined);
});

describe('CA rollover: crash, failover and restart in every phase (real API server)', () => {
  it('continues from the recorded phase each time; no phase skipped, no Secret re-issued twice', async () => {
    const plain = await writeConfig(dir, config(), 'plain.yaml');
    // Leader A crashes after its first ca.crt write in Trust; standby B after its first ask in Reissue.
    const a = start(plain, 'rollover-trust-write');
    await leader(a);
    const b = start(plain, 'rollover-reissue-ask');
    // Secrets issued by CA 1 (renewed at once: renew-before 5h > the 4h left).
    for (const name of SECRETS) {
      const pair = await makeLeaf({ dnsNames: [`${name}.example.com`], fromMs: -6 * HOUR, toMs: 4 * HOUR });
      await core.createNamespacedSecret({
        namespace: ns(),
        body: tlsSecret(name, pair, { [`${A}enabled`]: 'true', [`${A}renew-before`]: '5h' }),
      });
    }
    for (const name of SECRETS) await waitForRevision(core, ns(), name, '1');
    await ready(b);
    await watchSecrets();
    // A leaf the CSR signer issues with CA 1 (as late as possible: Retire waits for its minute).
    const oldCsrLeaf = await csrLeaf('before');
    expect(oldCsrLeaf.checkIssued(new X509Certificate(ca1.certPem))).toBe(true);

    // Trust: A writes one ca.crt and crashes; the cluster shows the half-done phase.
    const ca2 = await makeTestCA('restarts CA 2');
    await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('next-ca', ca2) });
    await annotateCa({ [`${A}next-ca`]: 'next-ca' });
    expect(await a.exited).toBe(137);
    const both = pemOf(ca1.certPem) + pemOf(ca2.certPem);
    const widened = async () =>
      (await Promise.all(SECRETS.map(secret))).filter((s) => decoded(s, 'ca.crt') === both).length;
    expect(phaseOf(await caSecret())).toBe('Trust');
    expect(await widened()).toBe(1);

    // B takes over in Trust and walks on to Reissue, where it asks one Secret and crashes.
    await leader(b);
    expect(await b.exited).toBe(137);
    const reissuing = await caSecret();
    expect(phaseOf(reissuing)).toBe('Reissue');
    expect(decoded(reissuing, 'tls.crt')).toBe(ca2.certPem);
    const token = reissuing.metadata?.annotations?.[`${S}ca-rollover-started`];
    const askedNames = async () =>
      (await Promise.all(SECRETS.map(secret)))
        .filter((s) => s.metadata?.annotations?.[`${A}renew-requested-at`] === token)
        .map((s) => s.metadata?.name ?? '');
    const firstAsked = await askedNames();
    expect(firstAsked).toHaveLength(1);

    // Restart C in Reissue with a window that is closed now: the asked Secret is renewed, no
    // other is asked; the event and `ca status` say when the window opens.
    const now = Date.now();
    const closed = dailyWindow(now + 6 * HOUR, 30);
    const c = start(await writeConfig(dir, config([closed]), 'closed.yaml'));
    await leader(c);
    const opens = new Date(Math.floor((now + 6 * HOUR) / 60_000) * 60_000).toISOString();
    await waitingEvent(new RegExp(`Reissue waits for its maintenance window.*3 leaves.*opens at ${opens}`));
    await waitForRevision(core, ns(), firstAsked[0] ?? '', '2');
    expect(await askedNames()).toEqual(firstAsked);
    const closedStatus = await cli(
      'ca',
      'status',
      'internal-ca',
      '--config',
      join(dir, 'closed.yaml'),
      '-o',
      'json',
    );
    expect(closedStatus.code, closedStatus.stderr).toBe(0);
    expect(JSON.parse(closedStatus.stdout)).toMatchObject({
      phase: 'Reissue',
      reissueWindow: { open: false, nextStart: opens },
      fromActiveCa: 1,
    });
    // New requests to the CSR signer get the new CA.
    const newCsrLeaf = await csrLeaf('after');
    expect(newCsrLeaf.checkIssued(new X509Certificate(ca2.certPem))).toBe(true);
    expect(await c.stop()).toBe(0);

    // D (a window open now) finishes the wave; E stands by.
    const openPath = await writeConfig(dir, config([dailyWindow(Date.now() - 60_000, 30)]), 'open.yaml');
    const d = start(openPath);
    await leader(d);
    const e = start(openPath);
    await ready(e);
    // Retire: the old CA stays, with its key, until the CSR signer's leaf of CA 1 has expired.
    const retiring = await waitFor('Retire', async () => {
      const s = await caSecret();
      return phaseOf(s) === 'Retire' ? s : undefined;
    });
    expect(retiring.data?.['previous.key']).toBeDefined();
    const held = await waitingEvent(
      /Retire keeps the old CA until \S+: leaves it signed through the CSR signer/,
    );
    const until = Date.parse(/until (\S+):/.exec(held.message ?? '')?.[1] ?? '');
    expect(until).toBeGreaterThanOrEqual(Date.parse(oldCsrLeaf.validTo));
    expect(until).toBeLessThanOrEqual(Date.parse(oldCsrLeaf.validTo) + 7_000); // a tenth of its minute
    const retireStatus = await cli('ca', 'status', 'internal-ca', '--config', openPath);
    expect(retireStatus.stdout).toContain(
      'signed leaves: of the previous CA still valid; Retire keeps it until',
    );
    expect(retireStatus.stdout).toMatch(/the CSR signer: until \S+ \(ConfigMap cert-rotator-csr-issued\)/);
    // Failover in Retire: D is killed; E continues the wait and completes.
    await d.kill();
    await leader(e);
    const done = await waitFor(
      'the rollover to complete',
      async () => {
        const s = await caSecret();
        return phaseOf(s) === '' && !s.data?.['previous.crt'] ? s : undefined;
      },
      { timeoutMs: 90_000 },
    );
    expect(Date.now()).toBeGreaterThanOrEqual(until);
    expect(done.data?.['previous.key']).toBeUndefined();
    expect(watchEnded).toBeUndefined();
    expect(phases.slice(phases.indexOf('Trust'))).toEqual(['Trust', 'Propagate', 'Reissue', 'Retire', '']);
    for (const name of SECRETS) {
      const s = await secret(name);
      expect(decoded(s, 'ca.crt'), name).toBe(pemOf(ca2.certPem));
      expect(
        new X509Certificate(decoded(s, 'tls.crt')).checkIssued(new X509Certificate(ca2.certPem)),
        name,
      ).toBe(true);
      expect(s.metadata?.annotations?.[`${A}revision`], name).toBe('2');
      // The leaf of revision 1 and the one of CA 2: re-issued exactly once.
      expect(serials.get(name), name).toHaveLength(2);
    }
    const spans = entered
      .slice(1)
      .map(([p, t], i) => `${entered[i]?.[0]}→${p} ${((t - (entered[i]?.[1] ?? t)) / 1000).toFixed(1)}s`);
    console.log(`[ca-rollover-restarts] ${SECRETS.length} Secrets: ${spans.join(', ')}`);
    const messages = (await eventsFor(core, ns(), 'issuing-ca'))
      .filter((ev) => ev.reason === 'CARolloverPhase')
      .map((ev) => ev.message ?? '');
    for (const re of [
      /began: Trust/,
      /Propagate — waiting/,
      /Reissue — the new CA signs/,
      /Retire — /,
      /no longer trusted/,
      /complete/,
    ]) {
      expect(
        messages.filter((m) => re.test(m)),
        String(re),
      ).toHaveLength(1);
    }
  });
});
