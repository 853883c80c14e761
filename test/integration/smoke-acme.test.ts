import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { Agent } from 'node:https';
import * as acme from 'acme-client';
import { afterAll, describe, expect, it } from 'vitest';
import { testEnv } from '../testenv/kube.ts';
import { httpsGet } from '../testenv/net.ts';

describe('Pebble ACME server (real) with acme-client', () => {
  const env = testEnv();
  let server: Server | undefined;
  afterAll(() => server?.close());

  it('issues a certificate for two names over HTTP-01 answered by the test', async () => {
    acme.axios.defaults.httpsAgent = new Agent({ ca: env.acme.tlsCaPem });
    const tokens = new Map<string, string>();
    const requested: string[] = [];
    server = createServer((req, res) => {
      requested.push(`${req.headers.host} ${req.url}`);
      const token = req.url?.replace('/.well-known/acme-challenge/', '') ?? '';
      const body = tokens.get(token);
      res.writeHead(body ? 200 : 404).end(body ?? '');
    });
    await new Promise<void>((r) => server?.listen(env.acme.httpPort, '127.0.0.1', r));

    const client = new acme.Client({
      directoryUrl: env.acme.directoryUrl,
      accountKey: await acme.crypto.createPrivateEcdsaKey(),
      backoffMin: 100,
      backoffMax: 500,
    });
    const names = ['smoke-a.example.test', 'smoke-b.example.test'];
    const [key, csr] = await acme.crypto.createCsr(
      { altNames: names },
      await acme.crypto.createPrivateEcdsaKey(),
    );
    const chainPem = await client.auto({
      csr,
      termsOfServiceAgreed: true,
      email: 'ops@example.test',
      skipChallengeVerification: true, // the local pre-check would use the machine's resolver
      challengePriority: ['http-01'],
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
        tokens.set(challenge.token, keyAuthorization);
      },
      challengeRemoveFn: async (_authz, challenge) => {
        tokens.delete(challenge.token);
      },
    });
    expect(key.length).toBeGreaterThan(0);

    const pems = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    expect(pems.length).toBeGreaterThanOrEqual(2);
    const leaf = new X509Certificate(pems[0] ?? '');
    const intermediate = new X509Certificate(pems[1] ?? '');
    expect(leaf.subjectAltName).toBe('DNS:smoke-a.example.test, DNS:smoke-b.example.test');
    expect(leaf.verify(intermediate.publicKey)).toBe(true);
    expect(intermediate.subject).toMatch(/Pebble Intermediate/);
    // Pebble's validation authority really fetched both tokens from our listener.
    expect(requested.filter((r) => r.includes('/.well-known/acme-challenge/')).length).toBeGreaterThanOrEqual(
      2,
    );
    expect(requested.some((r) => r.startsWith('smoke-a.example.test'))).toBe(true);
    expect(requested.some((r) => r.startsWith('smoke-b.example.test'))).toBe(true);
  });

  it('refuses an order for a blocked domain with a problem document', async () => {
    const client = new acme.Client({
      directoryUrl: env.acme.directoryUrl,
      accountKey: await acme.crypto.createPrivateEcdsaKey(),
    });
    await client.createAccount({ termsOfServiceAgreed: true });
    await expect(
      client.createOrder({ identifiers: [{ type: 'dns', value: 'blocked-domain.example' }] }),
    ).rejects.toThrow(/blocked|policy|rejectedIdentifier/i);
    // The directory is reachable through the harness CA only: plain trust fails.
    await expect(httpsGet(env.acme.directoryUrl)).rejects.toThrow();
  });
});
