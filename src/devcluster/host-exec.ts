import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';

/**
 * Runs a host tool (ip, iptables-save, umount, ctr ...) and resolves with its stdout; rejects with
 * one line naming the command and what it said on stderr.
 */
export async function run(
  cmd: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          const why = (stderr || err.message).trim().split('\n').slice(-3).join(' | ');
          reject(new Error(`${cmd} ${args.join(' ')}: ${why}`));
        } else {
          resolve(stdout);
        }
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** `net.ipv4.ip_forward` → /proc/sys/net/ipv4/ip_forward. */
export function sysctlPath(name: string): string {
  return `/proc/sys/${name.replaceAll('.', '/')}`;
}

/** The value of a kernel tunable, or undefined where this kernel has none (no br_netfilter, say). */
export async function readSysctl(name: string): Promise<string | undefined> {
  try {
    return (await readFile(sysctlPath(name), 'utf8')).trim();
  } catch {
    return undefined;
  }
}

export async function writeSysctl(name: string, value: string): Promise<void> {
  try {
    await writeFile(sysctlPath(name), `${value}\n`);
  } catch (err) {
    throw new Error(`cannot set ${name}=${value}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Kernel tunables the node may change: the bridge plugin turns on ip_forward, kube-proxy sets
 * route_localnet (and would touch conntrack limits were its settings not 0), the kubelet sets the
 * six of its kernel defaults (its protectKernelDefaults is off). The launcher records them before
 * anything starts and restores the ones that changed; the host snapshot compares them.
 */
export const NODE_SYSCTLS = [
  'net.ipv4.ip_forward',
  'net.ipv4.conf.all.route_localnet',
  'net.ipv4.conf.all.forwarding',
  'net.ipv4.conf.default.forwarding',
  'net.bridge.bridge-nf-call-iptables',
  'net.bridge.bridge-nf-call-ip6tables',
  'net.netfilter.nf_conntrack_max',
  'net.netfilter.nf_conntrack_tcp_timeout_established',
  'net.netfilter.nf_conntrack_tcp_timeout_close_wait',
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
] as const;
