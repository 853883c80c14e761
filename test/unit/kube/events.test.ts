import type * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { EventRecorder } from '../../../src/kube/events.ts';

/** A fake of the two CoreV1Api calls the recorder makes: Events kept in a map. */
class FakeEventsClient {
  readonly events = new Map<string, { message: string; count: number }>();
  failCreates = 0;
  creates = 0;
  patches = 0;
  #n = 0;
  async createNamespacedEvent(req: { namespace: string; body: k8s.CoreV1Event }) {
    this.creates++;
    if (this.failCreates > 0) {
      this.failCreates--;
      throw Object.assign(new Error('connection refused'), {});
    }
    const name = `${req.body.metadata?.generateName}${++this.#n}`;
    this.events.set(name, { message: req.body.message ?? '', count: 1 });
    return { ...req.body, metadata: { ...req.body.metadata, name } };
  }
  async patchNamespacedEvent(req: { name: string; body: { count: number; message: string } }) {
    this.patches++;
    const e = this.events.get(req.name);
    if (!e) throw Object.assign(new Error('not found'), { code: 404 });
    e.count = req.body.count;
    e.message = req.body.message;
    return {};
  }
}

const ref = { apiVersion: 'v1', kind: 'Secret', namespace: 'n', name: 's', uid: 'u' };
const T0 = Date.UTC(2030, 0, 1);

function recorder() {
  const client = new FakeEventsClient();
  const r = new EventRecorder(client as unknown as k8s.CoreV1Api, pino({ level: 'silent' }));
  return { client, r };
}

describe('EventRecorder', () => {
  it('the same failure again within 10 minutes counts up on one Event with the latest message', async () => {
    const { client, r } = recorder();
    await r.record(ref, 'Warning', 'RenewalFailed', 'boom (attempt 1; next in 300s)', T0, {
      dedupKey: 'boom',
    });
    await r.record(ref, 'Warning', 'RenewalFailed', 'boom (attempt 2; next in 900s)', T0 + 60_000, {
      dedupKey: 'boom',
    });
    expect([...client.events.values()]).toEqual([{ message: 'boom (attempt 2; next in 900s)', count: 2 }]);
    // Another failure is another Event; after 10 minutes the same one is a new Event too.
    await r.record(ref, 'Warning', 'RenewalFailed', 'other', T0 + 120_000, { dedupKey: 'other' });
    await r.record(ref, 'Warning', 'RenewalFailed', 'boom (attempt 3)', T0 + 11 * 60_000, {
      dedupKey: 'boom',
    });
    expect(client.events.size).toBe(3);
  });

  it('a failed write is not remembered: the next identical Event is written, not suppressed', async () => {
    const { client, r } = recorder();
    client.failCreates = 1;
    await r.record(ref, 'Normal', 'Renewed', 'renewed', T0);
    expect(client.events.size).toBe(0);
    await r.record(ref, 'Normal', 'Renewed', 'renewed', T0 + 1_000);
    expect(client.events.size).toBe(1);
  });

  it('an Event deleted meanwhile is written anew', async () => {
    const { client, r } = recorder();
    await r.record(ref, 'Normal', 'Renewed', 'renewed', T0);
    client.events.clear();
    await r.record(ref, 'Normal', 'Renewed', 'renewed', T0 + 1_000);
    expect([...client.events.values()]).toEqual([{ message: 'renewed', count: 1 }]);
    expect(client.patches).toBe(1);
  });
});
