import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { testEnv } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { isAlive } from '../testenv/processes.ts';

const PROBE = new URL('../testenv/orphan-probe.ts', import.meta.url).pathname;

async function startProbe(): Promise<{ probe: ReturnType<typeof spawn>; pid: number; url: string }> {
  const probe = spawn(process.execPath, [PROBE], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  probe.stdout?.on('data', (d) => {
    out += d;
  });
  const line = await waitFor('the probe to report its etcd', () => (out.includes('\n') ? out : undefined), {
    timeoutMs: 20_000,
  });
  const { pid, url } = JSON.parse(line) as { pid: number; url: string };
  await waitFor('probe etcd /health', async () => (await fetch(`${url}/health`)).ok);
  return { probe, pid, url };
}

describe('test harness', () => {
  for (const signal of ['SIGINT', 'SIGKILL'] as const) {
    it(`leaves no peer running when the harness process gets ${signal}`, async () => {
      const { probe, pid } = await startProbe();
      expect(isAlive(pid)).toBe(true);
      probe.kill(signal);
      await waitFor(`etcd ${pid} to stop after ${signal}`, () => !isAlive(pid), { timeoutMs: 10_000 });
    });
  }

  it('started every shared peer and knows their pids', () => {
    const env = testEnv();
    expect(Object.keys(env.pids).sort()).toEqual(
      ['etcd', 'kube-apiserver', 'kube-controller-manager', 'named', 'pebble', 'pebble-challtestsrv'].sort(),
    );
    for (const pid of Object.values(env.pids)) expect(isAlive(pid)).toBe(true);
  });
});
