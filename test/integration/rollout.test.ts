import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificatesFromPem, readCertificateSummary } from '../../src/pki/index.ts';
import { certificateHash } from '../../src/rollout/hash.ts';
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
  tlsSecret,
  waitForRevision as waitForSecretRevision,
} from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const A = 'cert-rotator.io/';
const HASH = `${A}certificate-hash`;

let core: k8s.CoreV1Api;
let apps: k8s.AppsV1Api;
let controller: ControllerProcess;
let metricsUrl: string;
let configPath: string;
/** The same, with a debounce far longer than two renewals take even on a loaded machine. */
let slowConfigPath: string;
const SLOW_DEBOUNCE = '15s';
let otherNamespace = '';

type Workload = k8s.V1Deployment | k8s.V1StatefulSet | k8s.V1DaemonSet;
type Kind = 'deployment' | 'statefulset' | 'daemonset';

interface PodShape {
  volumes?: k8s.V1Volume[];
  env?: k8s.V1EnvVar[];
  envFrom?: k8s.V1EnvFromSource[];
  initContainers?: k8s.V1Container[];
}

function template(app: string, shape: PodShape): k8s.V1PodTemplateSpec {
  return {
    metadata: { labels: { app } },
    spec: {
      containers: [
        {
          name: 'app',
          image: 'registry.invalid/app:1',
          ...(shape.env ? { env: shape.env } : {}),
          ...(shape.envFrom ? { envFrom: shape.envFrom } : {}),
        },
      ],
      ...(shape.volumes ? { volumes: shape.volumes } : {}),
      ...(shape.initContainers ? { initContainers: shape.initContainers } : {}),
    },
  };
}

const mount = (secret: string): PodShape => ({ volumes: [{ name: 'tls', secret: { secretName: secret } }] });

async function createWorkload(
  kind: Kind,
  name: string,
  shape: PodShape,
  opts: { annotations?: Record<string, string>; paused?: boolean; namespace?: string } = {},
): Promise<void> {
  const namespace = opts.namespace ?? ns();
  const metadata = { name, ...(opts.annotations ? { annotations: opts.annotations } : {}) };
  const selector = { matchLabels: { app: name } };
  const tpl = template(name, shape);
  if (kind === 'deployment') {
    await apps.createNamespacedDeployment({
      namespace,
      body: { metadata, spec: { replicas: 1, selector, template: tpl, paused: opts.paused ?? false } },
    });
  } else if (kind === 'statefulset') {
    await apps.createNamespacedStatefulSet({
      namespace,
      body: { metadata, spec: { replicas: 1, serviceName: name, selector, template: tpl } },
    });
  } else {
    await apps.createNamespacedDaemonSet({
      namespace,
      body: { metadata, spec: { selector, template: tpl } },
    });
  }
  if (namespace === ns()) {
    // The controller has indexed it (it logs each workload it learns about at debug level).
    await controller.waitForLog(
      `${kind}/${name} indexed`,
      (l) => l.msg === 'workload indexed' && l.workload === `${kind}/${namespace}/${name}`,
    );
  }
}

async function readWorkload(kind: Kind, name: string, namespace = ns()): Promise<Workload> {
  if (kind === 'deployment') return await apps.readNamespacedDeployment({ namespace, name });
  if (kind === 'statefulset') return await apps.readNamespacedStatefulSet({ namespace, name });
  return await apps.readNamespacedDaemonSet({ namespace, name });
}

const hashOf = (w: Workload) => w.spec?.template.metadata?.annotations?.[HASH];

async function waitForHash(kind: Kind, name: string, timeoutMs = 30_000): Promise<Workload> {
  return await waitFor(
    `${kind}/${name} to carry ${HASH}`,
    async () => {
      const w = await readWorkload(kind, name);
      return hashOf(w) ? w : undefined;
    },
    { timeoutMs },
  );
}

async function replicaSets(app: string): Promise<k8s.V1ReplicaSet[]> {
  return (await apps.listNamespacedReplicaSet({ namespace: ns(), labelSelector: `app=${app}` })).items;
}

