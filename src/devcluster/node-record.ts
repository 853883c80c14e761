import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NODE_SYSCTLS, readSysctl, run, writeSysctl } from './host-exec.ts';
import { iptablesRules, mounts } from './host-state.ts';

/**
 * The node's record of what it changes on the host, written before each change, so that stop()
 * — or the next start, after a run whose processes were killed — restores exactly that: its
 * processes, mounts, bridge, iptables chains, kernel tunables, cgroups and the directories it
 * created outside its own root. Lives beside the lock in NODE_STATE_DIR (a tmpfs: after a reboot
 * nothing but directories is left, and those are recorded too).
 */
export const NODE_STATE_DIR = '/run/cert-rotator-node';
const RECORD = join(NODE_STATE_DIR, 'record.json');

/** Chains the node owns in every iptables table: kubelet's and kube-proxy's, and its own guard. */
export const OWNED_CHAIN = /^(KUBE-|CR-NODE-)/;

/**
 * Paths outside the node's root that the kubelet, containerd or the CNI plugins write whatever
 * their configuration says: the kubelet's device-plugin socket and /var/log/containers links,
 * containerd 1.6's shim sockets and network namespaces, libcni's result cache.
 */
export const OUTSIDE_PATHS = [
  '/var/lib/kubelet',
  '/var/lib/cni',
  '/var/log/containers',
  '/var/log/pods',
  '/run/containerd',
  '/run/netns',
  '/etc/cni',
  '/opt/cni',
  '/opt/containerd',
  '/var/lib/containerd',
] as const;

export interface NodeRecord {
  /** The run's own directory: everything under it is the node's. */
  root: string;
  bridge: string;
  /** Programs started, with their start time (/proc/PID/stat field 22) against pid reuse. */
  pids: Array<{ name: string; pid: number; start: string }>;
  /** Kernel tunables as found. */
  sysctls: Record<string, string>;
  /** Owned iptables chains that were already there (none, normally). */
  chainsBefore: { v4: string[]; v6: string[] };
  mountsBefore: string[];
  paths: Array<{ path: string; existed: boolean; entries: string[] }>;
  cgroupsBefore: string[];
}

export async function loadRecord(): Promise<NodeRecord | undefined> {
  if (!existsSync(RECORD)) return undefined;
  return JSON.parse(await readFile(RECORD, 'utf8')) as NodeRecord;
}

export async function saveRecord(rec: NodeRecord): Promise<void> {
  await mkdir(NODE_STATE_DIR, { recursive: true });
  await writeFile(`${RECORD}.tmp`, JSON.stringify(rec, null, 2));
  await rename(`${RECORD}.tmp`, RECORD);
}

async function ownedChains(tool: 'iptables-save' | 'ip6tables-save'): Promise<string[]> {
  return (await iptablesRules(tool))
    .map((l) => /^(\S+) :(\S+) /.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && OWNED_CHAIN.test(m[2] ?? ''))
    .map((m) => `${m[1]} ${m[2]}`);
}

async function topCgroups(): Promise<string[]> {
  const out: string[] = [];
  for (const h of await readdir('/sys/fs/cgroup', { withFileTypes: true }).catch(() => [])) {
    if (!h.isDirectory()) continue;
    for (const e of await readdir(join('/sys/fs/cgroup', h.name), { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) out.push(join('/sys/fs/cgroup', h.name, e.name));
    }
  }
  return out;
}

/** The host as found, before the node changes anything. */
export async function newRecord(root: string, bridge: string): Promise<NodeRecord> {
  const sysctls: Record<string, string> = {};
  for (const name of NODE_SYSCTLS) {
    const v = await readSysctl(name);
    if (v !== undefined) sysctls[name] = v;
  }
  const paths: NodeRecord['paths'] = [];
  for (const path of OUTSIDE_PATHS) {
    const existed = existsSync(path);
    paths.push({ path, existed, entries: existed ? await readdir(path).catch(() => []) : [] });
  }
  return {
    root,
    bridge,
    pids: [],
    sysctls,
    chainsBefore: { v4: await ownedChains('iptables-save'), v6: await ownedChains('ip6tables-save') },
    mountsBefore: (await mounts()).map((m) => m.split(' ')[0] ?? ''),
    paths,
    cgroupsBefore: await topCgroups(),
  };
}

export async function startTimeOf(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces; fields after its closing parenthesis are plain.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = pids;
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    left = left.filter((p) => existsSync(`/proc/${p}`));
  }
  return left;
}

async function killAll(pids: number[], graceMs: number): Promise<void> {
  for (const p of pids) signal(p, 'SIGTERM');
  const left = await waitGone(pids, graceMs);
  for (const p of left) signal(p, 'SIGKILL');
  await waitGone(left, 5_000);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

/** Every process whose command line names the node's root (containerd, shims, a stale kubelet ...). */
async function processesUnder(root: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(root)) out.push(pid);
  }
  return out;
}

/** Processes in the cgroups the node created (the pods' containers). */
async function processesInCgroups(dirs: string[]): Promise<number[]> {
  const pids = new Set<number>();
  const walk = async (dir: string) => {
    const procs = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const p of procs.split('\n')) if (p !== '') pids.add(Number(p));
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(dir, e.name));
    }
  };
  for (const d of dirs) await walk(d);
  return [...pids];
}

async function removeCgroup(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) await removeCgroup(join(dir, e.name));
  }
  await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}

