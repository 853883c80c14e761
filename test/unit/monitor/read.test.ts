import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ReadError } from '../../../src/monitor/errors.ts';
import { readKeystore, readKubeconfig, readPemOrDer, readValue } from '../../../src/monitor/read.ts';

const fixture = (name: string) => new Uint8Array(readFileSync(new URL(`fixtures/${name}`, import.meta.url)));
const expected = JSON.parse(
  readFileSync(new URL('fixtures/expected.json', import.meta.url), 'utf8'),
) as Record<string, string>;
const leaf = Date.parse(expected.leaf as string);
const int = Date.parse(expected.int as string);
const root = Date.parse(expected.root as string);

function reason(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (err instanceof ReadError) return `${err.reason}: ${err.message}`;
    throw err;
  }
  return 'no error';
}

describe('readPemOrDer', () => {
  it('reads every certificate of a PEM bundle, in order, with its names', () => {
    const certs = readPemOrDer(fixture('chain.pem'));
    expect(certs.map((c) => c.notAfter)).toEqual([leaf, int, root]);
    expect(certs.map((c) => c.subjectCN)).toEqual(['fixture-leaf', 'fixture-intermediate', 'fixture-root']);
    expect(certs.map((c) => c.issuerCN)).toEqual(['fixture-intermediate', 'fixture-root', 'fixture-root']);
  });

  it('reads a DER certificate', () => {
    expect(readPemOrDer(fixture('leaf.der')).map((c) => c.notAfter)).toEqual([leaf]);
  });

  it('turns garbage, a key-only PEM and truncated DER into read errors', () => {
    expect(reason(() => readPemOrDer(Buffer.from('hello')))).toMatch(/^no-certificate/);
    expect(
      reason(() =>
        readPemOrDer(Buffer.from('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')),
      ),
    ).toMatch(/^no-certificate/);
    expect(reason(() => readPemOrDer(fixture('leaf.der').subarray(0, 100)))).toMatch(/^malformed/);
    expect(reason(() => readPemOrDer(Buffer.from('-----BEGIN CERTIFICATE-----\n!!\n')))).toMatch(
      /^malformed/,
    );
  });
});

describe('readKeystore', () => {
  it('reads the chain of a PKCS#12 written by OpenSSL 3 (PBES2, AES-256, SHA-256 MAC)', () => {
    expect(
      readKeystore(fixture('modern.p12'), 's3cret')
        .map((c) => c.notAfter)
        .sort(),
    ).toEqual([leaf, int, root].sort());
  });

  it('reads a legacy PKCS#12 (RC2-40 certificate bag, 3DES key bag, SHA-1 MAC)', () => {
    expect(
      readKeystore(fixture('legacy.p12'), 's3cret')
        .map((c) => c.subjectCN)
        .sort(),
    ).toEqual(['fixture-intermediate', 'fixture-leaf', 'fixture-root']);
  });

  it('reads a PKCS#12 truststore with an empty password when none is configured', () => {
    expect(readKeystore(fixture('nopass.p12'), undefined).map((c) => c.notAfter)).toEqual([root]);
  });

  it('says "wrong password" for a wrong password and for a missing one, never throws anything else', () => {
    expect(reason(() => readKeystore(fixture('modern.p12'), 'nope'))).toBe(
      'wrong-password: the PKCS#12 integrity check failed: wrong password',
    );
    expect(reason(() => readKeystore(fixture('modern.p12'), undefined))).toMatch(
      /^wrong-password: .*none is configured/,
    );
    expect(reason(() => readKeystore(fixture('trust.jks'), 'nope'))).toBe(
      'wrong-password: the JKS keystore integrity check failed: wrong password',
    );
  });

  it('refuses a keystore with more iterations than it reads (its MAC is not even computed)', () => {
    expect(reason(() => readKeystore(fixture('slow.p12'), 'x'))).toBe(
      'unsupported: PKCS#12 iteration count 200000 is more than the 100000 read',
    );
  });

  it('reads JKS trusted certificates and the chain of a JCEKS private-key entry', () => {
    expect(
      readKeystore(fixture('trust.jks'), 'changeit')
        .map((c) => c.notAfter)
        .sort(),
    ).toEqual([int, root].sort());
    expect(readKeystore(fixture('trust.jks'), undefined)).toHaveLength(2);
    expect(readKeystore(fixture('keystore.jceks'), 'changeit').map((c) => c.notAfter)).toEqual([
      leaf,
      int,
      root,
    ]);
  });

  it('survives every truncation and bit flip of a keystore with a ReadError', () => {
    for (const name of ['modern.p12', 'legacy.p12', 'trust.jks', 'keystore.jceks']) {
      const good = fixture(name);
      for (let n = 0; n < good.length; n += 17) {
        expect(reason(() => readKeystore(good.subarray(0, n), 'x'))).not.toBe('no error');
      }
      for (let i = 0; i < good.length; i += 13) {
        const bad = good.slice();
        bad[i] = (bad[i] as number) ^ 0x41;
        // A flip may land where nothing is checked (a key bag without MAC); it must never throw
        // anything but a ReadError.
        reason(() => readKeystore(bad, name.endsWith('.p12') ? 's3cret' : 'changeit'));
      }
    }
  });
});

describe('readKubeconfig', () => {
  it('reads the embedded CA and client certificate, named by cluster and user', () => {
    const b64 = (name: string) => Buffer.from(fixture(name)).toString('base64');
    const text = `apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: { server: "https://127.0.0.1:6443", certificate-authority-data: ${b64('chain.pem')} }
users:
- name: ci
  user: { client-certificate-data: ${b64('leaf.crt')}, client-key-data: AAAA }
- name: token-user
  user: { token: abc }
`;
    const parts = readKubeconfig(Buffer.from(text));
    expect(parts.map((p) => [p.part, p.certs.map((c) => c.notAfter)])).toEqual([
      [':cluster/prod', [leaf, int, root]],
      [':user/ci', [leaf]],
    ]);
  });

  it('says what is wrong with a token-only kubeconfig and with non-YAML', () => {
    expect(reason(() => readKubeconfig(Buffer.from('users: [{name: a, user: {token: x}}]')))).toMatch(
      /^no-certificate/,
    );
    expect(reason(() => readKubeconfig(Buffer.from('{{{')))).toMatch(/^malformed/);
  });
});

describe('readValue', () => {
  it('refuses values over the size limit without parsing them', () => {
    expect(reason(() => readValue(new Uint8Array(5 * 1024 * 1024), 'pem'))).toMatch(/^too-large/);
  });
});
