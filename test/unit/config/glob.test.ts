import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { globMatch, issuerAllows } from '../../../src/config/index.ts';

describe('globMatch', () => {
  it.each([
    ['*', 'default', true],
    ['team-*', 'team-a', true],
    ['team-*', 'team-', true],
    ['team-*', 'teams', false],
    ['prod-??', 'prod-eu', true],
    ['prod-??', 'prod-e', false],
    ['*-prod-*', 'eu-prod-1', true],
    ['a*b*c', 'axxbyyc', true],
    ['a*b*c', 'axxbyy', false],
    ['*.example.com', 'www.example.com', true],
    ['*.example.com', 'a.b.example.com', false],
    ['*.example.com', 'example.com', false],
    ['*.*.example.com', 'a.b.example.com', true],
    ['api-?.example.com', 'api-1.example.com', true],
    ['example.com', 'EXAMPLE.com', true],
    ['*.example.com', '*.example.com', true],
    ['?.example.com', '*.example.com', false],
    ['a*.example.com', '*.example.com', false],
    ['*', 'a.b', false],
  ])('%s ~ %s is %s', (pattern, value, expected) => {
    expect(globMatch(pattern, value)).toBe(expected);
  });

  it('a pattern without wildcards matches only itself', () => {
    const name = fc.stringMatching(/^[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}$/);
    fc.assert(
      fc.property(name, name, (a, b) => {
        expect(globMatch(a, b)).toBe(a === b);
      }),
    );
  });

  it('stays fast on adversarial patterns', () => {
    const started = performance.now();
    expect(globMatch(`${'*a'.repeat(30)}b`, 'a'.repeat(60))).toBe(false);
    expect(performance.now() - started).toBeLessThan(100);
  });
});

describe('issuerAllows', () => {
  const issuer = {
    name: 'le',
    allowedNamespaces: ['team-*', 'ops'],
    allowedDomains: ['*.example.com', 'example.com'],
  };

  it('allows a namespace and names on the lists', () => {
    expect(issuerAllows(issuer, 'team-a', ['example.com', 'www.example.com', '*.example.com'])).toEqual({
      allowed: true,
    });
    expect(issuerAllows({ ...issuer, allowedDomains: undefined }, 'ops', ['anything.org'])).toEqual({
      allowed: true,
    });
  });

  it('refuses another namespace, naming the list', () => {
    expect(issuerAllows(issuer, 'default', ['example.com'])).toEqual({
      allowed: false,
      reason: 'issuer "le" does not allow namespace "default" (allowedNamespaces: team-*, ops)',
    });
  });

  it('refuses names off the list, naming each', () => {
    expect(issuerAllows(issuer, 'ops', ['www.example.com', 'a.b.example.com', 'evil.org'])).toEqual({
      allowed: false,
      reason:
        'issuer "le" does not allow "a.b.example.com", "evil.org" (allowedDomains: *.example.com, example.com)',
    });
  });
});
