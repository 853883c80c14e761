import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createCsrPem } from '../../../src/pki/csr.ts';
import { generateKey, KEY_ALGORITHMS } from '../../../src/pki/keys.ts';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.runIf(hasOpenssl())('PKCS#10 requests encoded by der-write.ts (checked by OpenSSL)', () => {
  for (const alg of KEY_ALGORITHMS.filter((a) => a !== 'rsa-3072' && a !== 'rsa-4096')) {
    it(`${alg}: the signature verifies and the SANs and CN are as asked`, async () => {
      const key = await generateKey(alg);
      const pem = await createCsrPem(
        key.privateKeyPem,
        {
          commonName: 'app',
          dnsNames: ['app.team-a.svc'],
          ipAddresses: ['10.0.0.7', '2001:db8::1'],
          uris: ['spiffe://cluster.local/ns/team-a/sa/app'],
        },
        ['Team A'],
      );
      const out = execFileSync('openssl', ['req', '-noout', '-verify', '-text'], {
        input: pem,
        stdio: 'pipe',
      }).toString();
      expect(out).toContain('Subject: CN = app, O = Team A');
      expect(out).toMatch(
        /DNS:app\.team-a\.svc, IP Address:10\.0\.0\.7, IP Address:2001:DB8:0:0:0:0:0:1, URI:spiffe:\/\/cluster\.local\/ns\/team-a\/sa\/app/,
      );
    });
  }
  it('an identity without a CN has an empty subject', async () => {
    const key = await generateKey('ecdsa-p256');
    const pem = await createCsrPem(key.privateKeyPem, {
      dnsNames: [],
      ipAddresses: [],
      uris: ['spiffe://x/ns/a/sa/b'],
    });
    const out = execFileSync('openssl', ['req', '-noout', '-verify', '-subject'], {
      input: pem,
      stdio: 'pipe',
    }).toString();
    expect(out.trim()).toBe('subject=');
  });
});
