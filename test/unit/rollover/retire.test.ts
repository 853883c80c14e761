import type * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';
import { fingerprintOf, rolloutFingerprint } from '../../../src/controller/listener.ts';
import { recordFromSecret } from '../../../src/controller/record.ts';
import { Metrics } from '../../../src/observability/metrics.ts';

import { generateKey, issueCertificate } from '../../../src/pki/index.ts';
import { certificateHash } from '../../../src/rollout/hash.ts';
import { CaRollover } from '../../../src/rollover/rollover.ts';
import { makeTestCA } from '../../testenv/tls-fixtures.ts';

/**
 * Retire against a FAKE API (an in-memory Secret store and one Deployment): the old CA leaves the
 * trust only once the workloads cert-rotator restarts have rolled out to their re-issued leaves.
 * On the node (test/e2e/ca-rollover.test.ts), narrowing while a Deployment still rolled to its new
 * leaf failed every handshake between its old pods and a peer whose sidecar reloaded at once.
 */
const b64 = (t: string) => Buffer.from(t).toString('base64');
const DAY = 86_400_000;
const PHASE = 'status.cert-rotator.io/ca-rollover-phase';

async function setup(onMaxWait: 'hold' | 'continue') {
  const old = await makeTestCA('old CA');
  const next = await makeTestCA('new CA');
  const secrets = new Map<string, k8s.V1Secret>();
  let rv = 1;
  const put = (s: k8s.V1Secret) => {
    const copy = structuredClone(s);
    copy.metadata = { ...copy.metadata, resourceVersion: String(rv++) };
    secrets.set(copy.metadata.name ?? '', copy);
  };
  put({
    metadata: {
      name: 'ca',
      namespace: 'n',
      annotations: {
        [PHASE]: 'Retire',
        'status.cert-rotator.io/ca-rollover-phase-since': '2030-01-01T00:00:00Z',
        'status.cert-rotator.io/ca-rollover-started': '2029-12-31T00:00:00Z',
      },
    },
    data: {
      'tls.crt': b64(next.certPem),
      'tls.key': b64(next.keyPem),
      'previous.crt': b64(old.certPem),
      'previous.key': b64(old.keyPem),
    },
  });
  // The leaf already re-issued by the new CA; ca.crt still trusts both.
  const keyPem = (await generateKey('ecdsa-p256')).privateKeyPem;
  const leaf = await issueCertificate({
    subjectKeyPem: keyPem,
    identity: { dnsNames: ['web.example.com'], ipAddresses: [], uris: [] },
    notBefore: Date.now() - DAY,
    notAfter: Date.now() + 30 * DAY,
    issuer: { certPem: next.certPem, keyPem: next.keyPem },
  });
  put({
    metadata: { name: 'web-tls', namespace: 'n', annotations: { 'cert-rotator.io/enabled': 'true' } },
    type: 'kubernetes.io/tls',
    data: {
      'tls.crt': b64(leaf.chainPem),
      'tls.key': b64(keyPem),
      'ca.crt': b64(next.certPem + old.certPem),
    },
  });
  const record = recordFromSecret(secrets.get('web-tls') as k8s.V1Secret);
  if (!record.cert) throw new Error('the leaf should parse');
  const rolledHash = certificateHash([
    { name: 'web-tls', fingerprint: rolloutFingerprint(record, fingerprintOf(record.cert)) },
  ]);
  // Its Deployment: the rollout manager has not yet written the new leaf's hash.
  const web: k8s.V1Deployment = {
    metadata: { name: 'web', namespace: 'n', generation: 3 },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: {
          labels: { app: 'web' },
          annotations: { 'cert-rotator.io/certificate-hash': 'the old leaf' },
        },
        spec: { containers: [], volumes: [{ name: 'tls', secret: { secretName: 'web-tls' } }] },
      },
    },
    status: { observedGeneration: 3, replicas: 2, updatedReplicas: 2, readyReplicas: 2 },
  };
  const core = {
    readNamespacedSecret: async ({ name }: { name: string }) => {
      const s = secrets.get(name);
      if (!s) throw Object.assign(new Error('not found'), { code: 404 });
      return structuredClone(s);
    },
    listNamespacedSecret: async () => ({ items: [...secrets.values()].map((s) => structuredClone(s)) }),
    replaceNamespacedSecret: async ({ name, body }: { name: string; body: k8s.V1Secret }) => {
      if (secrets.get(name)?.metadata?.resourceVersion !== body.metadata?.resourceVersion)
        throw Object.assign(new Error('conflict'), { code: 409 });
      put(body);
      return secrets.get(name);
    },
  };
  const apps = {
    listNamespacedDeployment: async () => ({ items: [structuredClone(web)] }),
    listNamespacedStatefulSet: async () => ({ items: [] }),
    listNamespacedDaemonSet: async () => ({ items: [] }),
  };
  const config = loadConfig(`namespaces: [n]
defaults: { issuer: c }
issuers: [{ name: c, ca: { secret: { namespace: n, name: ca }, rollover: { retireAfter: 5s, maxWait: 10m, onMaxWait: ${onMaxWait} } } }]
`);
  const issuer = config.issuers[0];
  if (issuer?.kind !== 'ca') throw new Error('ca issuer expected');
  let now = Date.parse('2030-01-01T00:00:10Z');
  const events: string[] = [];
  const rollover = new CaRollover({
    issuer,
    config,
    clients: { core, apps } as never,
    events: {
      record: async (_ref, type, reason, message) => void events.push(`${type} ${reason}: ${message}`),
    },
    log: pino({ level: 'silent' }),
    metrics: new Metrics({ processMetrics: false }),
    clock: { now: () => now, setTimeout: () => undefined, clearTimeout: () => undefined },
  });
  const caSecret = () => secrets.get('ca') as k8s.V1Secret;
  const rollOut = () => {
    web.metadata = { ...web.metadata, generation: 4 };
    if (web.spec?.template.metadata?.annotations)
      web.spec.template.metadata.annotations['cert-rotator.io/certificate-hash'] = rolledHash;
    web.status = { observedGeneration: 4, replicas: 2, updatedReplicas: 2, readyReplicas: 2 };
  };
  return { rollover, events, caSecret, rollOut, advance: (ms: number) => (now += ms) };
}

