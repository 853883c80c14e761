import type * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';
import { Metrics } from '../../../src/observability/metrics.ts';

import { generateKey, issueCertificate } from '../../../src/pki/index.ts';
import { CaRollover } from '../../../src/rollover/rollover.ts';
import { caSha256, type IssuedRecord } from '../../../src/rollover/signed-leaves.ts';
import { recordedUntil } from '../../../src/signer/issued-ledger.ts';
import { makeTestCA } from '../../testenv/tls-fixtures.ts';

/**
 * Reissue's waves against a FAKE API (an in-memory Secret store with resourceVersion conflicts):
 * the rate limit, one request per Secret per rollover, and the event naming failed Secrets.
 */
const b64 = (t: string) => Buffer.from(t).toString('base64');
const DAY = 86_400_000;

class FakeSecrets {
  readonly items = new Map<string, k8s.V1Secret>();
  puts = 0;
  #rv = 1;
  put(s: k8s.V1Secret) {
    const copy = structuredClone(s);
    copy.metadata = { ...copy.metadata, resourceVersion: String(this.#rv++) };
    this.items.set(copy.metadata.name ?? '', copy);
  }
  readonly core = {
    readNamespacedSecret: async ({ name }: { name: string }) => {
      const s = this.items.get(name);
      if (!s) throw Object.assign(new Error('not found'), { code: 404 });
      return structuredClone(s);
    },
    listNamespacedSecret: async () => ({ items: [...this.items.values()].map((s) => structuredClone(s)) }),
    replaceNamespacedSecret: async ({ name, body }: { name: string; body: k8s.V1Secret }) => {
      const current = this.items.get(name);
      if (current?.metadata?.resourceVersion !== body.metadata?.resourceVersion)
        throw Object.assign(new Error('conflict'), { code: 409 });
      this.puts++;
      this.put(body);
      return this.items.get(name);
    },
    deleteNamespacedSecret: async ({ name }: { name: string }) => {
      this.items.delete(name);
    },
  };
}

/** No Deployments, StatefulSets or DaemonSets (Retire waits for none). */
const noWorkloads = {
  listNamespacedDeployment: async () => ({ items: [] }),
  listNamespacedStatefulSet: async () => ({ items: [] }),
  listNamespacedDaemonSet: async () => ({ items: [] }),
};

async function setup(
  perMinute: number,
  opts: {
    windows?: string;
    phase?: string;
    records?: IssuedRecord[];
    now?: string;
    since?: string;
    forgetCa?: () => void;
  } = {},
) {
  const old = await makeTestCA('old CA');
  const next = await makeTestCA('new CA');
  const fake = new FakeSecrets();
  fake.put({
    metadata: {
      name: 'ca',
      namespace: 'n',
      annotations: {
        'status.cert-rotator.io/ca-rollover-phase': opts.phase ?? 'Reissue',
        'status.cert-rotator.io/ca-rollover-phase-since': opts.since ?? '2030-01-01T00:00:00Z',
        'status.cert-rotator.io/ca-rollover-started': '2029-12-31T00:00:00Z',
      },
    },
    data: { 'tls.crt': b64(next.certPem), 'tls.key': b64(next.keyPem), 'previous.crt': b64(old.certPem) },
  });
  for (let i = 0; i < 5; i++) {
    const keyPem = (await generateKey('ecdsa-p256')).privateKeyPem;
    const leaf = await issueCertificate({
      subjectKeyPem: keyPem,
      identity: { dnsNames: [`s${i}.example.com`], ipAddresses: [], uris: [] },
      notBefore: Date.now() - DAY,
      notAfter: Date.now() + 30 * DAY,
      issuer: { certPem: old.certPem, keyPem: old.keyPem },
    });
    fake.put({
      metadata: { name: `s${i}`, namespace: 'n', annotations: { 'cert-rotator.io/enabled': 'true' } },
      data: { 'tls.crt': b64(leaf.chainPem), 'tls.key': b64(keyPem) },
    });
  }
  const config = loadConfig(`namespaces: [n]
defaults: { issuer: c }
issuers: [{ name: c, ca: { secret: { namespace: n, name: ca }, rollover: { retireAfter: 1m, reissue: { maxPerMinute: ${perMinute}${opts.windows ? `, windows: ${opts.windows}` : ''} } } } }]
`);
  const issuer = config.issuers[0];
  if (issuer?.kind !== 'ca') throw new Error('ca issuer expected');
  let now = Date.parse(opts.now ?? '2030-01-01T00:01:00Z');
  const events: string[] = [];
  const rollover = new CaRollover({
    issuer,
    config,
    clients: { core: fake.core, apps: noWorkloads } as never,
    events: {
      record: async (_ref, type, reason, message) => void events.push(`${type} ${reason}: ${message}`),
    },
    log: pino({ level: 'silent' }),
    metrics: new Metrics({ processMetrics: false }),
    clock: { now: () => now, setTimeout: () => undefined, clearTimeout: () => undefined },
    ...(opts.records ? { issuedRecords: opts.records } : {}),
    ...(opts.forgetCa ? { forgetCa: opts.forgetCa } : {}),
  });
  const asked = () =>
    [...fake.items.values()].filter(
      (s) => s.metadata?.annotations?.['cert-rotator.io/renew-requested-at'] === '2029-12-31T00:00:00Z',
    ).length;
  return { fake, rollover, events, asked, old, advance: (ms: number) => (now += ms) };
}

describe('Reissue waves (fake API)', () => {
  it('just after the switch: waits out the issuer’s CA cache, unless the rollover can make its signers forget the old CA', async () => {
    const justSwitched = { since: '2030-01-01T00:00:58Z', now: '2030-01-01T00:01:00Z' };
    const waiting = await setup(10, justSwitched);
    await waiting.rollover.look();
    expect(waiting.asked()).toBe(0);
    waiting.advance(8_000);
    await waiting.rollover.look();
    expect(waiting.asked()).toBe(5);
    const forgetting = await setup(10, { ...justSwitched, forgetCa: () => {} });
    await forgetting.rollover.look();
    expect(forgetting.asked()).toBe(5);
  });

  it('asks at most maxPerMinute leaves a minute, each once, with the rollover start as token', async () => {
    const t = await setup(2);
    await t.rollover.look();
    expect(t.asked()).toBe(2);
    await t.rollover.look(); // same minute: nothing more, nothing asked twice
    expect(t.asked()).toBe(2);
    const puts = t.fake.puts;
    t.advance(61_000);
    await t.rollover.look();
    expect(t.asked()).toBe(4);
    expect(t.fake.puts).toBe(puts + 2);
    t.advance(61_000);
    await t.rollover.look();
    expect(t.asked()).toBe(5);
  });

  it('a wave whose renewals failed is named in a Warning event; the phase holds', async () => {
    const t = await setup(100);
    await t.rollover.look();
    for (const name of ['s1', 's3']) {
      const s = t.fake.items.get(name);
      if (s?.metadata?.annotations) s.metadata.annotations['cert-rotator.io/state'] = 'Failed';
    }
    await t.rollover.look();
    const warning = t.events.find((e) => e.startsWith('Warning CARolloverStalled'));
    expect(warning).toMatch(/re-issuing failed for n\/s1, n\/s3; Reissue waits for them/);
    expect(t.fake.items.get('ca')?.metadata?.annotations?.['status.cert-rotator.io/ca-rollover-phase']).toBe(
      'Reissue',
    );
  });
});

describe('Reissue maintenance windows (fake API)', () => {
  // Every day 00:10–00:20 UTC; the fake clock starts at 00:01.
  const windows = '[{ cron: "10 0 * * *", duration: 10m }]';

  it('outside every window no renewal is asked; the event says when the next one opens', async () => {
    const t = await setup(2, { windows });
    await t.rollover.look();
    await t.rollover.look();
    expect(t.asked()).toBe(0);
    const waiting = t.events.filter((e) => e.startsWith('Normal CARolloverWaiting'));
    expect(waiting).toEqual([
      expect.stringMatching(
        /Reissue waits for its maintenance window .*5 leaves .* not asked for yet; the next window opens at 2030-01-01T00:10:00.000Z/,
      ),
    ]);
    // Inside the window the rate limit still applies.
    t.advance(9 * 60_000);
    await t.rollover.look();
    expect(t.asked()).toBe(2);
    t.advance(61_000);
    await t.rollover.look();
    expect(t.asked()).toBe(4);
    // Past the window's end: the fifth waits for tomorrow's.
    t.advance(10 * 60_000);
    await t.rollover.look();
    expect(t.asked()).toBe(4);
    expect(t.events.at(-1)).toMatch(/1 leaves .* next window opens at 2030-01-02T00:10:00.000Z/);
  });
});

/** A signer's record over a plain map, read as the controller reads the ConfigMap. */
function ledgerRecord(signer: string, name: string, data: Record<string, string>): IssuedRecord {
  return {
    signer,
    name,
    lastLeafNotAfter: (sha, now) => recordedUntil({ read: async () => ({ data: { ...data } }) }, sha, now),
  };
}

describe("Retire and the signers' records (fake API)", () => {
  const entry = (until: string) => JSON.stringify({ issuer: 'c', lastLeafNotAfter: until, updated: '' });

  it('keeps the old CA and its key until the last leaf a signer issued with it has expired', async () => {
    const recorded: Record<string, string> = { other: entry('2030-02-01T00:00:00Z') };
    const records: IssuedRecord[] = [
      ledgerRecord('the CSR signer', 'cert-rotator-csr-issued', recorded),
      ledgerRecord('the Pod Certificates signer', 'pods-record', {}),
    ];
    // retireAfter (1m) has passed since the phase began at 00:00.
    const t = await setup(100, { phase: 'Retire', now: '2030-01-01T00:05:00Z', records });
    recorded[caSha256(t.old.certPem) ?? ''] = entry('2030-01-01T00:09:00Z');
    const ca = () => t.fake.items.get('ca');
    await t.rollover.look();
    await t.rollover.look();
    expect(ca()?.data?.['previous.crt']).toBeDefined();
    expect(ca()?.data?.['previous.key']).toBeUndefined(); // setup has none; nothing else changed
    expect(ca()?.metadata?.annotations?.['status.cert-rotator.io/ca-rollover-retired']).toBeUndefined();
    expect(t.events).toEqual([
      expect.stringMatching(
        /^Normal CARolloverWaiting: .*Retire keeps the old CA until 2030-01-01T00:09:00.000Z: leaves it signed through the CSR signer \(until 2030-01-01T00:09:00.000Z, ConfigMap cert-rotator-csr-issued\)/,
      ),
    ]);
    t.advance(4 * 60_000 + 1000);
    await t.rollover.look();
    expect(ca()?.data?.['previous.crt']).toBeUndefined();
    expect(ca()?.metadata?.annotations?.['status.cert-rotator.io/ca-rollover-retired']).toBeDefined();
    expect(t.events.at(-1)).toMatch(/no longer trusted and its key is deleted/);
  });

  it("an unreadable entry for the old CA holds Retire (the record is cert-rotator's own)", async () => {
    const recorded: Record<string, string> = {};
    const t = await setup(100, {
      phase: 'Retire',
      now: '2030-01-01T00:05:00Z',
      records: [ledgerRecord('the CSR signer', 'r', recorded)],
    });
    recorded[caSha256(t.old.certPem) ?? ''] = 'garbage';
    await t.rollover.look();
    expect(t.fake.items.get('ca')?.data?.['previous.crt']).toBeDefined();
    expect(t.events[0]).toMatch(/keeps the old CA until its record is readable/);
  });
});
