import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { SecretRecord } from '../../../src/controller/record.ts';
import { SuggestedRenewals } from '../../../src/controller/suggestions.ts';
import type { Issuer, SuggestedRenewal } from '../../../src/issuers/types.ts';
import type { CertSummary } from '../../../src/pki/index.ts';
import { deferred, FakeClock, flush } from '../queue/fake-clock.ts';

const HOUR = 3_600_000;

function rec(serialHex: string): SecretRecord {
  return {
    namespace: 'n',
    name: 's',
    uid: 'u',
    resourceVersion: '1',
    annotations: {},
    managed: true,
    cert: { serialHex, notBefore: 0, notAfter: 10 * HOUR } as unknown as CertSummary,
  };
}

/** A fake issuer whose suggestion answers the test resolves by hand. */
function fakeIssuer() {
  const asked: Array<{ serial: string; answer: ReturnType<typeof deferred<SuggestedRenewal | undefined>> }> =
    [];
  const issuer: Issuer = {
    name: 'acme',
    kind: 'acme',
    issue: async () => {
      throw new Error('not used');
    },
    suggestedRenewalTime: async (cert) => {
      const answer = deferred<SuggestedRenewal | undefined>();
      asked.push({ serial: cert.serialHex, answer });
      return await answer.promise;
    },
  };
  return { issuer, asked };
}

describe('SuggestedRenewals', () => {
  it('answers from the cache at once, asks in the background, and tells the controller when the answer arrives', async () => {
    const clock = new FakeClock(0);
    const changed: string[] = [];
    const s = new SuggestedRenewals({
      clock,
      log: pino({ level: 'silent' }),
      onChange: (k) => changed.push(k),
    });
    const { issuer, asked } = fakeIssuer();
    expect(s.lookup('k', rec('01'), issuer)).toBeUndefined();
    expect(asked).toHaveLength(1);
    expect(s.refreshAt('k')).toBeUndefined(); // in flight
    expect(s.lookup('k', rec('01'), issuer)).toBeUndefined();
    expect(asked).toHaveLength(1); // not asked twice
    asked[0]?.answer.resolve({
      at: 5 * HOUR,
      windowStart: 4 * HOUR,
      windowEnd: 6 * HOUR,
      refreshAfterMs: HOUR,
    });
    await flush();
    expect(changed).toEqual(['k']);
    expect(s.lookup('k', rec('01'), issuer)).toBe(5 * HOUR);
    expect(s.refreshAt('k')).toBe(HOUR);
    clock.advance(HOUR);
    s.lookup('k', rec('01'), issuer);
    expect(asked).toHaveLength(2); // refreshed once the Retry-After has passed
  });

  it('an answer for a certificate that was replaced meanwhile is dropped', async () => {
    const clock = new FakeClock(0);
    const changed: string[] = [];
    const s = new SuggestedRenewals({
      clock,
      log: pino({ level: 'silent' }),
      onChange: (k) => changed.push(k),
    });
    const { issuer, asked } = fakeIssuer();
    s.lookup('k', rec('01'), issuer);
    s.lookup('k', rec('02'), issuer);
    asked[0]?.answer.resolve({ at: 1, windowStart: 0, windowEnd: 2, refreshAfterMs: HOUR });
    await flush();
    expect(changed).toEqual([]);
    expect(s.lookup('k', rec('02'), issuer)).toBeUndefined();
  });

  it('a failed lookup keeps the last answer and asks again after 5 minutes; an issuer without suggestions is never asked', async () => {
    const clock = new FakeClock(0);
    const s = new SuggestedRenewals({ clock, log: pino({ level: 'silent' }), onChange: () => undefined });
    const { issuer, asked } = fakeIssuer();
    s.lookup('k', rec('01'), issuer);
    asked[0]?.answer.reject(new Error('ARI down'));
    await flush();
    expect(s.refreshAt('k')).toBe(5 * 60_000);
    const plain: Issuer = { name: 'ca', kind: 'ca', issue: issuer.issue };
    expect(s.lookup('j', rec('01'), plain)).toBeUndefined();
    expect(s.refreshAt('j')).toBeUndefined();
  });
});
