import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsClient, parseServer } from '../../src/issuers/acme/dns/client.ts';
import { RRClass, RRType, txtRdata } from '../../src/issuers/acme/dns/wire.ts';
import { testEnv } from '../testenv/kube.ts';

type Mode = 'faithful' | 'other-port' | 'other-question';

/**
 * A UDP relay in front of the real BIND (no DNS server misbehaves on demand), named as a fake:
 * `faithful` passes queries and answers through; `other-port` sends BIND's answer back from a
 * second socket, i.e. from a port the client never asked; `other-question` answers from the right
 * port but with the first letter of the question's name changed (an answer to another question).
 */
async function startRelay(target: { host: string; port: number }, mode: Mode) {
  const front = createSocket('udp4');
  const side = createSocket('udp4');
  await Promise.all([
    new Promise<void>((r) => front.bind(0, '127.0.0.1', r)),
    new Promise<void>((r) => side.bind(0, '127.0.0.1', r)),
  ]);
  front.on('message', (query, client) => {
    const upstream: Socket = createSocket('udp4');
    upstream.on('message', (answer) => {
      upstream.close();
      const out = Buffer.from(answer);
      // Header is 12 bytes; the question's name starts with its first label's length byte.
      if (mode === 'other-question') out[13] = out[13] === 0x78 ? 0x79 : 0x78;
      (mode === 'other-port' ? side : front).send(out, client.port, client.address);
    });
    upstream.send(query, target.port, target.host);
  });
  const port = (front.address() as { port: number }).port;
  return {
    port,
    close() {
      front.close();
      side.close();
    },
  };
}

let relays: Record<Mode, { port: number; close(): void }>;
let fqdn = '';

beforeAll(async () => {
  const env = testEnv();
  const bind = parseServer(env.bind.nameserver);
  relays = {
    faithful: await startRelay(bind, 'faithful'),
    'other-port': await startRelay(bind, 'other-port'),
    'other-question': await startRelay(bind, 'other-question'),
  };
  fqdn = `_acme-challenge.answers.${env.bind.zone}`;
  await new DnsClient(bind).update(
    env.bind.zone,
    [{ name: fqdn, type: RRType.TXT, class: RRClass.IN, ttl: 60, rdata: txtRdata('the-real-value') }],
    {
      name: env.bind.tsigKeyName,
      algorithm: 'hmac-sha256',
      secret: Buffer.from(env.bind.tsigSecret, 'base64'),
    },
  );
});

afterAll(() => {
  for (const r of Object.values(relays ?? {})) r.close();
});

const via = (mode: Mode) =>
  new DnsClient({ host: '127.0.0.1', port: relays[mode].port }, { timeoutMs: 700, tries: 1 });

describe('DNS answers are accepted only from the server queried and for the question asked (BIND, real)', () => {
  it('an answer relayed faithfully is accepted (the relay itself works)', async () => {
    expect(await via('faithful').txt(fqdn)).toEqual(['the-real-value']);
    expect(await via('faithful').findZone(fqdn)).toBe(testEnv().bind.zone.replace(/\.$/, ''));
  });

  it('an answer from another port than the one queried is ignored', async () => {
    await expect(via('other-port').txt(fqdn)).rejects.toThrow(
      /no DNS answer from 127\.0\.0\.1:\d+ within 700 ms/,
    );
  });

  it('an answer to another question is ignored, for TXT checks and for finding the zone', async () => {
    await expect(via('other-question').txt(fqdn)).rejects.toThrow(/no DNS answer/);
    await expect(via('other-question').findZone(fqdn)).rejects.toThrow(/no DNS answer/);
  });
});
