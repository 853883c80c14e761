import { describe, expect, it } from 'vitest';
import { switchedData } from '../../../src/rollover/switch.ts';
import { makeTestCA } from '../../testenv/tls-fixtures.ts';

const b64 = (t: string) => Buffer.from(t).toString('base64');
const text = (v: string | undefined) => Buffer.from(v ?? '', 'base64').toString();

describe('the CA Secret at the switch', () => {
  it('moves the staged CA in, the active one to previous.*, and drops next.crt', async () => {
    const [old, fresh] = [await makeTestCA('old'), await makeTestCA('new')];
    const data = switchedData(
      {
        'tls.crt': b64(old.certPem),
        'tls.key': b64(old.keyPem),
        'next.crt': b64(fresh.certPem),
        other: 'eA==',
      },
      { 'tls.crt': b64(fresh.certPem), 'tls.key': b64(fresh.keyPem) },
    );
    expect(text(data['tls.crt'])).toBe(fresh.certPem);
    expect(text(data['tls.key'])).toBe(fresh.keyPem);
    expect(text(data['previous.crt'])).toBe(old.certPem);
    expect(text(data['previous.key'])).toBe(old.keyPem);
    expect(data['next.crt']).toBeUndefined();
    expect(data.other).toBe('eA==');
  });

  it('a root’s ca.crt follows it: the staged ca.crt, or the new self-signed root itself', async () => {
    const [old, fresh] = [await makeTestCA('old'), await makeTestCA('new')];
    const before = { 'tls.crt': b64(old.certPem), 'tls.key': b64(old.keyPem), 'ca.crt': b64(old.certPem) };
    const staged = { 'tls.crt': b64(fresh.certPem), 'tls.key': b64(fresh.keyPem) };
    expect(text(switchedData(before, { ...staged, 'ca.crt': b64(fresh.certPem) })['ca.crt'])).toBe(
      fresh.certPem,
    );
    expect(text(switchedData(before, staged)['ca.crt'])).toBe(fresh.certPem);
  });

  it('an intermediate keeps its parent in ca.crt; a ca.crt naming the replaced intermediate goes', async () => {
    const root = await makeTestCA('root');
    const [old, fresh] = [await makeTestCA('old', undefined, root), await makeTestCA('new', undefined, root)];
    const staged = { 'tls.crt': b64(fresh.certPem + root.certPem), 'tls.key': b64(fresh.keyPem) };
    const parent = switchedData(
      { 'tls.crt': b64(old.certPem + root.certPem), 'tls.key': b64(old.keyPem), 'ca.crt': b64(root.certPem) },
      staged,
    );
    expect(text(parent['ca.crt'])).toBe(root.certPem);
    const stale = switchedData(
      { 'tls.crt': b64(old.certPem), 'tls.key': b64(old.keyPem), 'ca.crt': b64(old.certPem) },
      staged,
    );
    expect(stale['ca.crt']).toBeUndefined();
  });
});
