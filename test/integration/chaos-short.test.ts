import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const CHAOS = new URL('../chaos/chaos.ts', import.meta.url).pathname;

/**
 * The short CI version of `npm run chaos` (test/chaos/chaos.ts), on a control plane of its own:
 * scaled so that it still sees leader kills, kube-apiserver restarts, an etcd restart and
 * several renewals of every Secret, in about four minutes.
 */
describe('chaos suite, short version', () => {
  it(
    'keeps every Secret renewed on time, issued once per period and rolled once per renewal while the leader is killed and the API server and etcd restart',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-chaos-short-'));
      const json = join(dir, 'summary.json');
      const args = [
        CHAOS,
        ...['--minutes', '2.5', '--tail-minutes', '0.75', '--secrets', '20', '--deployments', '6'],
        ...['--renew-every', '1', '--kill-every', '50'],
        ...['--apiserver-every', '55', '--apiserver-offset', '20', '--etcd-at', '105'],
        ...['--json', json],
      ];
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        out += c;
      });
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        out += c;
      });
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      process.stdout.write(`${out.slice(out.indexOf('\n| check'))}\n`);
      expect(code, out.slice(-6000)).toBe(0);
      const summary = JSON.parse(await readFile(json, 'utf8')) as {
        counters: { kills: number; apiRestarts: number; etcdRestarts: number };
        renewals: number;
        violations: Record<string, unknown>;
      };
      expect(summary.violations).toEqual({});
      expect(summary.counters.kills).toBeGreaterThanOrEqual(1);
      expect(summary.counters.apiRestarts).toBeGreaterThanOrEqual(1);
      expect(summary.counters.etcdRestarts).toBe(1);
      // Every Secret renewed at least twice after the warm-up issuance.
      expect(summary.renewals).toBeGreaterThanOrEqual(2 * 20);
    },
    10 * 60_000,
  );
});
