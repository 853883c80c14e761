import { describe, expect, it } from 'vitest';
import type { SecretRecord } from '../../../src/controller/record.ts';
import { certificateHash } from '../../../src/rollout/hash.ts';
import { enterPhase, phaseNumber, readState } from '../../../src/rollover/state.ts';
import { propagation, rolledOut, type Workload } from '../../../src/rollover/workloads.ts';

const record = (name: string, annotations: Record<string, string> = {}): SecretRecord =>
  ({
    namespace: 'n',
    name,
    uid: 'u',
    resourceVersion: '1',
    annotations: { 'cert-rotator.io/enabled': 'true', ...annotations },
    managed: true,
    cert: { serialHex: `serial-${name}`, spkiSha256: 'spki' },
  }) as unknown as SecretRecord;

function deployment(
  name: string,
  secret: string,
  opts: { hash?: string; ready?: number; optOut?: boolean } = {},
): Workload {
  return {
    kind: 'deployment',
    object: {
      metadata: {
        name,
        namespace: 'n',
        generation: 2,
        ...(opts.optOut ? { annotations: { 'cert-rotator.io/restart': 'false' } } : {}),
      },
      spec: {
        replicas: 1,
        selector: {},
        template: {
          metadata: opts.hash ? { annotations: { 'cert-rotator.io/certificate-hash': opts.hash } } : {},
          spec: { containers: [], volumes: [{ name: 'v', secret: { secretName: secret } }] },
        },
      },
      status: { observedGeneration: 2, replicas: 1, updatedReplicas: 1, readyReplicas: opts.ready ?? 1 },
    },
  };
}

describe('Propagate: which workloads have rolled out to the new trust', () => {
  const widened = record('a', { 'status.cert-rotator.io/trust-baseline': 'old' });
  const withCa = { ...widened, caDigest: 'both' };
  const managed = new Map([
    ['n/a', withCa],
    ['n/none', record('none', { 'cert-rotator.io/restart': 'none' })],
  ]);
  const issued = new Set(['n/a', 'n/none']);
  const expected = certificateHash([{ name: 'a', fingerprint: 'serial-a:spki/ca:both' }]);

  it('rolled = the template carries the hash of the new trust and every replica is updated and ready', () => {
    const r = propagation(
      [
        deployment('done', 'a', { hash: expected }),
        deployment('old-hash', 'a', { hash: certificateHash([{ name: 'a', fingerprint: 'serial-a:spki' }]) }),
        deployment('not-ready', 'a', { hash: expected, ready: 0 }),
        deployment('opted-out', 'a', { optOut: true }),
        deployment('restart-none', 'none'),
        deployment('unrelated', 'other'),
      ],
      issued,
      managed,
      'auto',
    );
    expect(r.rolled).toEqual(['deployment/n/done']);
    expect(r.pending).toEqual(['deployment/n/old-hash', 'deployment/n/not-ready']);
    expect(r.unconfirmed).toEqual(['deployment/n/opted-out', 'deployment/n/restart-none']);
  });

  it('a Deployment with an old pod still terminating has not rolled out: it still serves the old files', () => {
    const w = deployment('x', 'a', { hash: expected });
    expect(rolledOut(w)).toBe(true);
    if (w.kind === 'deployment' && w.object.status) w.object.status.terminatingReplicas = 1;
    expect(rolledOut(w)).toBe(false);
  });

  it('a workload whose controller has not observed the latest generation has not rolled out', () => {
    const w = deployment('x', 'a');
    if (w.kind === 'deployment' && w.object.status) w.object.status.observedGeneration = 1;
    expect(rolledOut(w)).toBe(false);
  });
});

describe('the rollover state on the CA Secret', () => {
  it('enters and leaves phases; unknown values read as none', () => {
    const now = Date.UTC(2030, 0, 1);
    const trust = enterPhase({ other: 'kept' }, 'Trust', now);
    expect(readState(trust)).toMatchObject({ phase: 'Trust', since: now, started: '2030-01-01T00:00:00Z' });
    const reissue = enterPhase(trust, 'Reissue', now + 5000);
    expect(readState(reissue)).toMatchObject({
      phase: 'Reissue',
      since: now + 5000,
      started: '2030-01-01T00:00:00Z',
    });
    const done = enterPhase(reissue, undefined, now + 9000);
    expect(done).toEqual({ other: 'kept' });
    expect(readState({ 'status.cert-rotator.io/ca-rollover-phase': 'Bogus' }).phase).toBeUndefined();
    expect(
      [undefined, 'Trust', 'Propagate', 'Reissue', 'Retire'].map((p) => phaseNumber(p as never)),
    ).toEqual([0, 1, 2, 3, 4]);
    expect(
      readState({ 'cert-rotator.io/rollover-paused': 'true', 'cert-rotator.io/next-ca': ' n ' }),
    ).toMatchObject({
      paused: true,
      next: 'n',
    });
  });
});
