import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
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
  waitForRevision,
} from '../testenv/tls-fixtures.ts';

/**
 * A CA rollover against the real API server and kube-controller-manager: staged input refused,
 * then Trust → Propagate → Reissue → Retire with shortened timings, the controller killed in
 * two phases, every Secret re-issued exactly once and every workload rolled once per change.
 */
const ns = useNamespace(import.meta.url);
const HOUR = 3_600_000;
const A = 'cert-rotator.io/';
const S = 'status.cert-rotator.io/';
const HASH = `${A}certificate-hash`;
const SECRETS = ['svc-a', 'svc-b', 'svc-c'];

let core: k8s.CoreV1Api;
let apps: k8s.AppsV1Api;
let controller: ControllerProcess;
let configPath: string;
let ca1: Pair;

const pemOf = (p: string) => new X509Certificate(p).toString();
const caSecret = () => core.readNamespacedSecret({ namespace: ns(), name: 'issuing-ca' });
const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;

/** `cert-rotator ca status` as a user runs it. */
const caStatus = (...extra: string[]) => cli('ca', 'status', ...extra);

/** A cert-rotator command as a user runs it. */
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
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
  return { code, stdout, stderr };
}

const bundle = async () =>
  (await core.readNamespacedConfigMap({ namespace: ns(), name: 'internal-ca-trust' })).data?.['ca.crt'];
const phaseOf = (s: k8s.V1Secret) => s.metadata?.annotations?.[`${S}ca-rollover-phase`];

async function startController(): Promise<void> {
  controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  await controller.waitForLog('the rollout index', (l) => l.msg === 'rollout index ready', 60_000);
}

async function annotateCa(changes: Record<string, string | undefined>): Promise<void> {
  const s = await caSecret();
  const annotations = { ...s.metadata?.annotations };
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete annotations[k];
    else annotations[k] = v;
  }
  s.metadata = { ...s.metadata, annotations };
  await core.replaceNamespacedSecret({ namespace: ns(), name: 'issuing-ca', body: s });
}

async function deployment(name: string, secret: string, replicas: number): Promise<void> {
  await apps.createNamespacedDeployment({
    namespace: ns(),
    body: {
      metadata: { name },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
            volumes: [{ name: 'tls', secret: { secretName: secret } }],
          },
        },
      },
    },
  });
}

const generation = async (name: string) =>
  (await apps.readNamespacedDeployment({ namespace: ns(), name })).metadata?.generation ?? 0;

async function phaseEvents(): Promise<string[]> {
  return (await eventsFor(core, ns(), 'issuing-ca'))
    .filter((e) => e.reason === 'CARolloverPhase')
    .sort((a, b) =>
      String(a.firstTimestamp ?? a.eventTime).localeCompare(String(b.firstTimestamp ?? b.eventTime)),
    )
    .map((e) => e.message ?? '');
}

async function waitForPhase(phase: string | undefined, timeoutMs = 90_000): Promise<k8s.V1Secret> {
  return await waitFor(
    `the CA Secret in phase ${phase ?? '(none)'}`,
    async () => {
      const s = await caSecret();
      return phaseOf(s) === phase ? s : undefined;
    },
    { timeoutMs },
  );
}

beforeAll(async () => {
  const kc = adminKubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  apps = kc.makeApiClient(k8s.AppsV1Api);
  ca1 = await makeTestCA('rollover CA 1');
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('issuing-ca', ca1) });
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-rollover-'));
  configPath = await writeConfig(dir, {
    namespaces: [ns()],
    defaults: { issuer: 'internal-ca' },
    issuers: [
      {
        name: 'internal-ca',
        ca: {
          secret: { namespace: ns(), name: 'issuing-ca' },
          rollover: {
            trustPropagation: '2s',
            maxWait: '4s',
            onMaxWait: 'hold',
            reissue: { maxPerMinute: 100 },
            retireAfter: '6s',
            checkInterval: '1s',
          },
        },
      },
    ],
    rollout: { debounce: '1s' },
    trustBundles: [{ issuer: 'internal-ca', configMap: { name: 'internal-ca-trust' }, namespaces: [ns()] }],
  });
  await startController();
  // Three Secrets issued by CA 1 (renewed at once: renew-before 5h > the 4h left).
  for (const name of SECRETS) {
    const pair = await makeLeaf({ dnsNames: [`${name}.example.com`], fromMs: -6 * HOUR, toMs: 4 * HOUR });
    const restart: Record<string, string> = name === 'svc-c' ? { [`${A}restart`]: 'none' } : {};
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret(name, pair, { [`${A}enabled`]: 'true', [`${A}renew-before`]: '5h', ...restart }),
    });
  }
  for (const name of SECRETS) await waitForRevision(core, ns(), name, '1');
  // app-a and app-c have no pods to wait for; app-b wants one, which never becomes Ready here
  // (no node in this test environment), so Propagate must wait for it.
  await deployment('app-a', 'svc-a', 0);
  await deployment('app-b', 'svc-b', 1);
  await deployment('app-c', 'svc-c', 0);
});

