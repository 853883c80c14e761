import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/clock.ts';
import { WebhookNotifier } from '../../../src/notify/webhook.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { waitFor } from '../../testenv/net.ts';

const log = createLogger({ level: 'silent' });
const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A loopback receiver that answers `statuses` in turn (then 200) and keeps every body. */
async function receiver(statuses: number[] = []) {
  const bodies: Array<{ path: string | undefined; body: unknown }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
    });
    req.on('end', () => {
      bodies.push({ path: req.url, body: JSON.parse(body) });
      res.writeHead(statuses.shift() ?? 200).end();
    });
  });
  const port = await new Promise<number>((r) =>
    server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)),
  );
  closers.push(() => server.close());
  return { url: `http://127.0.0.1:${port}`, bodies };
}

const alert = (secret: string) => ({ labels: { alertname: 'X', secret }, annotations: {} });
type Wire = Array<{ labels: { secret: string }; startsAt: string; endsAt: string }>;

describe('WebhookNotifier', () => {
  it('posts Alertmanager v2 alerts, retries a failing receiver with backoff, then resolves with endsAt now', async () => {
    const r = await receiver([500, 503]);
    const attempts: boolean[] = [];
    const n = new WebhookNotifier({
      webhooks: [{ name: 'am', url: `${r.url}/`, format: 'alertmanager', timeoutMs: 2_000 }],
      resendIntervalMs: 60_000,
      clock: systemClock,
      log,
      retryBaseMs: 10,
      onAttempt: (_w, ok) => attempts.push(ok),
    });
    const t0 = Date.now();
    n.fire('a', alert('a'));
    await waitFor('the delivery after two failures', () => attempts.length >= 3 || undefined, {
      timeoutMs: 5_000,
      intervalMs: 5,
    });
    expect(attempts).toEqual([false, false, true]);
    const first = r.bodies[2];
    expect(first?.path).toBe('/api/v2/alerts');
    const sent = first?.body as Wire;
    expect(sent[0]?.labels.secret).toBe('a');
    expect(Date.parse(sent[0]?.endsAt ?? '') - t0).toBeGreaterThan(170_000); // 3 × resend ahead
    n.resolve('a');
    await waitFor('the resolution', () => r.bodies.length >= 4 || undefined, {
      timeoutMs: 5_000,
      intervalMs: 5,
    });
    const resolved = ((r.bodies[3]?.body ?? []) as Wire)[0];
    expect(Date.parse(resolved?.endsAt ?? '')).toBeLessThanOrEqual(Date.now());
    expect(n.firing()).toEqual([]);
    await n.stop();
  });

  it('never waits on the receiver in fire() and keeps its queue bounded while the receiver is down', async () => {
    const dropped: number[] = [];
    const n = new WebhookNotifier({
      webhooks: [{ name: 'down', url: 'http://127.0.0.1:9/', format: 'json', timeoutMs: 200 }],
      resendIntervalMs: 60_000,
      clock: systemClock,
      log,
      maxQueued: 10,
      retryBaseMs: 60_000,
      onDropped: (_w, k) => dropped.push(k),
    });
    for (let i = 0; i < 100; i++) n.fire(`k${i}`, alert(`s${i}`));
    // All 100 calls returned before a single delivery attempt could finish.
    expect(dropped.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(89);
    expect(n.firing()).toHaveLength(100);
    await n.stop();
  });

  it('sends plain JSON with a status per alert', async () => {
    const r = await receiver();
    const n = new WebhookNotifier({
      webhooks: [{ name: 'json', url: `${r.url}/hook`, format: 'json', timeoutMs: 2_000 }],
      resendIntervalMs: 60_000,
      clock: systemClock,
      log,
    });
    n.fire('a', alert('a'));
    await waitFor('the post', () => r.bodies.length >= 1 || undefined, { timeoutMs: 5_000, intervalMs: 5 });
    expect(r.bodies[0]).toMatchObject({
      path: '/hook',
      body: {
        receiver: 'json',
        source: 'cert-rotator',
        alerts: [{ status: 'firing', labels: { secret: 'a' } }],
      },
    });
    await n.stop();
  });
});
