import type * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { decodeData, failedSecret, renewedSecret } from '../../../src/controller/secret-body.ts';

const fresh: k8s.V1Secret = {
  metadata: {
    name: 's',
    namespace: 'n',
    resourceVersion: '7',
    managedFields: [{ manager: 'x' }],
    annotations: {
      'cert-rotator.io/enabled': 'true',
      'cert-rotator.io/revision': '4',
      'cert-rotator.io/failures': '2',
      'cert-rotator.io/last-error': 'boom',
      'status.cert-rotator.io/last-failure-time': '2030-01-01T00:00:00.000Z',
      'status.cert-rotator.io/next-attempt-time': '2030-01-01T00:05:00.000Z',
      other: 'kept',
    },
  },
  type: 'kubernetes.io/tls',
  data: { 'tls.crt': 'b2xk', 'tls.key': 'b2xk', extra: 'ZXh0cmE=' },
};

describe('renewedSecret', () => {
  it('replaces the three keys, keeps other data and annotations, counts the revision, clears the failure state', () => {
    const now = Date.UTC(2030, 0, 2);
    const body = renewedSecret(
      fresh,
      { 'tls.crt': 'CERT', 'tls.key': 'KEY', 'ca.crt': 'CA' },
      { notAfter: now + 1000, renewalTime: now + 500, now, requestHandled: 'token' },
    );
    expect(body.metadata?.resourceVersion).toBe('7'); // the guard
    expect(body.metadata?.managedFields).toBeUndefined();
    expect(decodeData(body.data?.['tls.crt'])).toBe('CERT');
    expect(body.data?.extra).toBe('ZXh0cmE=');
    const a = body.metadata?.annotations ?? {};
    expect(a['cert-rotator.io/revision']).toBe('5');
    expect(a['cert-rotator.io/state']).toBe('Ready');
    expect(a['cert-rotator.io/last-renewed']).toBe('2030-01-02T00:00:00Z');
    expect(a['status.cert-rotator.io/renew-request-handled']).toBe('token');
    expect(a.other).toBe('kept');
    for (const gone of [
      'cert-rotator.io/failures',
      'cert-rotator.io/last-error',
      'status.cert-rotator.io/last-failure-time',
      'status.cert-rotator.io/next-attempt-time',
    ])
      expect(a[gone]).toBeUndefined();
    expect(fresh.metadata?.annotations?.['cert-rotator.io/revision']).toBe('4'); // input untouched
  });

  it('a revision that is not a number starts over at 1; no request handled leaves the annotation alone', () => {
    const odd = {
      ...fresh,
      metadata: { ...fresh.metadata, annotations: { 'cert-rotator.io/revision': 'x' } },
    };
    const body = renewedSecret(odd, {}, { notAfter: 0, renewalTime: 0, now: 0 });
    expect(body.metadata?.annotations?.['cert-rotator.io/revision']).toBe('1');
    expect(body.metadata?.annotations?.['status.cert-rotator.io/renew-request-handled']).toBeUndefined();
  });
});

describe('failedSecret', () => {
  it('writes state, a bounded last-error, failures and last-failure-time, and leaves the data as it was', () => {
    const now = Date.UTC(2030, 0, 3, 4, 5, 6, 789);
    const body = failedSecret(fresh, 'x'.repeat(2000), 3, now, undefined, now + 900_000);
    expect(body.data).toEqual(fresh.data);
    const a = body.metadata?.annotations ?? {};
    expect(a['cert-rotator.io/state']).toBe('Failed');
    expect(a['cert-rotator.io/last-error']).toHaveLength(512);
    expect(a['cert-rotator.io/failures']).toBe('3');
    expect(a['status.cert-rotator.io/last-failure-time']).toBe('2030-01-03T04:05:06.789Z');
    expect(a['status.cert-rotator.io/next-attempt-time']).toBe('2030-01-03T04:20:06.789Z');
  });
});

describe('decodeData', () => {
  it('decodes base64 as UTF-8 and treats absent as empty', () => {
    expect(decodeData(Buffer.from('häl').toString('base64'))).toBe('häl');
    expect(decodeData(undefined)).toBe('');
  });
});

describe('renewedSecret records the trust written with the leaf', async () => {
  const { trustDigest } = await import('../../../src/controller/secret-body.ts');
  it('sets trust-baseline to the digest of the new ca.crt, and leaves it alone when ca.crt is not written', () => {
    const now = Date.UTC(2030, 0, 2);
    const status = { notAfter: now + 1000, renewalTime: now + 500, now };
    const body = renewedSecret(fresh, { 'tls.crt': 'C', 'tls.key': 'K', 'ca.crt': 'CA1' }, status);
    const baseline = body.metadata?.annotations?.['status.cert-rotator.io/trust-baseline'];
    expect(baseline).toBe(trustDigest(Buffer.from('CA1').toString('base64')));
    expect(baseline).toMatch(/^[0-9a-f]{32}$/);
    const other = renewedSecret(fresh, { 'tls.crt': 'C', 'tls.key': 'K', 'ca.crt': 'CA2' }, status);
    expect(other.metadata?.annotations?.['status.cert-rotator.io/trust-baseline']).not.toBe(baseline);
    const noCa = renewedSecret(fresh, { 'tls.crt': 'C', 'tls.key': 'K' }, status);
    expect(noCa.metadata?.annotations?.['status.cert-rotator.io/trust-baseline']).toBeUndefined();
  });
});
