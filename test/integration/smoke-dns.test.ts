import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { testEnv } from '../testenv/kube.ts';

const run = promisify(execFile);

async function nsupdate(script: string, withKey: boolean): Promise<{ code: number; output: string }> {
  const env = testEnv();
  const args = withKey
    ? ['-y', `${env.bind.tsigAlgorithm}:${env.bind.tsigKeyName}:${env.bind.tsigSecret}`]
    : [];
  const child = execFile(env.bins.nsupdate, args);
  let output = '';
  child.stdout?.on('data', (d) => {
    output += d;
  });
  child.stderr?.on('data', (d) => {
    output += d;
  });
  child.stdin?.end(script);
  const code = await new Promise<number>((r) => child.on('exit', (c) => r(c ?? -1)));
  return { code, output };
}

async function dig(name: string, type: string): Promise<string> {
  const env = testEnv();
  const [host, port] = env.bind.nameserver.split(':') as [string, string];
  const { stdout } = await run(env.bins.dig, [
    `@${host}`,
    '-p',
    port,
    name,
    type,
    '+short',
    '+time=2',
    '+tries=1',
  ]);
  return stdout.trim();
}

describe('BIND 9 (real) with RFC2136 + TSIG', () => {
  it('accepts a TSIG-signed TXT update, answers it, and refuses an unsigned one', async () => {
    const env = testEnv();
    const [host, port] = env.bind.nameserver.split(':');
    const fqdn = `_acme-challenge.smoke.${env.bind.zone}`;
    const header = `server ${host} ${port}\nzone ${env.bind.zone}\n`;

    const signed = await nsupdate(`${header}update add ${fqdn} 30 TXT "signed-value"\nsend\n`, true);
    expect(signed.output).toBe('');
    expect(signed.code).toBe(0);
    expect(await dig(fqdn, 'TXT')).toBe('"signed-value"');

    const unsigned = await nsupdate(`${header}update add ${fqdn} 30 TXT "unsigned-value"\nsend\n`, false);
    expect(unsigned.code).not.toBe(0);
    expect(unsigned.output).toMatch(/REFUSED/);
    expect(await dig(fqdn, 'TXT')).toBe('"signed-value"');

    const removed = await nsupdate(`${header}update delete ${fqdn} TXT\nsend\n`, true);
    expect(removed.code).toBe(0);
    expect(await dig(fqdn, 'TXT')).toBe('');
  });
});
