import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeUnavailableReason } from '../../src/devcluster/node.ts';
import { waitFor } from '../testenv/net.ts';
import { isAlive } from '../testenv/processes.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const ESC = String.fromCharCode(27);
/** Cursor up N lines to the start of the block drawn before, then clear to the end of the screen. */
const REDRAW = new RegExp(`${ESC}\\[\\d+F${ESC}\\[J`, 'g');
const CLI = join(ROOT, 'src/cli.ts');

interface Run {
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/**
 * `npm run demo`, the README's command, exactly as CI runs it (no TTY); or the CLI directly, so a
 * signal reaches the demo itself rather than npm.
 */
function startDemo(via: 'npm' | 'node'): Run {
  const proc =
    via === 'npm'
      ? spawn('npm', ['run', '--silent', 'demo'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, [CLI, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout?.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  proc.stderr?.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))),
  );
  return { proc, output: () => out, exited };
}

/** The `pids: etcd=1 kube-apiserver=2 ...` line the demo prints once everything is started. */
function reportedPids(output: string): Record<string, number> {
  const line = /^\S+ pids: (.+)$/m.exec(output)?.[1];
  if (!line) throw new Error(`no pids line in:\n${output}`);
  return Object.fromEntries(line.split(' ').map((kv) => [kv.split('=')[0], Number(kv.split('=')[1])]));
}

function reportedDir(output: string): string {
  const dir = /^\S+ directory: (\S+)$/m.exec(output)?.[1];
  if (!dir) throw new Error(`no directory line in:\n${output}`);
  return dir;
}

/**
 * Whether the demo ran on a node (it says so, or says in one line why it could not). With CI=true
 * on a machine where the node can run, it must have: nothing else holds the node there.
 */
function onNode(output: string): boolean {
  if (/step 2\/4: a one-node cluster/.test(output)) return true;
  expect(output).toMatch(/^\S+ no node: .+; the pods are not run/m);
  if (process.env.CI === 'true') expect(nodeUnavailableReason(), output).not.toBe(undefined);
  return false;
}

async function expectNothingLeft(output: string): Promise<void> {
  const pids = reportedPids(output);
  // On a node (root, Linux, provisioned) the demo also runs containerd, the kubelet, the scheduler
  // and kube-proxy; without one, only the control plane and the controller.
  const nodePeers = onNode(output) ? ['containerd', 'kube-proxy', 'kube-scheduler', 'kubelet'] : [];
  expect(Object.keys(pids).sort()).toEqual(
    ['controller', 'etcd', 'kube-apiserver', 'kube-controller-manager', ...nodePeers].sort(),
  );
  // A process the leash had to SIGKILL can linger for a moment as a zombie.
  await waitFor('every process the demo started to be gone', () =>
    Object.values(pids).every((pid) => !isAlive(pid)),
  );
  expect(existsSync(reportedDir(output))).toBe(false);
}

