import { readFile } from 'node:fs/promises';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.ts';
import { type CoordinationV1Api, makeClients } from '../../src/kube/client.ts';
import { LeaderElector } from '../../src/kube/leader-election.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { hostPortOf, startTcpProxy, type TcpProxy } from '../testenv/tcp-proxy.ts';

const ns = useNamespace(import.meta.url);
let proxy: TcpProxy;
let api: CoordinationV1Api;

/** A clock the test moves by hand: timers fire only when `advance` passes them. */
function manualClock(start: number): Clock & { advance(ms: number): void } {
  let now = start;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = ++seq;
      timers.set(id, { at: now + Math.max(0, ms), fn });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    advance(ms) {
      now += ms;
      for (const [id, t] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (t.at > now) continue;
        timers.delete(id);
        t.fn();
      }
    },
  };
}

beforeAll(async () => {
  const env = testEnv();
  proxy = await startTcpProxy(hostPortOf(env.apiServerUrl));
  const doc = JSON.parse(await readFile(env.kubeconfigPath, 'utf8')) as {
    clusters: Array<{ cluster: { server: string } }>;
  };
  for (const c of doc.clusters) c.cluster.server = `https://${proxy.address}`;
  const kc = new k8s.KubeConfig();
  kc.loadFromString(JSON.stringify(doc));
  // The product's own client: its per-call AbortSignal is what the elector's deadline uses.
  api = makeClients(kc).coordination;
});

afterAll(async () => {
  proxy?.thaw();
  await proxy?.close();
});

describe('LeaderElector against the real API server, on an injected clock', () => {
  it('isLeader() turns false the moment the last renew is renewDeadline old, while the hanging renew is still outstanding; the deadline then aborts it', async () => {
    const clock = manualClock(Date.now());
    let started = 0;
    let stopped = 0;
    const elector = new LeaderElector(api, {
      namespace: ns(),
      name: 'clock-test',
      identity: 'clock-test-identity',
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      log: createLogger({ level: 'silent' }),
      clock,
      onStartedLeading: () => started++,
      onStoppedLeading: () => stopped++,
    });
    elector.start();
    await waitFor('the first acquisition (real API calls)', () => elector.isLeader());
    expect(started).toBe(1);
    expect(elector.state()).toBe('leading');

    // Partition, then the next renew attempt: it hangs on the frozen connection.
    proxy.freeze();
    clock.advance(2_000);
    clock.advance(7_999);
    expect(elector.isLeader()).toBe(true); // 9.999 s after the renew that succeeded
    clock.advance(2);
    // Asked synchronously, before the abort can have been processed: no longer the leader.
    expect(elector.isLeader()).toBe(false);
    expect(elector.state()).toBe('lapsed');
    expect(stopped).toBe(0);
    // The deadline (a timer on the same clock) aborted the hanging call: leadership is given up.
    await waitFor('onStoppedLeading', () => stopped === 1, { timeoutMs: 10_000 });
    expect(elector.state()).toBe('candidate');
    proxy.thaw();
    await elector.stop();
  });
});
