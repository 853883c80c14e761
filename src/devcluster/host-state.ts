import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NODE_SYSCTLS, readSysctl, run } from './host-exec.ts';

/**
 * What a node could change on its host, as sorted lines per section: links, addresses, routes,
 * kernel tunables, iptables rules, mounts, /etc/hosts and /etc/resolv.conf, and the entries of the
 * directories the node writes outside its own root. Taken before the e2e tests and after, and
 * compared: any difference fails the run. Volatile detail (counters, interface indexes, statistics)
 * is left out so that only a change shows.
 */
export type HostSnapshot = Record<string, string[]>;

/** Directories whose entries (to the depth given) are compared. */
const WATCHED_DIRS: Array<[string, number]> = [
  ['/var/lib', 1],
  ['/var/lib/kubelet', 3],
  ['/var/lib/cni', 3],
  ['/var/log', 1],
  ['/var/log/containers', 1],
  ['/var/log/pods', 1],
  ['/run', 1],
  ['/run/netns', 1],
  ['/run/containerd', 2],
  ['/etc', 1],
  ['/etc/cni', 2],
  ['/opt', 2],
];

/** The node's lock and change record live here on purpose (see node-record.ts). */
const IGNORED = new Set(['/run/cert-rotator-node']);

interface IpLink {
  ifname: string;
  flags?: string[];
  mtu?: number;
  master?: string;
  link_type?: string;
}
interface IpAddr {
  ifname: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  type?: string;
}

async function json<T>(args: string[]): Promise<T[]> {
  return JSON.parse((await run('ip', ['-j', ...args])) || '[]') as T[];
}

async function links(): Promise<string[]> {
  return (await json<IpLink>(['link', 'show'])).map(
    (l) =>
      `${l.ifname} ${l.link_type ?? ''} mtu ${l.mtu ?? ''} master ${l.master ?? '-'} ${(l.flags ?? []).filter((f) => f !== 'LOWER_UP').join(',')}`,
  );
}

async function addresses(): Promise<string[]> {
  return (await json<IpAddr>(['addr', 'show'])).flatMap((l) =>
    (l.addr_info ?? []).map((a) => `${l.ifname} ${a.family} ${a.local}/${a.prefixlen}`),
  );
}

async function routes(): Promise<string[]> {
  const out: string[] = [];
  for (const family of ['-4', '-6']) {
    for (const r of await json<IpRoute>([family, 'route', 'show', 'table', 'all'])) {
      out.push(
        `${r.type ?? 'unicast'} ${r.dst} via ${r.gateway ?? '-'} dev ${r.dev ?? '-'} table ${r.table ?? 'main'} proto ${r.protocol ?? '-'} scope ${r.scope ?? '-'} src ${r.prefsrc ?? '-'}`,
      );
    }
  }
  return out;
}

async function sysctls(): Promise<string[]> {
  const out: string[] = [];
  for (const name of NODE_SYSCTLS) out.push(`${name} = ${(await readSysctl(name)) ?? '(absent)'}`);
  return out;
}

/** iptables-save without comments and counters; [] where the tool is not installed. */
export async function iptablesRules(tool: 'iptables-save' | 'ip6tables-save'): Promise<string[]> {
  let text: string;
  try {
    text = await run(tool, []);
  } catch (err) {
    if (err instanceof Error && /ENOENT/.test(err.message)) return [];
    throw err;
  }
  let table = '';
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line === 'COMMIT') continue;
    if (line.startsWith('*')) {
      table = line.slice(1);
      continue;
    }
    out.push(`${table} ${line.replace(/ \[\d+:\d+\]$/, '')}`);
  }
  return out;
}

/** Mount points from /proc/self/mountinfo (octal escapes decoded): "TARGET FSTYPE SOURCE". */
export async function mounts(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const [pre, post = ''] = line.split(' - ');
      const target = unescapeMount(pre?.split(' ')[4] ?? '');
      const [fstype, source] = post.split(' ');
      return `${target} ${fstype ?? ''} ${source ?? ''}`;
    });
}

export function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

async function fileLines(path: string): Promise<string[]> {
  if (!existsSync(path)) return ['(absent)'];
  return (await readFile(path, 'utf8')).split('\n').map((l, i) => `${i + 1}: ${l}`);
}

async function entries(dir: string, depth: number): Promise<string[]> {
  if (IGNORED.has(dir)) return [];
  let names: Array<{ name: string; isDirectory(): boolean; isSymbolicLink(): boolean }>;
  try {
    names = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of names) {
    const path = join(dir, e.name);
    if (IGNORED.has(path)) continue;
    out.push(path);
    if (depth > 1 && e.isDirectory() && !e.isSymbolicLink()) out.push(...(await entries(path, depth - 1)));
  }
  return out;
}

/** Top-level cgroups of every cgroup v1 hierarchy (and of the unified one): the kubelet adds kubepods. */
async function cgroups(): Promise<string[]> {
  const root = '/sys/fs/cgroup';
  const out: string[] = [];
  for (const hierarchy of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (!hierarchy.isDirectory()) continue;
    const dir = join(root, hierarchy.name);
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) out.push(join(dir, e.name));
    }
  }
  return out;
}

export async function snapshotHost(): Promise<HostSnapshot> {
  const dirs: string[] = [];
  for (const [dir, depth] of WATCHED_DIRS) dirs.push(...(await entries(dir, depth)));
  const snap: HostSnapshot = {
    links: await links(),
    addresses: await addresses(),
    routes: await routes(),
    sysctls: await sysctls(),
    iptables: await iptablesRules('iptables-save'),
    ip6tables: await iptablesRules('ip6tables-save'),
    mounts: await mounts(),
    '/etc/hosts': await fileLines('/etc/hosts'),
    '/etc/resolv.conf': await fileLines('/etc/resolv.conf'),
    directories: dirs,
    cgroups: await cgroups(),
  };
  for (const key of Object.keys(snap)) {
    if (!key.startsWith('/')) snap[key] = [...new Set(snap[key])].sort();
  }
  return snap;
}

/** One line per difference ("routes: + unicast 10.217.1.0/24 ..."); empty when the host is as found. */
export function diffHost(before: HostSnapshot, after: HostSnapshot): string[] {
  const out: string[] = [];
  for (const section of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const a = new Set(before[section] ?? []);
    const b = new Set(after[section] ?? []);
    for (const line of a) if (!b.has(line)) out.push(`${section}: - ${line}`);
    for (const line of b) if (!a.has(line)) out.push(`${section}: + ${line}`);
  }
  return out;
}