/**
 * Removes the owned chains that were not there before, and the rules of other chains that jump
 * to them, in one iptables-restore --noflush per family.
 */
async function removeChains(family: 'v4' | 'v6', before: string[]): Promise<void> {
  const save = family === 'v4' ? 'iptables-save' : 'ip6tables-save';
  const restore = family === 'v4' ? 'iptables-restore' : 'ip6tables-restore';
  const rules = await iptablesRules(save);
  if (rules.length === 0) return;
  const keep = new Set(before);
  const byTable = new Map<string, { deletes: string[]; chains: string[] }>();
  const of = (t: string) => {
    let e = byTable.get(t);
    if (!e) {
      e = { deletes: [], chains: [] };
      byTable.set(t, e);
    }
    return e;
  };
  for (const line of rules) {
    const sp = line.indexOf(' ');
    const table = line.slice(0, sp);
    const rest = line.slice(sp + 1);
    const chain = /^:(\S+) /.exec(rest)?.[1];
    if (chain && OWNED_CHAIN.test(chain) && !keep.has(`${table} ${chain}`)) of(table).chains.push(chain);
    const rule = /^-A (\S+) (.*)$/.exec(rest);
    if (rule?.[1] && !OWNED_CHAIN.test(rule[1])) {
      const target = /(?:^| )-[jg] (\S+)/.exec(rule[2] ?? '')?.[1];
      if (target && OWNED_CHAIN.test(target) && !keep.has(`${table} ${target}`)) {
        of(table).deletes.push(`-D ${rule[1]} ${rule[2]}`);
      }
    }
  }
  let script = '';
  for (const [table, { deletes, chains }] of byTable) {
    if (deletes.length === 0 && chains.length === 0) continue;
    script += `*${table}\n${deletes.join('\n')}${deletes.length ? '\n' : ''}`;
    for (const c of chains) script += `-F ${c}\n`;
    for (const c of chains) script += `-X ${c}\n`;
    script += 'COMMIT\n';
  }
  if (script !== '') await run(restore, ['--noflush', '-w', '5'], { input: script });
}

/**
 * Puts the host back as the record found it. Idempotent: a second call finds nothing to do.
 * Every step runs even when an earlier one failed; the failures are reported together.
 */
export async function restoreHost(
  rec: NodeRecord,
  log: (line: string) => void = () => undefined,
): Promise<void> {
  const problems: string[] = [];
  const step = async (what: string, f: () => Promise<void>) => {
    try {
      await f();
    } catch (err) {
      problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const newCgroups = (await topCgroups()).filter(
    (c) => !rec.cgroupsBefore.includes(c) && /\/kubepods[^/]*$/.test(c),
  );

  await step('stopping the node processes', async () => {
    const recorded: number[] = [];
    for (const p of rec.pids) if ((await startTimeOf(p.pid)) === p.start) recorded.push(p.pid);
    // What was started (the kubelet would restart containers), then the pods' processes (test
    // pods: no grace), then whatever else runs from the node's root (containerd's shims).
    await killAll(recorded, 10_000);
    await killAll(await processesInCgroups(newCgroups), 0);
    await killAll(await processesUnder(rec.root), 2_000);
  });

  await step('unmounting', async () => {
    const owned = [rec.root, ...rec.paths.map((p) => p.path)];
    const before = new Set(rec.mountsBefore);
    for (let pass = 0; pass < 5; pass++) {
      const targets = (await mounts())
        .map((m) => m.split(' ')[0] ?? '')
        .filter((t) => !before.has(t) && owned.some((o) => isUnder(t, o)))
        .sort((a, b) => b.length - a.length);
      if (targets.length === 0) return;
      for (const t of [...new Set(targets)]) await run('umount', ['-l', t]).catch(() => undefined);
    }
    throw new Error('mounts still there after five passes');
  });

  await step(`deleting bridge ${rec.bridge}`, async () => {
    const ports = JSON.parse(
      (await run('ip', ['-j', 'link', 'show', 'master', rec.bridge]).catch(() => '')) || '[]',
    ) as Array<{
      ifname: string;
    }>;
    for (const p of ports)
      await run('ip', ['link', 'del', p.ifname.split('@')[0] ?? p.ifname]).catch(() => undefined);
    if (existsSync(`/sys/class/net/${rec.bridge}`)) await run('ip', ['link', 'del', rec.bridge]);
  });

  await step('removing iptables chains', async () => {
    await removeChains('v4', rec.chainsBefore.v4);
    await removeChains('v6', rec.chainsBefore.v6);
  });

  await step('restoring kernel tunables', async () => {
    for (const [name, value] of Object.entries(rec.sysctls)) {
      if ((await readSysctl(name)) !== value) {
        log(`restoring ${name} = ${value}`);
        await writeSysctl(name, value);
      }
    }
  });

  await step('removing cgroups', async () => {
    for (const c of newCgroups) await removeCgroup(c);
  });

  await step('removing directories', async () => {
    for (const p of rec.paths) {
      if (!p.existed) {
        await rm(p.path, { recursive: true, force: true });
      } else {
        const keep = new Set(p.entries);
        for (const e of await readdir(p.path).catch(() => [])) {
          if (!keep.has(e)) await rm(join(p.path, e), { recursive: true, force: true });
        }
      }
    }
  });

  if (problems.length > 0) throw new Error(`the host could not be fully restored: ${problems.join('; ')}`);
  await rm(RECORD, { force: true });
}
