/**
 * ClusterMonitor's bookkeeping with a scripted transport (the API server itself is in
 * test/integration/monitor.test.ts): events held while standing by, and a slow keystore password
 * read that must not bring back the series of an object deleted meanwhile.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';
import type { KubeTransport } from '../../../src/kube/http/transport.ts';
import { ClusterMonitor } from '../../../src/monitor/cluster-monitor.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { Registry } from '../../../src/observability/prom.ts';
import { waitFor } from '../../testenv/net.ts';

const p12 = readFileSync(new URL('fixtures/modern.p12', import.meta.url)).toString('base64');
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Lists `items` once; the watch delivers what `push` sends until stopped. */
function scriptedTransport(items: unknown[]) {
  let send: ((type: string, o: unknown) => void) | undefined;
  const transport: KubeTransport = {
    async request() {
      return { metadata: { resourceVersion: '1' }, items } as never;
    },
    watch(_path, _query, onEvent, signal) {
      send = onEvent;
      return new Promise((resolve) => signal.addEventListener('abort', () => resolve()));
    },
  };
  return {
    transport,
    push: (type: string, o: unknown) => send?.(type, o),
    watching: () => send !== undefined,
  };
}

const secret = (name: string, data: Record<string, string>, rv = '1') => ({
  metadata: { namespace: 'a', name, uid: `uid-${name}`, resourceVersion: rv },
  type: 'Opaque',
  data,
});

describe('ClusterMonitor', () => {
  it('holds the event of a problem found while standing by and writes it on leading()', async () => {
    const { transport } = scriptedTransport([secret('ks', { 'k.p12': p12, password: b64('wrong') })]);
    const recorded: string[] = [];
    let leader = false;
    const registry = new Registry();
    const m = new ClusterMonitor({
      transport,
      config: loadConfig('monitoring: { keystores: { enabled: true, password: { key: password } } }')
        .monitoring,
      registry,
      log: createLogger({ level: 'silent' }),
      events: {
        record: async (ref, _t, reason, message) => void recorded.push(`${ref.name} ${reason} ${message}`),
      },
      isLeader: () => leader,
    });
    m.start();
    await waitFor('the list', () => m.synced() || undefined);
    expect(await registry.metrics()).toContain(
      'cert_rotator_x509_read_errors{source="keystore",namespace="a",name="ks",key="k.p12",reason="wrong-password"} 1',
    );
    expect(recorded).toEqual([]);
    leader = true;
    m.leading();
    expect(recorded).toEqual([
      'ks CertificateUnreadable certificates cannot be read: k.p12: the PKCS#12 integrity check failed: wrong password',
    ]);
    m.leading();
    expect(recorded).toHaveLength(1);
    m.stop();
  });

  it('drops a slow password read for an object deleted meanwhile', async () => {
    const { transport, push, watching } = scriptedTransport([]);
    let release: (v: string) => void = () => undefined;
    const m = new ClusterMonitor({
      transport,
      config: loadConfig(
        'monitoring: { keystores: { enabled: true, password: { secret: { namespace: ops, name: pw, key: k } } } }',
      ).monitoring,
      registry: new Registry(),
      log: createLogger({ level: 'silent' }),
      readSecretValue: () => new Promise((r) => (release = r)),
    });
    m.start();
    await waitFor('the watch', () => watching() || undefined);
    push('ADDED', secret('ks', { 'k.p12': p12 }, '2'));
    push('DELETED', secret('ks', { 'k.p12': p12 }, '3'));
    release('s3cret');
    await new Promise((r) => setTimeout(r, 20));
    expect(m.all()).toEqual([]);
    push('ADDED', secret('ks2', { 'k.p12': p12 }, '4'));
    await waitFor('the second keystore', () => m.all().length === 1 || undefined);
    expect(m.all()[0]?.certs).toHaveLength(3);
    m.stop();
  });
});
