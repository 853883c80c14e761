import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';
import { evaluate, renewBeforeFromSuggestion } from '../../../src/controller/evaluate.ts';
import { chooseIssuer } from '../../../src/controller/fallback.ts';
import { clampRefresh, pointInWindow } from '../../../src/issuers/acme/ari.ts';
import { OrderBudget } from '../../../src/issuers/acme/order-budget.ts';
import { pendingSecretName } from '../../../src/issuers/acme/pending.ts';
import { computeRenewalTime } from '../../../src/policy/renewal.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;

describe('ARI window point (stable per certificate)', () => {
  it('lies inside the window, is the same for the same certID, differs across certIDs', () => {
    const start = 1_000_000;
    const end = start + 2 * DAY;
    const a = pointInWindow(start, end, 'aki.serial1');
    expect(a).toBeGreaterThanOrEqual(start);
    expect(a).toBeLessThan(end);
    expect(pointInWindow(start, end, 'aki.serial1')).toBe(a);
    const points = new Set(Array.from({ length: 20 }, (_, i) => pointInWindow(start, end, `aki.s${i}`)));
    expect(points.size).toBe(20);
  });

  it('clamps Retry-After to [1 min, 24 h], 6 h when absent', () => {
    expect(clampRefresh(undefined)).toBe(6 * HOUR);
    expect(clampRefresh(1_000)).toBe(60_000);
    expect(clampRefresh(30 * HOUR)).toBe(24 * HOUR);
  });
});

describe('suggested renewal time vs renew-before', () => {
  const validity = { notBefore: 0, notAfter: 90 * DAY };
  const at = (s: number) =>
    computeRenewalTime({ ...validity, renewBefore: renewBeforeFromSuggestion(validity, s) });

  it('the suggestion wins over renew-before', () => {
    expect(at(60 * DAY)).toBe(60 * DAY);
  });
  it('never waits into the last 1/20 of the lifetime', () => {
    expect(at(89 * DAY)).toBe(90 * DAY - (90 * DAY) / 20);
  });
  it('a suggestion before notBefore means now', () => {
    expect(at(-DAY)).toBeLessThanOrEqual(1);
  });

  it('evaluate() plans with the suggestion when one is given', () => {
    const config = loadConfig('issuers: [{ name: self, selfSigned: {} }]');
    const record = {
      namespace: 'n',
      name: 's',
      uid: 'u',
      resourceVersion: '1',
      annotations: { 'cert-rotator.io/enabled': 'true', 'cert-rotator.io/renew-before': '10d' },
      managed: true,
      cert: {
        notBefore: 0,
        notAfter: 90 * DAY,
        serialHex: '01',
        dnsNames: ['a.example'],
        ipAddresses: [],
        uris: [],
        isCA: false,
        selfIssued: true,
        spkiSha256: 'x',
        publicKeySha256: 'x',
        serialFlag: undefined,
        keyCertSign: false,
        problems: [],
        keyAlgorithm: 'ecdsa-p256' as const,
      },
    };
    const plain = evaluate(record, config, DAY);
    const ari = evaluate(record, config, DAY, 61 * DAY);
    expect(plain.kind === 'planned' && plain.renewalTime).toBe(80 * DAY);
    expect(ari.kind === 'planned' && ari.renewalTime).toBe(61 * DAY);
    const due = evaluate(record, config, 62 * DAY, 61 * DAY);
    expect(due.kind === 'planned' && due.decision.action).toBe('renew-now');
  });
});

describe('orders per Secret per hour', () => {
  it('allows the cap, then says when the next order is allowed; Secrets are independent', () => {
    const b = new OrderBudget(2);
    expect(b.take('a', 0).ok).toBe(true);
    expect(b.take('a', 10 * 60_000).ok).toBe(true);
    expect(b.take('a', 20 * 60_000)).toEqual({ ok: false, retryAfterMs: 40 * 60_000 });
    expect(b.take('b', 20 * 60_000).ok).toBe(true);
    expect(b.take('a', HOUR + 1).ok).toBe(true);
  });
});

describe('fallback issuer', () => {
  const config = loadConfig(`
issuers:
  - { name: le, acme: { server: "https://acme.example/dir", accountKeySecret: { namespace: a, name: b }, solvers: [{ http01: {} }] }, fallback: self }
  - { name: le2, acme: { server: "https://acme.example/dir", accountKeySecret: { namespace: a, name: c }, solvers: [{ http01: {} }] }, fallback: narrow, fallbackAfter: 1 }
  - { name: self, selfSigned: {} }
  - { name: narrow, selfSigned: {}, allowedNamespaces: [other] }
`);
  const issuer = (name: string) => {
    const i = config.issuers.find((x) => x.name === name);
    if (!i) throw new Error(name);
    return i;
  };
  it('switches after fallbackAfter (default 3) consecutive failures', () => {
    expect(chooseIssuer(issuer('le'), 2, config, 'ns', ['a.example']).name).toBe('le');
    expect(chooseIssuer(issuer('le'), 3, config, 'ns', ['a.example'])).toEqual({
      name: 'self',
      fallbackFrom: 'le',
      failures: 3,
    });
  });
  it('never uses a fallback that is not allowed for the Secret', () => {
    expect(chooseIssuer(issuer('le2'), 5, config, 'ns', ['a.example']).name).toBe('le2');
    expect(chooseIssuer(issuer('le2'), 1, config, 'other', ['a.example']).name).toBe('narrow');
  });
});

describe('config: renewalBackoff, fallbackAfter, acme limits', () => {
  it('defaults and validation', () => {
    const c = loadConfig('issuers: [{ name: self, selfSigned: {} }]');
    expect(c.renewalBackoff).toEqual({ baseMs: 5 * 60_000, capMs: 32 * HOUR });
    expect(() =>
      loadConfig('renewalBackoff: { base: 10m, cap: 1m }\nissuers: [{ name: self, selfSigned: {} }]'),
    ).toThrow(/renewalBackoff.cap: must not be shorter than base/);
    expect(() => loadConfig('issuers: [{ name: self, selfSigned: {}, fallbackAfter: 0 }]')).toThrow(
      /issuers\[0\].fallbackAfter/,
    );
    expect(() => loadConfig('renewalBackoff: { base: 10ms }')).toThrow(/renewalBackoff.base/);
  });
});

describe('pending-order companion Secret name', () => {
  it('is <secret>-cert-rotator-pending, shortened with a hash past 253 characters', () => {
    expect(pendingSecretName('web-tls')).toBe('web-tls-cert-rotator-pending');
    const long = pendingSecretName('x'.repeat(250));
    expect(long.length).toBeLessThanOrEqual(253);
    expect(long.endsWith('-cert-rotator-pending')).toBe(true);
    expect(pendingSecretName('x'.repeat(250))).toBe(long);
  });
});