/** A managed Secret whose certificate is valid and not yet due (by default 10 h lifetime, 4 h left). */
async function managedSecret(
  name: string,
  annotations: Record<string, string> = {},
  validity = { fromMs: -6 * HOUR, toMs: 4 * HOUR },
): Promise<void> {
  const pair = await makeLeaf({ dnsNames: [`${name}.example.com`], ...validity });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret(name, pair, { [`${A}enabled`]: 'true', ...annotations }),
  });
  await controller.waitForLog(
    `Secret ${name} seen`,
    (l) => l.msg === 'Secret seen' && l.secret === `${ns()}/${name}`,
  );
}

/** Makes the controller renew now: renew-before 5 h > the 4 h left. */
async function renew(name: string): Promise<void> {
  const s = await core.readNamespacedSecret({ namespace: ns(), name });
  s.metadata = { ...s.metadata, annotations: { ...s.metadata?.annotations, [`${A}renew-before`]: '5h' } };
  await core.replaceNamespacedSecret({ namespace: ns(), name, body: s });
}

const waitForRevision = (name: string, revision: string) => waitForSecretRevision(core, ns(), name, revision);

async function waitForEvent(
  name: string,
  reason: string,
  match: (e: k8s.CoreV1Event) => boolean = () => true,
  namespace = ns(),
): Promise<k8s.CoreV1Event> {
  return await waitFor(`a ${reason} event on ${name}`, async () =>
    (await eventsFor(core, namespace, name)).find((e) => e.reason === reason && match(e)),
  );
}

function fingerprintOf(secret: k8s.V1Secret): string {
  const der = certificatesFromPem(decoded(secret, 'tls.crt'))[0];
  if (!der) throw new Error('no certificate');
  const s = readCertificateSummary(der);
  return `${s.serialHex}:${s.spkiSha256}`;
}

function restartLogs(c: ControllerProcess, workload: string): Array<Record<string, unknown>> {
  return c.logs.filter((l) => l.msg === 'workload restarted' && l.workload === workload);
}

async function startController(path = configPath): Promise<Record<string, unknown>> {
  controller = startControllerProcess({ configPath: path, kubeconfigPath: testEnv().kubeconfigPath });
  metricsUrl = await controller.metricsUrl();
  return await controller.waitForLog('the rollout index', (l) => l.msg === 'rollout index ready', 60_000);
}

async function replaceByHand(
  name: string,
  validity = { fromMs: -HOUR, toMs: 30 * DAY },
): Promise<k8s.V1Secret> {
  const pair = await makeLeaf({ dnsNames: [`${name}.example.com`], ...validity });
  const s = await core.readNamespacedSecret({ namespace: ns(), name });
  s.data = {
    ...s.data,
    'tls.crt': Buffer.from(pair.certPem).toString('base64'),
    'tls.key': Buffer.from(pair.keyPem).toString('base64'),
  };
  return await core.replaceNamespacedSecret({ namespace: ns(), name, body: s });
}

beforeAll(async () => {
  const kc = adminKubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  apps = kc.makeApiClient(k8s.AppsV1Api);
  const ca = await makeTestCA();
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
  otherNamespace = `${ns()}-other`;
  await core.createNamespace({ body: { metadata: { name: otherNamespace } } });
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-rollout-'));
  configPath = await writeConfig(dir, {
    namespaces: [ns()],
    defaults: { issuer: 'internal-ca' },
    issuers: [{ name: 'internal-ca', ca: { secret: { namespace: ns(), name: 'internal-ca' } } }],
    rollout: { debounce: '1s' },
  });
  slowConfigPath = await writeConfig(
    dir,
    {
      namespaces: [ns()],
      defaults: { issuer: 'internal-ca' },
      issuers: [{ name: 'internal-ca', ca: { secret: { namespace: ns(), name: 'internal-ca' } } }],
      rollout: { debounce: SLOW_DEBOUNCE },
    },
    'slow.yaml',
  );
  await startController();
});

afterAll(async () => {
  await killAllControllers();
  if (otherNamespace) await core.deleteNamespace({ name: otherNamespace }).catch(() => undefined);
});

