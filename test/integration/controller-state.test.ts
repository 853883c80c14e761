import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import {
  eventsFor,
  makeLeaf,
  makeTestCA,
  tlsSecret,
  waitForRevision as waitForSecretRevision,
} from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const MIN = 60_000;
const DAY = 86_400_000;
const A = 'cert-rotator.io/';
const S = 'status.cert-rotator.io/';

let core: k8s.CoreV1Api;
let dir: string;

async function read(name: string): Promise<k8s.V1Secret> {
  return await core.readNamespacedSecret({ namespace: ns(), name });
}

async function annotate(name: string, annotations: Record<string, string | null>): Promise<void> {
  await core.patchNamespacedSecret(
    { namespace: ns(), name, body: { metadata: { annotations } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
}

const waitForRevision = (name: string, revision = '1', timeoutMs = 30_000) =>
  waitForSecretRevision(core, ns(), name, revision, timeoutMs);

function renewedLines(controller: ControllerProcess, name: string): number {
  return controller.logs.filter((l) => l.msg === 'certificate renewed' && l.secret === `${ns()}/${name}`)
    .length;
}

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  dir = await mkdtemp(join(tmpdir(), 'cert-rotator-state-'));
});

afterAll(async () => {
  await killAllControllers();
});

describe('renew-requested-at', () => {
  let controller: ControllerProcess;

  beforeAll(async () => {
    const configPath = await writeConfig(dir, {
      namespaces: [ns()],
      // Every failed attempt waits exactly 2 s: long enough to see the request stay pending.
      renewalBackoff: { base: '2s', cap: '2s' },
      issuers: [
        { name: 'self', selfSigned: {} },
        { name: 'late-ca', ca: { secret: { namespace: ns(), name: 'late-ca' } } },
      ],
      defaults: { issuer: 'self' },
    });
    controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
    await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
  });

  // The namespace is shared with the next describe's controllers: this one must not act there.
  afterAll(async () => {
    await controller?.stop();
  });

  it('renews a Secret that is not due once per new token, and records the token it handled', async () => {
    const valid = await makeLeaf({ dnsNames: ['asked.example.com'], fromMs: -DAY, toMs: 30 * DAY });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('asked', valid, { [`${A}enabled`]: 'true' }),
    });
    await controller.waitForLog('the Secret to be seen', (l) => l.secret === `${ns()}/asked`);
    await annotate('asked', { [`${A}renew-requested-at`]: '2026-12-01T08:00:00.000Z' });
    const first = await waitForRevision('asked', '1');
    expect(first.metadata?.annotations?.[`${S}renew-request-handled`]).toBe('2026-12-01T08:00:00.000Z');
    const event = await waitFor('a Renewed event', async () =>
      (await eventsFor(core, ns(), 'asked')).find((e) => e.reason === 'Renewed'),
    );
    expect(event.message).toContain('renewal requested');

    // The same token again (any other change to the Secret makes the controller look again).
    await annotate('asked', { [`${A}renew-requested-at`]: '2026-12-01T08:00:00.000Z', touched: 'yes' });
    // A later Secret that is due gets renewed: the controller has handled the touch by then.
    const due = await makeLeaf({ dnsNames: ['probe.example.com'], fromMs: -DAY, toMs: MIN });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('probe', due, { [`${A}enabled`]: 'true' }),
    });
    await waitForRevision('probe', '1');
    await controller.waitForLog('the touched version to be seen', (l) => {
      return (
        l.msg === 'Secret seen' &&
        l.secret === `${ns()}/asked` &&
        l.resourceVersion !== first.metadata?.resourceVersion
      );
    });
    expect((await read('asked')).metadata?.annotations?.[`${A}revision`]).toBe('1');

    // A new token: one more renewal, exactly one.
    await annotate('asked', { [`${A}renew-requested-at`]: 'second' });
    const second = await waitForRevision('asked', '2');
    expect(second.metadata?.annotations?.[`${S}renew-request-handled`]).toBe('second');
    await waitForRevision('probe', '1');
    expect(renewedLines(controller, 'asked')).toBe(2);
  });

  it('keeps a request pending through failed attempts, retried after the backoff, until one succeeds', async () => {
    const valid = await makeLeaf({ dnsNames: ['pending.example.com'], fromMs: -DAY, toMs: 30 * DAY });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('pending', valid, {
        [`${A}enabled`]: 'true',
        [`${A}issuer`]: 'late-ca',
        [`${A}renew-requested-at`]: 'please',
      }),
    });
    // The CA Secret does not exist yet: the attempt fails and the request stays unhandled.
    const failed = await waitFor('the failure to be recorded', async () => {
      const s = await read('pending');
      return s.metadata?.annotations?.[`${A}state`] === 'Failed' ? s : undefined;
    });
    expect(failed.metadata?.annotations?.[`${S}renew-request-handled`]).toBeUndefined();
    expect(failed.metadata?.annotations?.[`${A}revision`]).toBeUndefined();

    const ca = await makeTestCA('late CA');
    await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('late-ca', ca) });
    const renewed = await waitForRevision('pending', '1');
    expect(renewed.metadata?.annotations?.[`${S}renew-request-handled`]).toBe('please');
    expect(renewed.metadata?.annotations?.[`${A}state`]).toBe('Ready');
    // Each retry came after a failure's backoff, not in a loop.
    const failures = controller.logs.filter(
      (l) => l.secret === `${ns()}/pending` && typeof l.retryInMs === 'number' && l.code === 'ISSUER_FAILED',
    );
    expect(failures.length).toBeGreaterThanOrEqual(1);
    for (const f of failures) expect(f.retryInMs).toBe(2_000);
  });
});