afterAll(async () => {
  await killAllControllers();
});

describe('CA rollover (real API server)', () => {
  it('refuses a staged CA that is not a CA, has a mismatched key, or has expired; nothing changes', async () => {
    const leaf = await makeLeaf({ dnsNames: ['not-a-ca.example.com'], fromMs: -HOUR, toMs: HOUR });
    const other = await makeTestCA('other');
    const cases: Array<[string, Pair, RegExp]> = [
      ['staged-leaf', leaf, /is not a usable CA certificate.*(cA|keyCertSign)/],
      [
        'staged-mismatch',
        { certPem: (await makeTestCA('mismatch')).certPem, keyPem: other.keyPem },
        /tls.key does not match tls.crt/,
      ],
      ['staged-expired', await makeTestCA('expired', -30_000), /has expired/],
    ];
    const before = await caSecret();
    for (const [name, pair, why] of cases) {
      await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret(name, pair) });
      await annotateCa({ [`${A}next-ca`]: name });
      const event = await waitFor(`a CARolloverRefused event for ${name}`, async () =>
        (await eventsFor(core, ns(), 'issuing-ca')).find(
          (e) => e.reason === 'CARolloverRefused' && e.message?.includes(`/${name} cannot be used`),
        ),
      );
      expect(event.type).toBe('Warning');
      expect(event.message).toMatch(why);
      expect(event.message).toContain('the current CA keeps signing');
    }
    await annotateCa({ [`${A}next-ca`]: undefined });
    // The trust bundle holds the one CA.
    expect(await waitFor('the trust bundle', bundle)).toBe(pemOf(ca1.certPem));
    const after = await caSecret();
    expect(phaseOf(after)).toBeUndefined();
    expect(after.data).toEqual(before.data);
    expect(
      await metricValue(await controller.metricsUrl(), 'cert_rotator_ca_rollover_phase', {
        issuer: 'internal-ca',
      }),
    ).toBe(0);
    // The old CA keeps issuing: a renewal now is signed by CA 1.
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'svc-c' });
    s.metadata = {
      ...s.metadata,
      annotations: { ...s.metadata?.annotations, [`${A}renew-requested-at`]: 'after-refusals' },
    };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'svc-c', body: s });
    const renewed = await waitForRevision(core, ns(), 'svc-c', '2');
    expect(
      new X509Certificate(decoded(renewed, 'tls.crt')).checkIssued(new X509Certificate(ca1.certPem)),
    ).toBe(true);
  });

  it('walks Trust → Propagate → Reissue → Retire, surviving restarts, re-issuing each Secret once', async () => {
    const timeline: Array<[string, number]> = [['start', Date.now()]];
    const ca2 = await makeTestCA('rollover CA 2');
    await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('next-ca', ca2) });
    const g0 = await generation('app-a');
    const revisions = new Map<string, string>();
    for (const name of SECRETS) {
      revisions.set(
        name,
        (await core.readNamespacedSecret({ namespace: ns(), name })).metadata?.annotations?.[
          `${A}revision`
        ] ?? '',
      );
    }
    await annotateCa({ [`${A}next-ca`]: 'next-ca' });

    // Propagate holds: app-b's pod never becomes Ready here; maxWait passes with onMaxWait: hold.
    const propagating = await waitForPhase('Propagate');
    timeline.push(['Propagate', Date.now()]);
    expect(decoded(propagating, 'next.crt')).toBe(pemOf(ca2.certPem));
    const both = pemOf(ca1.certPem) + pemOf(ca2.certPem);
    for (const name of SECRETS) {
      expect(decoded(await core.readNamespacedSecret({ namespace: ns(), name }), 'ca.crt'), name).toBe(both);
    }
    expect(await bundle()).toBe(both);
    // The trust change alone rolled app-a once (app-c has restart: none on its Secret).
    await waitFor('app-a rolled for the widened trust', async () =>
      (await generation('app-a')) === g0 + 1 ? true : undefined,
    );
    const held = await waitFor('a CARolloverStalled event', async () =>
      (await eventsFor(core, ns(), 'issuing-ca')).find((e) => e.reason === 'CARolloverStalled'),
    );
    expect(held.message).toContain(`deployment/${ns()}/app-b`);
    expect(held.message).toContain('holds in Propagate');
    expect(
      await metricValue(await controller.metricsUrl(), 'cert_rotator_ca_rollover_phase', {
        issuer: 'internal-ca',
      }),
    ).toBe(2);

    // `ca status` shows the phase and who Propagate waits for.
    const status = await caStatus('internal-ca', '--config', configPath, '-o', 'json');
    expect(status.code, status.stderr).toBe(0);
    const json = JSON.parse(status.stdout) as {
      phase: string;
      secrets: number;
      trustCurrent: number;
      fromActiveCa: number;
      workloads: { pending: string[]; unconfirmed: string[] };
    };
    expect(json).toMatchObject({ phase: 'Propagate', secrets: 3, trustCurrent: 3, fromActiveCa: 3 });
    expect(json.workloads.pending).toEqual([`deployment/${ns()}/app-b`]);
    expect(json.workloads.unconfirmed).toEqual([`deployment/${ns()}/app-c`]);
    const text = await caStatus('internal-ca', '--config', configPath);
    expect(text.stdout).toMatch(/^phase: +Propagate since \S+Z$/m);
    expect(text.stdout).toContain('next CA:       CN=rollover CA 2');
    // `scan` shows the CA Secret's phase as its state.
    const scan = await cli('scan', '--namespace', ns(), '--output', 'json');
    const rows = (
      JSON.parse(scan.stdout) as { items: Array<{ name: string; controllerState: string | null }> }
    ).items;
    expect(rows.find((r) => r.name === 'issuing-ca')?.controllerState).toBe('CARollover/Propagate');
    const unknown = await caStatus('nope', '--config', configPath);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('"nope" is not a ca issuer');

    // A restart in Propagate: the new process continues there.
    await controller.kill();
    await startController();
    expect(phaseOf(await caSecret())).toBe('Propagate');
    await apps.patchNamespacedDeployment(
      { namespace: ns(), name: 'app-b', body: { spec: { replicas: 0 } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );

    const reissuing = await waitForPhase('Reissue');
    timeline.push(['Reissue', Date.now()]);
    // Paused inside Reissue's first seconds (no renewal asked yet), and a restart there: nothing
    // moves while paused; resumed, it continues in Reissue.
    await annotateCa({ [`${A}rollover-paused`]: 'true' });
    await controller.kill();
    await startController();
    await new Promise((r) => setTimeout(r, 3000)); // three looks at checkInterval 1s
    expect(phaseOf(await caSecret())).toBe('Reissue');
    for (const name of SECRETS) {
      const s = await core.readNamespacedSecret({ namespace: ns(), name });
      expect(s.metadata?.annotations?.[`${A}revision`], name).toBe(revisions.get(name));
    }
    expect(
      await metricValue(await controller.metricsUrl(), 'cert_rotator_ca_rollover_phase', {
        issuer: 'internal-ca',
      }),
    ).toBe(3);
    await annotateCa({ [`${A}rollover-paused`]: undefined });
    expect(decoded(reissuing, 'tls.crt')).toBe(ca2.certPem);
    expect(decoded(reissuing, 'previous.crt')).toBe(ca1.certPem);
    expect(reissuing.data?.['next.crt']).toBeUndefined();
    expect(reissuing.metadata?.annotations?.[`${A}next-ca`]).toBeUndefined();
    await waitFor('the staged Secret to be deleted', async () =>
      (await core.listNamespacedSecret({ namespace: ns() })).items.some((s) => s.metadata?.name === 'next-ca')
        ? undefined
        : true,
    );

    const retiring = await waitForPhase('Retire');
    timeline.push(['Retire', Date.now()]);
    for (const name of SECRETS) {
      const s = await core.readNamespacedSecret({ namespace: ns(), name });
      const leaf = new X509Certificate(decoded(s, 'tls.crt'));
      expect(leaf.checkIssued(new X509Certificate(ca2.certPem)), name).toBe(true);
      expect(leaf.verify(new X509Certificate(ca2.certPem).publicKey), name).toBe(true);
      expect(decoded(s, 'ca.crt'), name).toBe(pemOf(ca2.certPem) + pemOf(ca1.certPem));
      expect(Number(s.metadata?.annotations?.[`${A}revision`]), name).toBe(Number(revisions.get(name)) + 1);
    }
    expect(retiring.data?.['previous.key']).toBeDefined();
    // A restart in Retire: the old CA is still trusted until retireAfter, then dropped.
    await controller.kill();
    await startController();
    await waitForPhase(undefined);
    timeline.push(['done', Date.now()]);
    const finished = await caStatus('internal-ca', '--config', configPath);
    expect(finished.stdout).toMatch(/^phase: +None$/m);
    expect(finished.stdout).toContain('ca.crt holds the current trust: 3; leaf from the active CA: 3');
    const done = await caSecret();
    expect(await bundle()).toBe(pemOf(ca2.certPem));
    expect(done.data?.['previous.crt']).toBeUndefined();
    expect(done.data?.['previous.key']).toBeUndefined();
    for (const name of SECRETS) {
      const s = await core.readNamespacedSecret({ namespace: ns(), name });
      expect(decoded(s, 'ca.crt'), name).toBe(pemOf(ca2.certPem));
      // Re-issued exactly once through all phases and restarts.
      expect(Number(s.metadata?.annotations?.[`${A}revision`]), name).toBe(Number(revisions.get(name)) + 1);
    }
    // app-a: widened trust, new leaf, narrowed trust — three rolls, one per change.
    await waitFor('app-a rolled for the narrowed trust', async () =>
      (await generation('app-a')) === g0 + 3 ? true : undefined,
    );
    expect(await generation('app-c')).toBe(1);
    const hash = (await apps.readNamespacedDeployment({ namespace: ns(), name: 'app-a' })).spec?.template
      .metadata?.annotations?.[HASH];
    expect(hash).toMatch(/^[0-9a-f]{32}$/);
    // Every phase was entered, in order, each once.
    const messages = await phaseEvents();
    const order = [
      /began: Trust/,
      /Propagate — waiting/,
      /Reissue — the new CA signs/,
      /Retire — the old CA stays/,
      /no longer trusted/,
      /complete/,
    ];
    expect(messages).toHaveLength(order.length);
    for (const [i, re] of order.entries()) expect(messages[i]).toMatch(re);
    const spans = timeline
      .slice(1)
      .map(([p, t], i) => `${timeline[i]?.[0]}→${p} ${((t - (timeline[i]?.[1] ?? t)) / 1000).toFixed(1)}s`);
    console.log(`[ca-rollover] ${SECRETS.length} Secrets: ${spans.join(', ')}`);
  });

  it('a CA overwritten in place: the old CA stays trusted, renewals are held until the trust has propagated, then every leaf moves', async () => {
    const before = await caSecret();
    const replaced = await makeTestCA('rollover CA 2'); // the same subject, another key
    const oldPem = decoded(before, 'tls.crt');
    const revisions = new Map<string, number>();
    for (const name of SECRETS) {
      const s = await core.readNamespacedSecret({ namespace: ns(), name });
      revisions.set(name, Number(s.metadata?.annotations?.[`${A}revision`]));
    }
    // Propagate will wait for app-b again.
    await apps.patchNamespacedDeployment(
      { namespace: ns(), name: 'app-b', body: { spec: { replicas: 1 } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    // As `kubectl create secret tls ... --dry-run -o yaml | kubectl replace -f -` does: a whole
    // new object, without the annotations cert-rotator recorded, and without a resourceVersion
    // (an unconditional update: the controller may have written the Secret since `before`).
    await core.replaceNamespacedSecret({
      namespace: ns(),
      name: 'issuing-ca',
      body: { ...tlsSecret('issuing-ca', replaced), metadata: { name: 'issuing-ca' } },
    });
    const event = await waitFor('a CAOverwritten event', async () =>
      (await eventsFor(core, ns(), 'issuing-ca')).find((e) => e.reason === 'CAOverwritten'),
    );
    expect(event.type).toBe('Warning');
    expect(event.message).toContain('cert-rotator.io/next-ca');
    const propagating = await waitForPhase('Propagate');
    expect(decoded(propagating, 'previous.crt')).toBe(pemOf(oldPem));
    expect(propagating.metadata?.annotations?.[`${S}ca-rollover-unsafe`]).toBeDefined();
    expect(await bundle()).toBe(pemOf(replaced.certPem) + pemOf(oldPem));
    for (const name of SECRETS) {
      const s = await core.readNamespacedSecret({ namespace: ns(), name });
      expect(decoded(s, 'ca.crt'), name).toBe(pemOf(replaced.certPem) + pemOf(oldPem));
    }
    // A renewal asked for now is held: the controller says so and writes nothing.
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'svc-a' });
    s.metadata = {
      ...s.metadata,
      annotations: { ...s.metadata?.annotations, [`${A}renew-requested-at`]: 'during-propagate' },
    };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'svc-a', body: s });
    await controller.waitForLog(
      'the held renewal',
      (l) => l.secret === `${ns()}/svc-a` && String(l.msg).startsWith('renewal held'),
    );
    const held = await core.readNamespacedSecret({ namespace: ns(), name: 'svc-a' });
    expect(Number(held.metadata?.annotations?.[`${A}revision`])).toBe(revisions.get('svc-a'));

    await apps.patchNamespacedDeployment(
      { namespace: ns(), name: 'app-b', body: { spec: { replicas: 0 } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await waitForPhase('Retire');
    await waitForPhase(undefined);
    for (const name of SECRETS) {
      const after = await core.readNamespacedSecret({ namespace: ns(), name });
      expect(
        new X509Certificate(decoded(after, 'tls.crt')).verify(
          new X509Certificate(replaced.certPem).publicKey,
        ),
        name,
      ).toBe(true);
      expect(decoded(after, 'ca.crt'), name).toBe(pemOf(replaced.certPem));
      // svc-a: the held request and the Reissue are one renewal, not two.
      expect(Number(after.metadata?.annotations?.[`${A}revision`]), name).toBe(
        (revisions.get(name) ?? 0) + 1,
      );
    }
    expect((await caSecret()).data?.['previous.crt']).toBeUndefined();
    expect(await bundle()).toBe(pemOf(replaced.certPem));
  });

  it('failover: the standby replica continues a rollover its leader left in Propagate', async () => {
    const standby = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
    await standby.waitForLog('the standby to be ready', (l) => l.msg === 'initial list processed', 60_000);
    const revisions = new Map<string, number>();
    for (const name of SECRETS) {
      const s = await core.readNamespacedSecret({ namespace: ns(), name });
      revisions.set(name, Number(s.metadata?.annotations?.[`${A}revision`]));
    }
    await apps.patchNamespacedDeployment(
      { namespace: ns(), name: 'app-b', body: { spec: { replicas: 1 } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const ca4 = await makeTestCA('rollover CA 4');
    await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('next-ca-4', ca4) });
    await annotateCa({ [`${A}next-ca`]: 'next-ca-4' });
    await waitForPhase('Propagate');
    expect(standby.logs.some((l) => l.msg === 'became leader')).toBe(false);
    await controller.kill(); // the leader goes away without releasing its lease
    await standby.waitForLog('the standby to take over', (l) => l.msg === 'became leader', 60_000);
    controller = standby;
    expect(phaseOf(await caSecret())).toBe('Propagate');
    await apps.patchNamespacedDeployment(
      { namespace: ns(), name: 'app-b', body: { spec: { replicas: 0 } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    await waitForPhase('Reissue');
    await waitForPhase(undefined);
    for (const name of SECRETS) {
      const s = await core.readNamespacedSecret({ namespace: ns(), name });
      expect(
        new X509Certificate(decoded(s, 'tls.crt')).verify(new X509Certificate(ca4.certPem).publicKey),
        name,
      ).toBe(true);
      expect(Number(s.metadata?.annotations?.[`${A}revision`]), name).toBe((revisions.get(name) ?? 0) + 1);
    }
    expect(await bundle()).toBe(pemOf(ca4.certPem));
  });
});