describe('Retire waits for the re-issued leaves to be rolled out (fake API)', () => {
  it('past retireAfter, the old CA stays while a Deployment still rolls; it goes once it has rolled out', async () => {
    const t = await setup('hold');
    await t.rollover.look();
    expect(Object.keys(t.caSecret().data ?? {}).sort()).toEqual([
      'previous.crt',
      'previous.key',
      'tls.crt',
      'tls.key',
    ]);
    expect(
      t.caSecret().metadata?.annotations?.['status.cert-rotator.io/ca-rollover-retired'],
    ).toBeUndefined();
    expect(t.events).toEqual([]);

    t.rollOut();
    t.advance(1_000);
    await t.rollover.look();
    expect(Object.keys(t.caSecret().data ?? {}).sort()).toEqual(['tls.crt', 'tls.key']);
    expect(t.caSecret().metadata?.annotations?.['status.cert-rotator.io/ca-rollover-retired']).toBeDefined();
    expect(t.events.at(-1)).toMatch(/^Normal CARolloverPhase: .*the old CA is no longer trusted/);
  });

  it('after maxWait: holds with a Warning naming the Deployment (hold), or retires with one (continue)', async () => {
    const held = await setup('hold');
    held.advance(10 * 60_000);
    await held.rollover.look();
    expect(held.events).toEqual([
      'Warning CARolloverStalled: CA rollover of issuer "c" holds in Retire after maxWait: not rolled out to their re-issued leaves yet: deployment/n/web',
    ]);
    expect(held.caSecret().data?.['previous.crt']).toBeDefined();

    const going = await setup('continue');
    going.advance(10 * 60_000);
    await going.rollover.look();
    expect(going.events[0]).toMatch(
      /^Warning CARolloverStalled: .*retires the old CA after maxWait .*deployment\/n\/web$/,
    );
    expect(going.caSecret().data?.['previous.crt']).toBeUndefined();
  });
});