describe('a restart storm with a failing issuer', () => {
  it('10 restarts in 2 minutes: each Secret is tried at the backoff’s count, not once per restart', async () => {
    const BACKOFF_MS = 60_000;
    const configPath = await writeConfig(
      dir,
      {
        namespaces: [ns()],
        // Every failed attempt waits exactly 60 s, so the backoff's count is easy to state.
        renewalBackoff: { base: '60s', cap: '60s' },
        leaderElection: { enabled: false },
        issuers: [{ name: 'no-ca', ca: { secret: { namespace: ns(), name: 'never-created' } } }],
        defaults: { issuer: 'no-ca' },
      },
      'storm.yaml',
    );
    const names = ['storm-0', 'storm-1', 'storm-2', 'storm-3', 'storm-4'];
    for (const name of names) {
      const pair = await makeLeaf({ dnsNames: [`${name}.example.com`], fromMs: -DAY, toMs: MIN });
      await core.createNamespacedSecret({
        namespace: ns(),
        body: tlsSecret(name, pair, { [`${A}enabled`]: 'true' }),
      });
    }
    const failedAttempts = (c: ControllerProcess) =>
      c.logs.filter(
        (l) =>
          typeof l.code === 'string' &&
          typeof l.retryInMs === 'number' &&
          String(l.secret).startsWith(`${ns()}/storm-`),
      );
    const processes: ControllerProcess[] = [];
    const start = Date.now();
    for (let i = 0; i < 10; i++) {
      const c = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
      processes.push(c);
      await c.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
      if (i === 0) {
        await c.waitForLog('the first failures', () => failedAttempts(c).length >= names.length, 30_000);
      }
      // The storm: a new process every ~12 s (this wait is the scenario, not a guess).
      await new Promise((r) => setTimeout(r, 11_000));
      expect(await c.stop()).toBe(0);
    }
    const elapsedMs = Date.now() - start;
    const attempts = new Map<string, number>(names.map((n) => [n, 0]));
    for (const c of processes) {
      for (const l of failedAttempts(c)) {
        const name = String(l.secret).slice(ns().length + 1);
        attempts.set(name, (attempts.get(name) ?? 0) + 1);
      }
    }
    // The backoff allows one attempt at the start and one per 60 s after it.
    const allowed = 1 + Math.floor(elapsedMs / BACKOFF_MS);
    process.stdout.write(
      `[controller-state] restart storm: 10 restarts in ${Math.round(elapsedMs / 1000)} s, failed attempts per Secret ${JSON.stringify(Object.fromEntries(attempts))}, backoff allows <= ${allowed}\n`,
    );
    for (const name of names) {
      const count = attempts.get(name) ?? 0;
      expect(count, name).toBeGreaterThanOrEqual(1);
      expect(count, name).toBeLessThanOrEqual(allowed);
      // What the Secret records agrees: one failure written per attempt.
      const s = await read(name);
      expect(s.metadata?.annotations?.[`${A}failures`], name).toBe(String(count));
    }
  }, 240_000);
});
