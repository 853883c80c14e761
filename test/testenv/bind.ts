import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitFor } from './net.ts';
import { isAlive, type Peer, startPeer } from './processes.ts';

const run = promisify(execFile);

export interface Bind {
  /** 127.0.0.1:PORT */
  nameserver: string;
  port: number;
  zone: string;
  tsigKeyName: string;
  tsigAlgorithm: 'hmac-sha256';
  /** base64 TSIG secret (test-only, generated per run). */
  tsigSecret: string;
  peer: Peer;
  stop(): Promise<void>;
}

/** BIND 9 authoritative for `zone`, accepting RFC2136 updates signed with a fresh TSIG key. */
export async function startBind(
  namedBin: string,
  digBin: string,
  dir: string,
  zone = 'example.test',
): Promise<Bind> {
  const work = join(dir, 'bind');
  await mkdir(work, { recursive: true });
  const port = await freePort();
  const tsigKeyName = 'cert-rotator-test';
  const tsigSecret = randomBytes(32).toString('base64');
  await writeFile(
    join(work, `${zone}.zone`),
    [
      '$TTL 30',
      `@ IN SOA ns1.${zone}. hostmaster.${zone}. 1 30 30 600 30`,
      `@ IN NS ns1.${zone}.`,
      'ns1 IN A 127.0.0.1',
      '',
    ].join('\n'),
  );
  await writeFile(
    join(work, 'named.conf'),
    `options {
  directory "${work}";
  pid-file "${work}/named.pid";
  session-keyfile "${work}/session.key";
  managed-keys-directory "${work}";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  allow-query { any; };
  dnssec-validation no;
  notify no;
};
controls { };
key "${tsigKeyName}" { algorithm hmac-sha256; secret "${tsigSecret}"; };
zone "${zone}" {
  type primary;
  file "${work}/${zone}.zone";
  update-policy { grant ${tsigKeyName} zonesub ANY; };
};
`,
  );
  const peer = await startPeer('named', namedBin, ['-g', '-4', '-c', join(work, 'named.conf'), '-n', '1'], {
    logDir: join(dir, 'logs'),
  });
  await waitFor('named to answer the SOA', async () => {
    if (!isAlive(peer.pid)) throw new Error(`named exited; see ${peer.logFile}`);
    const { stdout } = await run(digBin, [
      '@127.0.0.1',
      '-p',
      String(port),
      zone,
      'SOA',
      '+short',
      '+time=1',
      '+tries=1',
    ]);
    return stdout.includes(`ns1.${zone}.`);
  });
  return {
    nameserver: `127.0.0.1:${port}`,
    port,
    zone,
    tsigKeyName,
    tsigAlgorithm: 'hmac-sha256',
    tsigSecret,
    peer,
    stop: () => peer.stop(),
  };
}