describe('cert-rotator demo (non-TTY, as in CI)', () => {
  it('renews the certificate live, rolls the Deployment to a new ReplicaSet, ends on its own and leaves nothing behind', async () => {
    const demo = startDemo('npm');
    const code = await demo.exited;
    const out = demo.output();
    expect(code, out).toBe(0);
    // Plain timestamped lines, no terminal control sequences.
    expect(out).not.toContain('\x1b[');
    for (const line of out.trim().split('\n')) expect(line).toMatch(/^\d\d:\d\d:\d\dZ /);
    // Provisioning: one line per step (cached here; a first build says how long it will take).
    expect(out).toMatch(/\[provision\] etcd \S+: (cached|built in)/);
    expect(out).toMatch(/\[provision\] kubernetes \S+: (cached|built in)/);
    expect(out).toMatch(/\[provision\] control plane ready in /);
    // The certificate before and after, the renewal, the new ReplicaSet and the events.
    expect(out).toMatch(
      /certificate cert-rotator-demo\/web-tls: serial [0-9a-f]{16}…, notAfter \S+ \((?:2m|1m5\ds) left\)/,
    );
    expect(out).toMatch(
      /certificate cert-rotator-demo\/web-tls: serial [0-9a-f]{16}…, .*revision 1, .* — renewed/,
    );
    expect(out).toMatch(/event .* Renewed +Secret\/web-tls: renewed by issuer "demo-ca"/);
    if (onNode(out)) {
      // What the pods serve: the first certificate by the first pods, the renewed one by the new.
      const first =
        /served: pods (web-\S+), (web-\S+) served ([0-9a-f]{16})…; they were replaced by (web-\S+), (web-\S+), each serving ([0-9a-f]{16})… \(TLS handshakes with the pod IPs\)/.exec(
          out,
        );
      expect(first, out).not.toBeNull();
      const [, a, b, oldSerial, c, d, newSerial] = first ?? [];
      expect(oldSerial).not.toBe(newSerial);
      expect(new Set([a, b, c, d]).size).toBe(4);
      for (const pod of [a, b])
        expect(out).toMatch(
          new RegExp(
            `pod ${pod} \\(10\\.[0-9.]+\\) Ready, a TLS handshake is served serial ${oldSerial}… \\(the first certificate\\)`,
          ),
        );
      for (const pod of [c, d])
        expect(out).toMatch(
          new RegExp(
            `pod ${pod} \\(10\\.[0-9.]+\\) Ready, a TLS handshake is served serial ${newSerial}… \\(the renewed certificate\\)`,
          ),
        );
      expect(out).toMatch(/ReplicaSet web-[a-z0-9]+ created by the restart: its pods replace the first ones/);
      expect(out).toMatch(/pod web-\S+ terminating \(replaced\)/);
    } else {
      expect(out).toMatch(
        /ReplicaSet web-[a-z0-9]+ created by the restart: rollout done \(the demo cluster has no nodes/,
      );
    }
    expect(out).toMatch(/event .* RolloutTriggered +Deployment\/web:/);
    expect(out).toMatch(/summary:\n.*renewed: serial [0-9a-f]{16}… \(notAfter \S+\) → [0-9a-f]{16}…/);
    expect(out).toMatch(
      /rollout done: Deployment web has the new ReplicaSet web-[a-z0-9]+ beside web-[a-z0-9]+/,
    );
    await expectNothingLeft(out);
  }, 240_000);

  it('on a terminal refreshes one block in place, and Ctrl-C stops everything and removes its directory', async () => {
    // A real pseudo-terminal (util-linux `script`): stdout is a TTY, and ^C typed into it sends
    // SIGINT to the whole foreground process group, as a user's Ctrl-C does.
    const proc = spawn('script', ['-q', '-e', '-c', `${process.execPath} ${CLI} demo`, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout?.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    // Two redraws: cursor up over the block drawn before, clear, draw again.
    await waitFor('the live view to redraw in place twice', () => (out.match(REDRAW) ?? []).length >= 2, {
      timeoutMs: 120_000,
    });
    expect(out).toMatch(/Secret cert-rotator-demo\/web-tls {2}\(issuer demo-ca, renew-before 100s\)/);
    expect(out).toMatch(/ {2}notAfter {2}\S+ {3}1m5\ds left/);
    proc.stdin?.write('\x03');
    expect(await exited, out).toBe(130);
    const plain = out.replace(/\r/g, '');
    expect(plain).toMatch(/SIGINT: stopping/);
    await expectNothingLeft(plain);
  }, 180_000);

  it('stops everything and removes its directory on SIGTERM', async () => {
    const demo = startDemo('node');
    await waitFor('the demo to report its pids', () => /^\S+ directory: /m.test(demo.output()), {
      timeoutMs: 120_000,
    });
    demo.proc.kill('SIGTERM');
    expect(await demo.exited, demo.output()).toBe(143);
    expect(demo.output()).toMatch(/SIGTERM: stopping/);
    await expectNothingLeft(demo.output());
  }, 180_000);
});
