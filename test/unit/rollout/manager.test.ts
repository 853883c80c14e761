import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { CertificateChange } from '../../../src/controller/controller.ts';
import type { RestartKind } from '../../../src/names.ts';
import { certificateHash } from '../../../src/rollout/hash.ts';
import { type RolloutApi, RolloutManager } from '../../../src/rollout/manager.ts';
import type { WorkloadObject } from '../../../src/rollout/workload-index.ts';
import { leaf } from '../controller/fakes.ts';
import { FakeClock } from '../queue/fake-clock.ts';

const HOUR = 3_600_000;

/** A fake API server holding workloads in memory (the real one is in the integration tests). */
class FakeApi implements RolloutApi {
  readonly objects = new Map<string, WorkloadObject>();
  readonly patches: Array<{ key: string; hash: string }> = [];
  reads = 0;

  put(
    kind: RestartKind,
    name: string,
    secrets: string[],
    hash?: string,
    annotations?: Record<string, string>,
  ) {
    const obj: WorkloadObject = {
      metadata: {
        namespace: 'ns',
        name,
        uid: name,
        resourceVersion: '1',
        generation: 1,
        annotations: annotations ?? {},
      },
      spec: {
        template: {
          metadata: { annotations: hash ? { 'cert-rotator.io/certificate-hash': hash } : {} },
          spec: { volumes: secrets.map((s) => ({ name: s, secret: { secretName: s } })) },
        },
      },
    };
    this.objects.set(`${kind}/${name}`, obj);
    return obj;
  }

  async read(kind: RestartKind, _ns: string, name: string) {
    this.reads++;
    return structuredClone(this.objects.get(`${kind}/${name}`));
  }

  async patch(
    target: { kind: RestartKind; name: string; resourceVersion: string },
    annotations: Record<string, string>,
  ) {
    const obj = this.objects.get(`${target.kind}/${target.name}`);
    if (!obj?.metadata || !obj.spec?.template?.metadata)
      return { ok: false as const, status: 'gone' as const };
    if (obj.metadata.resourceVersion !== target.resourceVersion)
      return { ok: false as const, status: 'conflict' as const };
    const hash = annotations['cert-rotator.io/certificate-hash'] ?? '';
    obj.spec.template.metadata.annotations = { ...obj.spec.template.metadata.annotations, ...annotations };
    obj.metadata.generation = (obj.metadata.generation ?? 0) + 1;
    obj.metadata.resourceVersion = String(Number(obj.metadata.resourceVersion) + 1);
    this.patches.push({ key: `${target.kind}/${target.name}`, hash });
    return { ok: true as const, generation: obj.metadata.generation };
  }

  readonly owedWrites: Array<{ secret: string; fingerprint: string; owed: boolean }> = [];
  async setRestartOwed(namespace: string, name: string, fingerprint: string, owed: boolean) {
    this.owedWrites.push({ secret: `${namespace}/${name}`, fingerprint, owed });
  }

  async readTlsPair(): Promise<{ certPem: string; keyPem: string } | undefined> {
    return undefined;
  }
}

function change(name: string, fingerprint: string, previousFingerprint?: string): CertificateChange {
  return {
    namespace: 'ns',
    name,
    fingerprint,
    ...(previousFingerprint ? { previousFingerprint } : {}),
    policy: { restart: { mode: 'auto' } } as CertificateChange['policy'],
    notBefore: Date.UTC(2030, 0, 1) - HOUR,
    notAfter: Date.UTC(2030, 0, 1) + 100 * HOUR,
    byController: true,
  };
}

function setup(debounceMs = 5_000) {
  const clock = new FakeClock();
  const api = new FakeApi();
  const events: string[] = [];
  const metrics: string[] = [];
  const manager = new RolloutManager({
    api,
    record: async (ref, _type, reason) => {
      events.push(`${ref.kind}/${ref.name}:${reason}`);
    },
    log: pino({ level: 'silent' }),
    metrics: { rollouts: { inc: (l) => metrics.push(`${l.kind}:${l.result}`) } },
    debounceMs,
    secretsSynced: () => true,
    clock,
    secretEventDelayMs: 10,
  });
  manager.start();
  return { clock, api, events, metrics, manager };
}

