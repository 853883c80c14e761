import { beforeAll, describe, expect, it } from 'vitest';
import { compactDuration } from '../../src/app/scan-output.ts';
import { rowFromSecret, sortRows } from '../../src/app/scan-rows.ts';
import { loadConfig } from '../../src/config/load.ts';
import { generateKey, issueCertificate } from '../../src/pki/index.ts';

const DAY = 86_400_000;
const b64 = (s: string) => Buffer.from(s).toString('base64');
let pem: { certPem: string; keyPem: string };
/** Fixed clock: a Monday, 10:00 UTC. */
const NOW = Date.parse('2026-11-30T10:00:00Z');

beforeAll(async () => {
  const key = await generateKey('ecdsa-p256');
  const issued = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { dnsNames: ['w.example.com'], ipAddresses: [], uris: [] },
    notBefore: NOW - 25 * DAY,
    notAfter: NOW + 5 * DAY,
    issuer: 'self',
  });
  pem = { certPem: issued.certPem, keyPem: key.privateKeyPem };
});

function secret(name: string, annotations: Record<string, string>) {
  return {
    metadata: { namespace: 'ns', name, annotations: { 'cert-rotator.io/enabled': 'true', ...annotations } },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': b64(pem.certPem), 'tls.key': b64(pem.keyPem) },
  };
}

describe('scan rows come from the controller own decision', () => {
  it('a due certificate inside a window policy waits for the next window start', () => {
    const row = rowFromSecret(
      secret('w', { 'cert-rotator.io/window': '0 2 * * *', 'cert-rotator.io/window-duration': '1h' }),
      loadConfig(''),
      false,
      NOW,
    );
    expect(row).toMatchObject({
      state: 'window-wait',
      plannedRenewal: '2026-12-01T02:00:00.000Z',
      problems: [],
    });
  });

  it('a pending renew-requested-at makes the Secret due now; a handled one does not', () => {
    const config = loadConfig('defaults: { renewBefore: 1d }');
    const calm = rowFromSecret(secret('r', {}), config, false, NOW);
    expect(calm).toMatchObject({ state: 'valid', plannedRenewal: new Date(NOW + 4 * DAY).toISOString() });
    const asked = rowFromSecret(
      secret('r', { 'cert-rotator.io/renew-requested-at': '2026-11-30T09:59:00.000Z' }),
      config,
      false,
      NOW,
    );
    expect(asked).toMatchObject({ state: 'due', plannedRenewal: 'now' });
    const handled = rowFromSecret(
      secret('r', {
        'cert-rotator.io/renew-requested-at': '2026-11-30T09:59:00.000Z',
        'status.cert-rotator.io/renew-request-handled': '2026-11-30T09:59:00.000Z',
      }),
      config,
      false,
      NOW,
    );
    expect(handled).toMatchObject({ state: 'valid' });
  });

  it('a CA Secret in a rollover shows its phase as the controller state (and when paused)', () => {
    const ca = secret('ca', { 'status.cert-rotator.io/ca-rollover-phase': 'Propagate' });
    expect(rowFromSecret(ca, loadConfig(''), false, NOW).controllerState).toBe('CARollover/Propagate');
    const paused = secret('ca', {
      'status.cert-rotator.io/ca-rollover-phase': 'Reissue',
      'cert-rotator.io/rollover-paused': 'true',
    });
    expect(rowFromSecret(paused, loadConfig(''), false, NOW).controllerState).toBe(
      'CARollover/Reissue (paused)',
    );
    expect(rowFromSecret(secret('x', {}), loadConfig(''), false, NOW).controllerState).toBeNull();
  });

  it('sorts rows without a certificate first, then by notAfter', () => {
    const ok = rowFromSecret(secret('b', {}), loadConfig(''), false, NOW);
    const broken = { ...ok, name: 'a', notAfter: null };
    const later = { ...ok, name: 'c', notAfter: new Date(NOW + 9 * DAY).toISOString() };
    expect(sortRows([later, ok, broken]).map((r) => r.name)).toEqual(['a', 'b', 'c']);
  });

  it('formats time left as the largest unit and the next', () => {
    expect([0, 45, 61, 3600, 86_403, -86_403, 2_591_999].map(compactDuration)).toEqual([
      '0s',
      '45s',
      '1m1s',
      '1h0m',
      '1d0h',
      '-1d0h',
      '29d23h',
    ]);
  });
});
