import { describe, expect, it } from 'vitest';
import { certificateHash } from '../../../src/rollout/hash.ts';
import { secretsReferencedBy } from '../../../src/rollout/references.ts';
import { WorkloadIndex, type WorkloadObject } from '../../../src/rollout/workload-index.ts';

function workload(
  name: string,
  podSpec: unknown,
  extra: { annotations?: Record<string, string>; paused?: boolean; hash?: string; rv?: string } = {},
  namespace = 'apps',
): WorkloadObject {
  return {
    metadata: {
      namespace,
      name,
      uid: `uid-${name}`,
      resourceVersion: extra.rv ?? '1',
      generation: 1,
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    },
    spec: {
      ...(extra.paused !== undefined ? { paused: extra.paused } : {}),
      template: {
        metadata: extra.hash ? { annotations: { 'cert-rotator.io/certificate-hash': extra.hash } } : {},
        spec: podSpec,
      },
    },
  };
}

describe('secretsReferencedBy', () => {
  it('finds volumes, projected sources, env, envFrom in containers and init containers', () => {
    const spec = {
      volumes: [
        { name: 'a', secret: { secretName: 'vol' } },
        { name: 'b', projected: { sources: [{ secret: { name: 'proj' } }, { configMap: { name: 'cm' } }] } },
        { name: 'c', configMap: { name: 'not-a-secret' } },
      ],
      containers: [
        {
          name: 'app',
          env: [
            { name: 'X', valueFrom: { secretKeyRef: { name: 'env', key: 'k' } } },
            { name: 'Y', valueFrom: { configMapKeyRef: { name: 'cm2', key: 'k' } } },
            { name: 'Z', value: 'plain' },
          ],
          envFrom: [{ secretRef: { name: 'envfrom' } }, { configMapRef: { name: 'cm3' } }],
        },
      ],
      initContainers: [{ name: 'init', envFrom: [{ secretRef: { name: 'init' } }] }],
    };
    expect(secretsReferencedBy(spec)).toEqual(['env', 'envfrom', 'init', 'proj', 'vol']);
  });

  it('de-duplicates and ignores malformed or empty entries without throwing', () => {
    expect(
      secretsReferencedBy({
        volumes: [
          null,
          3,
          { secret: { secretName: '' } },
          { secret: { secretName: 'x' } },
          { projected: 'no' },
        ],
        containers: 'nope',
        initContainers: [{ env: [{ valueFrom: { secretKeyRef: { name: 'x' } } }] }],
      }),
    ).toEqual(['x']);
    expect(secretsReferencedBy(undefined)).toEqual([]);
    expect(secretsReferencedBy([])).toEqual([]);
  });
});

describe('WorkloadIndex', () => {
  it('answers which workloads use a Secret, per namespace, and follows template changes', () => {
    const index = new WorkloadIndex();
    index.upsert('deployment', workload('web', { volumes: [{ secret: { secretName: 'tls' } }] }));
    index.upsert(
      'statefulset',
      workload('db', { containers: [{ envFrom: [{ secretRef: { name: 'tls' } }] }] }),
    );
    index.upsert(
      'deployment',
      workload('web', { volumes: [{ secret: { secretName: 'tls' } }] }, {}, 'other'),
    );
    expect(index.usersOf('apps', 'tls').sort()).toEqual(['deployment/apps/web', 'statefulset/apps/db']);
    expect(index.usersOf('other', 'tls')).toEqual(['deployment/other/web']);
    expect(index.usersOf('apps', 'nothing')).toEqual([]);

    // The template stops using tls and uses tls2 instead.
    index.upsert(
      'deployment',
      workload('web', { volumes: [{ secret: { secretName: 'tls2' } }] }, { rv: '2' }),
    );
    expect(index.usersOf('apps', 'tls')).toEqual(['statefulset/apps/db']);
    expect(index.usersOf('apps', 'tls2')).toEqual(['deployment/apps/web']);
    expect(index.get('deployment/apps/web')?.resourceVersion).toBe('2');

    index.remove('statefulset', 'apps', 'db');
    expect(index.usersOf('apps', 'tls')).toEqual([]);
    expect(index.secretCount).toBe(2); // apps/tls2, other/tls
    expect(index.size).toBe(2);
  });

  it('keeps only the fields the guards read: hash, opt-out, paused (Deployments only)', () => {
    const index = new WorkloadIndex();
    const r = index.upsert(
      'deployment',
      workload('web', {}, { annotations: { 'cert-rotator.io/restart': 'false' }, paused: true, hash: 'abc' }),
    );
    expect(r?.previous).toBeUndefined();
    expect(r?.entry).toMatchObject({
      kind: 'deployment',
      namespace: 'apps',
      name: 'web',
      uid: 'uid-web',
      hash: 'abc',
      optedOut: true,
      paused: true,
      secrets: [],
    });
    // paused means nothing on a StatefulSet; "true" is not an opt-out.
    const sts = index.upsert(
      'statefulset',
      workload('db', {}, { annotations: { 'cert-rotator.io/restart': 'true' }, paused: true }),
    );
    expect(sts?.entry).toMatchObject({ optedOut: false, paused: false, hash: undefined });
    const again = index.upsert('deployment', workload('web', {}, { paused: false }));
    expect(again?.previous?.paused).toBe(true);
    expect(again?.entry.paused).toBe(false);
    expect(again?.entry.optedOut).toBe(false);
  });

  it('ignores objects without a name or namespace', () => {
    const index = new WorkloadIndex();
    expect(index.upsert('deployment', { metadata: { name: 'x' } })).toBeUndefined();
    expect(index.size).toBe(0);
  });
});

describe('certificateHash', () => {
  it('depends on the set of certificates, not on their order', () => {
    const a = { name: 'a', fingerprint: '01:aa' };
    const b = { name: 'b', fingerprint: '02:bb' };
    expect(certificateHash([a, b])).toBe(certificateHash([b, a]));
    expect(certificateHash([a, b])).toMatch(/^[0-9a-f]{32}$/);
  });

  it('changes when any certificate, or which Secret holds it, changes', () => {
    const base = certificateHash([
      { name: 'a', fingerprint: '01:aa' },
      { name: 'b', fingerprint: '02:bb' },
    ]);
    expect(
      certificateHash([
        { name: 'a', fingerprint: '01:aa' },
        { name: 'b', fingerprint: '03:bb' },
      ]),
    ).not.toBe(base);
    expect(certificateHash([{ name: 'a', fingerprint: '01:aa' }])).not.toBe(base);
    expect(
      certificateHash([
        { name: 'b', fingerprint: '01:aa' },
        { name: 'a', fingerprint: '02:bb' },
      ]),
    ).not.toBe(base);
  });
});