describe('rollouts against the real API server and kube-controller-manager', () => {
  it('a Deployment that mounts a renewed Secret gets a new ReplicaSet, events on both and a metric', async () => {
    await managedSecret('web-tls');
    await createWorkload('deployment', 'web', mount('web-tls'));
    await waitFor('the first ReplicaSet of web', async () =>
      (await replicaSets('web')).length === 1 ? true : undefined,
    );
    const before = await readWorkload('deployment', 'web');
    expect(hashOf(before)).toBeUndefined();

    await renew('web-tls');
    const renewed = await waitForRevision('web-tls', '1');
    const after = await waitForHash('deployment', 'web');
    expect(hashOf(after)).toBe(certificateHash([{ name: 'web-tls', fingerprint: fingerprintOf(renewed) }]));
    expect(after.metadata?.generation).toBe((before.metadata?.generation ?? 0) + 1);
    const sets = await waitFor('a second ReplicaSet of web', async () => {
      const rs = await replicaSets('web');
      return rs.length === 2 ? rs : undefined;
    });
    expect(sets.some((rs) => rs.spec?.template?.metadata?.annotations?.[HASH] === hashOf(after))).toBe(true);

    const onWorkload = await waitForEvent('web', 'RolloutTriggered');
    expect(onWorkload.involvedObject.kind).toBe('Deployment');
    expect(onWorkload.message).toContain('web-tls');
    const onSecret = await waitForEvent('web-tls', 'RolloutTriggered');
    expect(onSecret.message).toContain('deployment/web');
    expect(
      await metricValue(metricsUrl, 'cert_rotator_rollouts_total', { kind: 'deployment', result: 'success' }),
    ).toBeGreaterThanOrEqual(1);
    expect(restartLogs(controller, `deployment/${ns()}/web`)).toHaveLength(1);
  });

  it('finds every reference shape and patches StatefulSets and DaemonSets too', async () => {
    await managedSecret('shapes-tls');
    const cases: Array<[Kind, string, PodShape]> = [
      ['statefulset', 'sts-volume', mount('shapes-tls')],
      ['daemonset', 'ds-volume', mount('shapes-tls')],
      [
        'deployment',
        'dep-env',
        { env: [{ name: 'CERT', valueFrom: { secretKeyRef: { name: 'shapes-tls', key: 'tls.crt' } } }] },
      ],
      ['deployment', 'dep-envfrom', { envFrom: [{ secretRef: { name: 'shapes-tls' } }] }],
      [
        'deployment',
        'dep-projected',
        { volumes: [{ name: 'all', projected: { sources: [{ secret: { name: 'shapes-tls' } }] } }] },
      ],
      [
        'statefulset',
        'sts-init',
        {
          initContainers: [
            {
              name: 'init',
              image: 'registry.invalid/init:1',
              envFrom: [{ secretRef: { name: 'shapes-tls' } }],
            },
          ],
        },
      ],
      ['deployment', 'dep-unrelated', mount('some-other-secret')],
    ];
    const generations = new Map<string, number>();
    for (const [kind, name, shape] of cases) {
      await createWorkload(kind, name, shape);
      generations.set(name, (await readWorkload(kind, name)).metadata?.generation ?? 0);
    }
    await renew('shapes-tls');
    const renewed = await waitForRevision('shapes-tls', '1');
    const expected = certificateHash([{ name: 'shapes-tls', fingerprint: fingerprintOf(renewed) }]);
    for (const [kind, name] of cases.filter(([, n]) => n !== 'dep-unrelated')) {
      const w = await waitForHash(kind, name);
      expect(hashOf(w), `${kind}/${name}`).toBe(expected);
      expect(w.metadata?.generation, `${kind}/${name}`).toBe((generations.get(name) ?? 0) + 1);
    }
    const unrelated = await readWorkload('deployment', 'dep-unrelated');
    expect(hashOf(unrelated)).toBeUndefined();
    expect(unrelated.metadata?.generation).toBe(generations.get('dep-unrelated'));
    expect(
      await metricValue(metricsUrl, 'cert_rotator_rollouts_total', {
        kind: 'statefulset',
        result: 'success',
      }),
    ).toBeGreaterThanOrEqual(2);
    expect(
      await metricValue(metricsUrl, 'cert_rotator_rollouts_total', { kind: 'daemonset', result: 'success' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('two Secrets of one workload renewed together give exactly one template change; a controller restart gives none', async () => {
    // "Together" means within the debounce: with 1 s, two renewals on a loaded machine can land
    // further apart than that. This part runs under a controller whose debounce is 15 s.
    expect(await controller.stop()).toBe(0);
    await startController(slowConfigPath);
    await managedSecret('pair-a');
    await managedSecret('pair-b');
    await createWorkload('deployment', 'pair', {
      volumes: [{ name: 'a', secret: { secretName: 'pair-a' } }],
      env: [{ name: 'B', valueFrom: { secretKeyRef: { name: 'pair-b', key: 'tls.crt' } } }],
    });
    const g0 = (await readWorkload('deployment', 'pair')).metadata?.generation ?? 0;
    await Promise.all([renew('pair-a'), renew('pair-b')]);
    const [a, b] = [await waitForRevision('pair-a', '1'), await waitForRevision('pair-b', '1')];
    const expected = certificateHash([
      { name: 'pair-a', fingerprint: fingerprintOf(a) },
      { name: 'pair-b', fingerprint: fingerprintOf(b) },
    ]);
    const w = await waitFor('pair to carry the hash of both certificates', async () => {
      const d = await readWorkload('deployment', 'pair');
      return hashOf(d) === expected ? d : undefined;
    });
    expect(w.metadata?.generation).toBe(g0 + 1);
    expect(restartLogs(controller, `deployment/${ns()}/pair`)).toHaveLength(1);

    // Restart the controller: everything it finds already carries the right hash.
    const generations = new Map<string, number>();
    for (const d of (await apps.listNamespacedDeployment({ namespace: ns() })).items)
      generations.set(d.metadata?.name ?? '', d.metadata?.generation ?? 0);
    for (const s of (await apps.listNamespacedStatefulSet({ namespace: ns() })).items)
      generations.set(`sts:${s.metadata?.name}`, s.metadata?.generation ?? 0);
    const patched = [
      ...(await apps.listNamespacedDeployment({ namespace: ns() })).items,
      ...(await apps.listNamespacedStatefulSet({ namespace: ns() })).items,
      ...(await apps.listNamespacedDaemonSet({ namespace: ns() })).items,
    ].filter((x) => hashOf(x) !== undefined).length;
    expect(await controller.stop()).toBe(0);
    const ready = await startController();
    expect(patched).toBeGreaterThanOrEqual(1);
    expect(ready.withHash).toBe(patched); // the start-up check looked at every patched workload
    // A renewal after the restart, patched after the debounce: by then any start-up patch would
    // have happened too (start-up checks are queued before it).
    await managedSecret('probe-tls');
    await createWorkload('deployment', 'probe', mount('probe-tls'));
    await renew('probe-tls');
    await waitForRevision('probe-tls', '1');
    await waitForHash('deployment', 'probe');
    for (const d of (await apps.listNamespacedDeployment({ namespace: ns() })).items) {
      const name = d.metadata?.name ?? '';
      if (name === 'probe') continue;
      expect(d.metadata?.generation, name).toBe(generations.get(name));
    }
    for (const s of (await apps.listNamespacedStatefulSet({ namespace: ns() })).items)
      expect(s.metadata?.generation).toBe(generations.get(`sts:${s.metadata?.name}`));
    const restarted = controller.logs.filter((l) => l.msg === 'workload restarted');
    expect(restarted.map((l) => l.workload)).toEqual([`deployment/${ns()}/probe`]);
    expect(
      await metricValue(metricsUrl, 'cert_rotator_rollouts_total', { kind: 'deployment', result: 'success' }),
    ).toBe(1);
  });

  it('a Secret replaced by hand rolls its workloads; one whose key does not match rolls nothing', async () => {
    await managedSecret('hand-tls');
    await managedSecret('hand-bad-tls');
    await createWorkload('deployment', 'hand', mount('hand-tls'));
    await createWorkload('deployment', 'hand-bad', mount('hand-bad-tls'));
    const gBad = (await readWorkload('deployment', 'hand-bad')).metadata?.generation;

    const replacement = await makeLeaf({ dnsNames: ['hand.example.com'], fromMs: -HOUR, toMs: 30 * DAY });
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'hand-tls' });
    s.data = {
      ...s.data,
      'tls.crt': Buffer.from(replacement.certPem).toString('base64'),
      'tls.key': Buffer.from(replacement.keyPem).toString('base64'),
    };
    const replaced = await core.replaceNamespacedSecret({ namespace: ns(), name: 'hand-tls', body: s });
    const w = await waitForHash('deployment', 'hand');
    expect(hashOf(w)).toBe(certificateHash([{ name: 'hand-tls', fingerprint: fingerprintOf(replaced) }]));
    // Not a renewal: the controller did not write the Secret.
    const now = await core.readNamespacedSecret({ namespace: ns(), name: 'hand-tls' });
    expect(now.metadata?.annotations?.[`${A}revision`]).toBeUndefined();

    const other = await makeLeaf({ dnsNames: ['x.example.com'], fromMs: -HOUR, toMs: 30 * DAY });
    const mismatched = await makeLeaf({ dnsNames: ['hand-bad.example.com'], fromMs: -HOUR, toMs: 30 * DAY });
    const bad = await core.readNamespacedSecret({ namespace: ns(), name: 'hand-bad-tls' });
    bad.data = {
      ...bad.data,
      'tls.crt': Buffer.from(mismatched.certPem).toString('base64'),
      'tls.key': Buffer.from(other.keyPem).toString('base64'),
    };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'hand-bad-tls', body: bad });
    const event = await waitForEvent('hand-bad-tls', 'RolloutSkipped');
    expect(event.type).toBe('Warning');
    expect(event.message).toContain('tls.key does not match tls.crt');
    const d = await readWorkload('deployment', 'hand-bad');
    expect(hashOf(d)).toBeUndefined();
    expect(d.metadata?.generation).toBe(gBad);
  });

  it('paused, opted-out and restart "none" workloads are left alone with RolloutSkipped; a paused one rolls when resumed', async () => {
    await managedSecret('guard-tls');
    await managedSecret('none-tls', { [`${A}restart`]: 'none' });
    await createWorkload('deployment', 'paused', mount('guard-tls'), { paused: true });
    await createWorkload('deployment', 'opted-out', mount('guard-tls'), {
      annotations: { [`${A}restart`]: 'false' },
    });
    await createWorkload('statefulset', 'opted-out-sts', mount('guard-tls'), {
      annotations: { [`${A}restart`]: 'false' },
    });
    await createWorkload('deployment', 'uses-none', mount('none-tls'));
    const names: Array<[Kind, string]> = [
      ['deployment', 'paused'],
      ['deployment', 'opted-out'],
      ['statefulset', 'opted-out-sts'],
      ['deployment', 'uses-none'],
    ];
    const generations = new Map<string, number | undefined>();
    for (const [kind, name] of names)
      generations.set(name, (await readWorkload(kind, name)).metadata?.generation);

    await renew('guard-tls');
    await renew('none-tls');
    expect((await waitForEvent('paused', 'RolloutSkipped')).message).toMatch(/paused/);
    expect((await waitForEvent('opted-out', 'RolloutSkipped')).message).toContain(`${A}restart: "false"`);
    expect((await waitForEvent('opted-out-sts', 'RolloutSkipped')).involvedObject.kind).toBe('StatefulSet');
    const none = await waitForEvent('none-tls', 'RolloutSkipped');
    expect(none.message).toContain('"none"');
    expect(none.message).toContain('deployment/uses-none');
    const guard = await waitForEvent('guard-tls', 'RolloutSkipped', (e) => /paused/.test(e.message ?? ''));
    expect(guard.message).toContain('deployment/paused');
    for (const [kind, name] of names) {
      const w = await readWorkload(kind, name);
      expect(hashOf(w), name).toBeUndefined();
      expect(w.metadata?.generation, name).toBe(generations.get(name));
    }
    expect(
      await metricValue(metricsUrl, 'cert_rotator_rollouts_total', { kind: 'deployment', result: 'skipped' }),
    ).toBeGreaterThanOrEqual(3);

    // Resuming the paused Deployment brings the restart it is owed.
    const p = (await readWorkload('deployment', 'paused')) as k8s.V1Deployment;
    p.spec = { ...(p.spec as k8s.V1DeploymentSpec), paused: false };
    const resumed = await apps.replaceNamespacedDeployment({ namespace: ns(), name: 'paused', body: p });
    const after = await waitForHash('deployment', 'paused');
    expect(after.metadata?.generation).toBe((resumed.metadata?.generation ?? 0) + 1);
    expect(hashOf(await readWorkload('deployment', 'opted-out'))).toBeUndefined();
  });

  it('restart lists: a workload in the same namespace is restarted, one named in another namespace is refused', async () => {
    await createWorkload('deployment', 'listed', mount('not-the-secret'));
    await createWorkload('deployment', 'elsewhere', mount('list-tls'), { namespace: otherNamespace });
    const gElsewhere = (await readWorkload('deployment', 'elsewhere', otherNamespace)).metadata?.generation;
    await managedSecret('list-tls', { [`${A}restart`]: 'deployment/listed,deployment/elsewhere' });
    await renew('list-tls');
    await waitForHash('deployment', 'listed');
    const refused = await waitForEvent('list-tls', 'RolloutSkipped');
    expect(refused.type).toBe('Warning');
    expect(refused.message).toContain('deployment/elsewhere');
    expect(refused.message).toContain(`not found in namespace ${ns()}`);

    // Spelling the other namespace out is not accepted either: the annotation is rejected.
    const pair = await makeLeaf({ dnsNames: ['cross.example.com'], fromMs: -6 * HOUR, toMs: HOUR });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('cross-tls', pair, {
        [`${A}enabled`]: 'true',
        [`${A}restart`]: `deployment/${otherNamespace}/elsewhere`,
      }),
    });
    const invalid = await waitForEvent('cross-tls', 'InvalidAnnotation');
    expect(invalid.message).toContain(`${A}restart`);
    expect(invalid.message).toContain("only workloads in the Secret's own namespace can be restarted");
    const e = await readWorkload('deployment', 'elsewhere', otherNamespace);
    expect(hashOf(e)).toBeUndefined();
    expect(e.metadata?.generation).toBe(gElsewhere);
  });

  it('waits for the maintenance window, unless the certificate the pods hold is past its emergency point', async () => {
    const today = new Date();
    if (today.getUTCMonth() === 0 && today.getUTCDate() === 1) return;
    const window = { [`${A}window`]: '0 3 1 1 *', [`${A}window-duration`]: '1h' };
    // Replaced by hand outside the window: the restart waits.
    // A long-lived certificate: its emergency point is 24 h before an expiry ~300 days away.
    await managedSecret('window-tls', window, { fromMs: -65 * DAY, toMs: 300 * DAY });
    await createWorkload('deployment', 'windowed', mount('window-tls'));
    const g = (await readWorkload('deployment', 'windowed')).metadata?.generation;
    const next = await makeLeaf({ dnsNames: ['window.example.com'], fromMs: -HOUR, toMs: 30 * DAY });
    const s = await core.readNamespacedSecret({ namespace: ns(), name: 'window-tls' });
    s.data = {
      ...s.data,
      'tls.crt': Buffer.from(next.certPem).toString('base64'),
      'tls.key': Buffer.from(next.keyPem).toString('base64'),
    };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'window-tls', body: s });
    const deferred = await waitForEvent('windowed', 'RolloutSkipped');
    const until = /deferred to (\S+Z)/.exec(deferred.message ?? '')?.[1];
    expect(deferred.message).toContain('maintenance window of Secret window-tls');
    expect(Date.parse(until ?? '')).toBeGreaterThan(Date.now() + DAY);
    expect(
      await metricValue(metricsUrl, 'cert_rotator_rollouts_total', {
        kind: 'deployment',
        result: 'deferred',
      }),
    ).toBeGreaterThanOrEqual(1);

    // 30 days lifetime, 20 h left: renewed at once despite the window, and restarted at once.
    const urgentPair = await makeLeaf({
      dnsNames: ['urgent.example.com'],
      fromMs: -29 * DAY,
      toMs: 20 * HOUR,
    });
    await createWorkload('deployment', 'urgent', mount('urgent-tls'));
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('urgent-tls', urgentPair, { [`${A}enabled`]: 'true', ...window }),
    });
    await waitForRevision('urgent-tls', '1');
    const urgent = await waitForHash('deployment', 'urgent');
    expect(urgent.metadata?.generation).toBe(2);
    // The log line follows the patch: wait for it rather than race the controller's output.
    const line = await controller.waitForLog(
      'the urgent restart log line',
      (l) => l.msg === 'workload restarted' && l.workload === `deployment/${ns()}/urgent`,
      30_000,
    );
    expect(line.window).toMatch(/emergency/);
    const w = await readWorkload('deployment', 'windowed');
    expect(hashOf(w)).toBeUndefined();
    expect(w.metadata?.generation).toBe(g);
  });

  it('after a restart, a workload whose hash is stale is caught up; one never patched is not restarted', async () => {
    await managedSecret('fresh-tls');
    await createWorkload('deployment', 'fresh', mount('fresh-tls'));
    const gFresh = (await readWorkload('deployment', 'fresh')).metadata?.generation;
    // A workload cert-rotator has patched before (this test's own, not an earlier test's).
    await managedSecret('caught-tls');
    await createWorkload('deployment', 'caught', mount('caught-tls'));
    await renew('caught-tls');
    const hand = await waitForHash('deployment', 'caught');

    // Both certificates change while no controller runs.
    expect(await controller.stop()).toBe(0);
    const handNow = await replaceByHand('caught-tls');
    await replaceByHand('fresh-tls');
    await startController();

    const caughtUp = await waitFor('caught to carry the new hash', async () => {
      const d = await readWorkload('deployment', 'caught');
      return hashOf(d) !== hashOf(hand) ? d : undefined;
    });
    expect(hashOf(caughtUp)).toBe(
      certificateHash([{ name: 'caught-tls', fingerprint: fingerprintOf(handNow) }]),
    );
    expect(caughtUp.metadata?.generation).toBe((hand.metadata?.generation ?? 0) + 1);
    // A live change after the restart is patched after the debounce; 'fresh' saw none.
    await managedSecret('probe2-tls');
    await createWorkload('deployment', 'probe2', mount('probe2-tls'));
    await renew('probe2-tls');
    await waitForHash('deployment', 'probe2');
    const fresh = await readWorkload('deployment', 'fresh');
    expect(hashOf(fresh)).toBeUndefined();
    expect(fresh.metadata?.generation).toBe(gFresh);
    expect(restartLogs(controller, `deployment/${ns()}/caught`)).toHaveLength(1);
  });

  it('a controller killed during the debounce leaves the restart owed on the Secret: the next one rolls it once', async () => {
    // A never-patched Deployment: without the record, a new process would never restart it.
    expect(await controller.stop()).toBe(0);
    await startController(slowConfigPath);
    await managedSecret('owed-tls');
    await createWorkload('deployment', 'owed', mount('owed-tls'));
    const g0 = (await readWorkload('deployment', 'owed')).metadata?.generation ?? 0;
    await renew('owed-tls');
    const renewed = await waitForRevision('owed-tls', '1');
    expect(renewed.metadata?.annotations?.['status.cert-rotator.io/restart-owed']).toBe(
      fingerprintOf(renewed),
    );
    await controller.kill(); // inside the 15 s debounce: nothing patched yet
    expect(hashOf(await readWorkload('deployment', 'owed'))).toBeUndefined();

    await startController();
    const rolled = await waitForHash('deployment', 'owed');
    expect(hashOf(rolled)).toBe(certificateHash([{ name: 'owed-tls', fingerprint: fingerprintOf(renewed) }]));
    expect(rolled.metadata?.generation).toBe(g0 + 1);
    await waitFor('the owed record to be cleared', async () => {
      const s = await core.readNamespacedSecret({ namespace: ns(), name: 'owed-tls' });
      return s.metadata?.annotations?.['status.cert-rotator.io/restart-owed'] === undefined
        ? true
        : undefined;
    });
    // Once: a later restart of the controller finds nothing owed and patches nothing.
    expect(await controller.stop()).toBe(0);
    await startController();
    await managedSecret('owed-probe-tls');
    await createWorkload('deployment', 'owed-probe', mount('owed-probe-tls'));
    await renew('owed-probe-tls');
    await waitForHash('deployment', 'owed-probe');
    expect((await readWorkload('deployment', 'owed')).metadata?.generation).toBe(g0 + 1);
    expect(restartLogs(controller, `deployment/${ns()}/owed`)).toHaveLength(0);
  });
});
