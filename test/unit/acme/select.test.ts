import { describe, expect, it } from 'vitest';
import type { AcmeSolverConfig } from '../../../src/config/schema.ts';
import { http01RouteName } from '../../../src/issuers/acme/http01.ts';
import { chooseSolver } from '../../../src/issuers/acme/select.ts';
import { AcmeRetryLater, parseRetryAfter, problemDetail } from '../../../src/issuers/acme/transport.ts';
import { parseListenAddress } from '../../../src/listen-address.ts';

const rfc2136 = { nameserver: '10.0.0.53:53' };
const http: AcmeSolverConfig = { kind: 'http01' };
const dnsZone: AcmeSolverConfig = { kind: 'dns01', rfc2136, selector: { dnsZones: ['example.com'] } };
const dnsSubZone: AcmeSolverConfig = { kind: 'dns01', rfc2136, selector: { dnsZones: ['sub.example.com'] } };
const httpName: AcmeSolverConfig = { kind: 'http01', selector: { dnsNames: ['exact.sub.example.com'] } };

describe('solver selection', () => {
  const all = [http, dnsZone, dnsSubZone, httpName];
  it('dnsNames beats the longest zone, which beats no selector', () => {
    expect(chooseSolver(all, 'exact.sub.example.com', false)).toBe(httpName);
    expect(chooseSolver(all, 'a.sub.example.com', false)).toBe(dnsSubZone);
    expect(chooseSolver(all, 'a.example.com', false)).toBe(dnsZone);
    expect(chooseSolver(all, 'example.org', false)).toBe(http);
  });
  it('wildcards need DNS-01; a non-matching selector is never used', () => {
    expect(chooseSolver(all, 'sub.example.com', true)).toBe(dnsSubZone);
    expect(chooseSolver([http, dnsZone], 'example.org', true)).toBeUndefined();
    expect(chooseSolver([dnsZone], 'notexample.com', false)).toBeUndefined();
  });
});

describe('transport helpers', () => {
  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('120')).toBe(120_000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.UTC(2015, 9, 21, 7, 27, 0))).toBe(60_000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(new AcmeRetryLater('x', 429, 5).retryAfterMs).toBe(5);
  });
  it('summarises problem documents with subproblems', () => {
    expect(
      problemDetail({
        type: 'urn:ietf:params:acme:error:rejectedIdentifier',
        detail: 'policy forbids',
        subproblems: [{ type: 'urn:ietf:params:acme:error:caa', detail: 'CAA forbids x' }],
      }),
    ).toBe('rejectedIdentifier: policy forbids (caa: CAA forbids x)');
    expect(problemDetail('text')).toBe('');
  });
  it('names routing objects stably within a DNS label', () => {
    const n = http01RouteName('A_very.long.secret-name-that-goes-on-and-on-and-on-forever');
    expect(n).toMatch(/^[a-z0-9-]{1,63}$/);
    expect(n).toBe(http01RouteName('A_very.long.secret-name-that-goes-on-and-on-and-on-forever'));
    expect(parseListenAddress(':8089')).toEqual({ host: undefined, port: 8089 });
    expect(parseListenAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
  });
});