describe('RolloutManager (fake API)', () => {
  it('several Secrets of one workload changed within the debounce give one patch with the hash of both', async () => {
    const { clock, api, manager } = setup();
    manager.workloadUpserted('deployment', api.put('deployment', 'web', ['a', 'b']));
    manager.certificateChanged(change('a', 'a1'));
    manager.certificateChanged(change('b', 'b1'));
    manager.workloadsSynced();
    await clock.advanceAsync(0);
    manager.certificateChanged(change('a', 'a2', 'a1'));
    await clock.advanceAsync(2_000);
    manager.certificateChanged(change('b', 'b2', 'b1'));
    await clock.advanceAsync(2_999);
    expect(api.patches).toEqual([]);
    await clock.advanceAsync(10_000);
    expect(api.patches).toEqual([
      {
        key: 'deployment/web',
        hash: certificateHash([
          { name: 'a', fingerprint: 'a2' },
          { name: 'b', fingerprint: 'b2' },
        ]),
      },
    ]);
    await manager.stop();
  });

  it('at start-up: never-patched workloads are left alone, current hashes cost no API call, stale ones are patched', async () => {
    const { clock, api, manager } = setup();
    const current = certificateHash([{ name: 'a', fingerprint: 'a1' }]);
    manager.workloadUpserted('deployment', api.put('deployment', 'never', ['a']));
    manager.workloadUpserted('deployment', api.put('deployment', 'current', ['a'], current));
    manager.workloadUpserted('statefulset', api.put('statefulset', 'stale', ['a'], 'old-hash'));
    manager.certificateChanged(change('a', 'a1'));
    manager.workloadsSynced();
    await clock.advanceAsync(60_000);
    expect(api.patches).toEqual([{ key: 'statefulset/stale', hash: current }]);
    expect(api.reads).toBe(0);
    await manager.stop();
  });

  it('a repeated notification, or one that arrives after the hash is in place, patches nothing', async () => {
    const { clock, api, manager } = setup(0);
    manager.workloadUpserted('deployment', api.put('deployment', 'web', ['a']));
    manager.certificateChanged(change('a', 'a1'));
    manager.workloadsSynced();
    manager.certificateChanged(change('a', 'a2', 'a1'));
    await clock.advanceAsync(10);
    expect(api.patches).toHaveLength(1);
    // The watch shows the patched template; the same change reported again restarts nothing.
    manager.workloadUpserted('deployment', api.objects.get('deployment/web') as WorkloadObject);
    manager.certificateChanged(change('a', 'a2', 'a1'));
    await clock.advanceAsync(10);
    expect(api.patches).toHaveLength(1);
    await manager.stop();
  });

  it('opted-out workloads get RolloutSkipped and no patch; changes before the index is ready wait for it', async () => {
    const { clock, api, manager, events, metrics } = setup(0);
    manager.certificateChanged(change('a', 'a1'));
    manager.certificateChanged(change('a', 'a2', 'a1')); // before workloads are listed
    manager.workloadUpserted('deployment', api.put('deployment', 'web', ['a']));
    manager.workloadUpserted(
      'daemonset',
      api.put('daemonset', 'agent', ['a'], undefined, { 'cert-rotator.io/restart': 'false' }),
    );
    manager.workloadsSynced();
    await clock.advanceAsync(100);
    expect(api.patches.map((p) => p.key)).toEqual(['deployment/web']);
    expect(events).toContain('DaemonSet/agent:RolloutSkipped');
    expect(events).toContain('Deployment/web:RolloutTriggered');
    expect(events).toContain('Secret/a:RolloutTriggered');
    expect(metrics.sort()).toEqual(['daemonset:skipped', 'deployment:success']);
    await manager.stop();
  });

  it('a patch that meets a newer object reads it and decides again (here: the workload opted out meanwhile)', async () => {
    const { clock, api, manager, events } = setup(0);
    manager.workloadUpserted('deployment', api.put('deployment', 'web', ['a']));
    manager.certificateChanged(change('a', 'a1'));
    manager.workloadsSynced();
    // Changed on the server after the index saw it; the watch has not delivered it yet.
    const obj = api.objects.get('deployment/web') as WorkloadObject;
    obj.metadata = {
      ...obj.metadata,
      resourceVersion: '5',
      annotations: { 'cert-rotator.io/restart': 'false' },
    };
    manager.certificateChanged(change('a', 'a2', 'a1'));
    await clock.advanceAsync(10);
    expect(api.reads).toBe(1);
    expect(api.patches).toEqual([]);
    expect(events).toContain('Deployment/web:RolloutSkipped');
    await manager.stop();
  });

  it('a restart the Secret records as owed is carried out once by a new process, then the record is cleared', async () => {
    // The previous process renewed 'a' (a1 → a2) and died during the debounce: 'web' never got a hash.
    const { clock, api, manager } = setup(1_000);
    manager.workloadUpserted('deployment', api.put('deployment', 'web', ['a']));
    manager.workloadUpserted('deployment', api.put('deployment', 'other', ['b']));
    manager.certificateChanged({ ...change('a', 'a2'), byController: false, restartOwed: true });
    manager.certificateChanged(change('b', 'b1'));
    manager.workloadsSynced();
    await clock.advanceAsync(5_000);
    expect(api.patches).toEqual([
      { key: 'deployment/web', hash: certificateHash([{ name: 'a', fingerprint: 'a2' }]) },
    ]);
    expect(api.owedWrites).toEqual([{ secret: 'ns/a', fingerprint: 'a2', owed: false }]);
    // The watch shows the cleared record and the patched workload: nothing more happens.
    manager.workloadUpserted('deployment', api.objects.get('deployment/web') as WorkloadObject);
    manager.certificateChanged({ ...change('a', 'a2'), byController: false });
    await clock.advanceAsync(5_000);
    expect(api.patches).toHaveLength(1);
    await manager.stop();
  });

  it('an owed restart of a paused Deployment stays recorded until it is resumed and rolled', async () => {
    const { clock, api, manager } = setup(0);
    const paused = api.put('deployment', 'web', ['a']);
    (paused.spec as { paused?: boolean }).paused = true;
    manager.workloadUpserted('deployment', paused);
    manager.certificateChanged(change('a', 'a1'));
    manager.workloadsSynced();
    manager.certificateChanged({ ...change('a', 'a2', 'a1'), restartOwed: true });
    await clock.advanceAsync(100);
    expect(api.patches).toEqual([]);
    expect(api.owedWrites).toEqual([]);
    const resumed = structuredClone(paused);
    (resumed.spec as { paused?: boolean }).paused = false;
    (resumed.metadata as { resourceVersion?: string }).resourceVersion = '2';
    api.objects.set('deployment/web', resumed);
    manager.workloadUpserted('deployment', resumed);
    await clock.advanceAsync(100);
    expect(api.patches).toHaveLength(1);
    expect(api.owedWrites).toEqual([{ secret: 'ns/a', fingerprint: 'a2', owed: false }]);
    await manager.stop();
  });

  it('a change replaced by hand is recorded as owed before its workloads are queued, and cleared after', async () => {
    const { clock, api, manager } = setup(1_000);
    const pair = await leaf('hand.example.com', -HOUR, 100 * HOUR, clock.now());
    api.readTlsPair = async () => pair;
    manager.workloadUpserted('deployment', api.put('deployment', 'web', ['a']));
    manager.certificateChanged(change('a', 'a1'));
    manager.workloadsSynced();
    manager.certificateChanged({ ...change('a', 'a2', 'a1'), byController: false });
    await clock.advanceAsync(0);
    expect(api.owedWrites).toEqual([{ secret: 'ns/a', fingerprint: 'a2', owed: true }]);
    expect(api.patches).toEqual([]);
    await clock.advanceAsync(5_000);
    expect(api.patches).toHaveLength(1);
    expect(api.owedWrites.at(-1)).toEqual({ secret: 'ns/a', fingerprint: 'a2', owed: false });
    await manager.stop();
  });

  it('a workload queued again during its debounce (e.g. on gaining leadership) still waits for it', async () => {
    const { clock, api, manager } = setup(5_000);
    manager.workloadUpserted('deployment', api.put('deployment', 'web', ['a', 'b']));
    manager.certificateChanged(change('a', 'a1'));
    manager.certificateChanged(change('b', 'b1'));
    manager.workloadsSynced();
    await clock.advanceAsync(0);
    manager.certificateChanged(change('a', 'a2', 'a1'));
    await clock.advanceAsync(1_000);
    manager.replanAll();
    await clock.advanceAsync(1_000);
    expect(api.patches).toEqual([]);
    manager.certificateChanged(change('b', 'b2', 'b1'));
    await clock.advanceAsync(10_000);
    expect(api.patches).toHaveLength(1);
    expect(api.patches[0]?.hash).toBe(
      certificateHash([
        { name: 'a', fingerprint: 'a2' },
        { name: 'b', fingerprint: 'b2' },
      ]),
    );
    await manager.stop();
  });

  it('says whether a new certificate would restart anything (unknown before the workloads are listed: yes)', async () => {
    const { api, manager } = setup(0);
    expect(manager.restartsWorkloads('ns', 'a', { mode: 'auto' })).toBe(true);
    manager.workloadUpserted('deployment', api.put('deployment', 'web', ['a']));
    manager.workloadsSynced();
    expect(manager.restartsWorkloads('ns', 'a', { mode: 'auto' })).toBe(true);
    expect(manager.restartsWorkloads('ns', 'b', { mode: 'auto' })).toBe(false);
    expect(manager.restartsWorkloads('ns', 'a', { mode: 'none' })).toBe(false);
    expect(
      manager.restartsWorkloads('ns', 'b', { mode: 'list', targets: [{ kind: 'deployment', name: 'web' }] }),
    ).toBe(true);
    expect(
      manager.restartsWorkloads('ns', 'b', { mode: 'list', targets: [{ kind: 'statefulset', name: 'web' }] }),
    ).toBe(false);
    await manager.stop();
  });
});
