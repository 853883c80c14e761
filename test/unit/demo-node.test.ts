import { describe, expect, it } from 'vitest';
import { normalSerial, type PodView, podChanges, podLines, servingRenewed } from '../../src/app/demo-node.ts';

const OLD = '00cd1e8c3842088fce';
const NEW = '0f55b4e4447f286d01';
const pod = (name: string, serial?: string, extra: Partial<PodView> = {}): PodView => ({
  name,
  ip: `10.217.0.${name.length}`,
  ready: serial !== undefined,
  terminating: false,
  ...(serial ? { serial: normalSerial(serial) } : {}),
  ...extra,
});

describe('demo on a node: what the pods serve', () => {
  it('compares serials as OpenSSL prints them and DER stores them (leading zero bytes dropped)', () => {
    expect(normalSerial('00CD1E')).toBe('cd1e');
    expect(normalSerial('0f55')).toBe('0f55');
    expect(normalSerial('00')).toBe('00');
  });

  it('reports pods created, serving the first or the renewed certificate, replaced and gone', () => {
    const first = [pod('web-a', OLD), pod('web-b', OLD)];
    expect(podChanges([], first, OLD)).toEqual([
      'pod web-a created',
      `pod web-a (10.217.0.5) Ready, a TLS handshake is served serial ${normalSerial(OLD).slice(0, 16)}… (the first certificate)`,
      'pod web-b created',
      `pod web-b (10.217.0.5) Ready, a TLS handshake is served serial ${normalSerial(OLD).slice(0, 16)}… (the first certificate)`,
    ]);
    const rolling = [pod('web-a', OLD, { terminating: true }), pod('web-b', OLD), pod('web-cc', NEW)];
    expect(podChanges(first, rolling, OLD)).toEqual([
      'pod web-a terminating (replaced)',
      'pod web-cc created',
      `pod web-cc (10.217.0.6) Ready, a TLS handshake is served serial ${NEW.slice(0, 16)}… (the renewed certificate)`,
    ]);
    expect(podChanges(rolling, [pod('web-cc', NEW)], OLD)).toEqual(['pod web-a gone', 'pod web-b gone']);
    expect(podLines([pod('web-x'), pod('web-cc', NEW)], OLD)).toEqual([
      '  pod web-x 10.217.0.5: starting',
      `  pod web-cc 10.217.0.6: Ready, serves ${NEW.slice(0, 16)}… (renewed)`,
    ]);
  });

  it('is done only when every replica is new, Ready and serves the renewed serial', () => {
    const firstPods = new Set(['web-a', 'web-b']);
    expect(servingRenewed([pod('web-c', NEW), pod('web-d', NEW)], firstPods, NEW, 2)).toBe(true);
    expect(servingRenewed([pod('web-c', NEW)], firstPods, NEW, 2)).toBe(false);
    expect(servingRenewed([pod('web-a', NEW), pod('web-d', NEW)], firstPods, NEW, 2)).toBe(false);
    expect(servingRenewed([pod('web-c', NEW), pod('web-d', OLD)], firstPods, NEW, 2)).toBe(false);
    expect(servingRenewed([pod('web-c', NEW), pod('web-d')], firstPods, NEW, 2)).toBe(false);
    // A terminating first pod does not count against it.
    expect(
      servingRenewed(
        [pod('web-a', OLD, { terminating: true }), pod('web-c', NEW), pod('web-d', NEW)],
        firstPods,
        NEW,
        2,
      ),
    ).toBe(true);
  });
});
