/**
 * `npm run chaos`: the long fault suite. Against a control plane of its own (etcd,
 * kube-apiserver, kube-controller-manager from test/testenv), two controller replicas renew
 * opted-in Secrets from a `ca` issuer every few minutes and roll one Deployment per Secret,
 * while the leader is SIGKILLed, kube-apiserver restarted and etcd restarted once; then a
 * fault-free tail. A checker reads every Secret and Deployment every 5 s. Prints a summary table
 * and exits 1 on any violation, 2 on a harness failure. Bounded: it stops by itself.
 *
 *   node test/chaos/chaos.ts [--minutes 20] [--tail-minutes 5] [--secrets 300] [--deployments 30]
 *     [--renew-every 3] [--kill-every 120] [--apiserver-every 240] [--apiserver-offset 60]
 *     [--etcd-at SECONDS] [--max-late 60] [--rss-tolerance 15] [--json FILE] [--keep]
 *
 * Certificates live 1 h (shorter durations are refused) with `renew-before: (60 - renew-every)m`,
 * so each Secret is renewed every `renew-every` minutes.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import {
  type ControllerProcess,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { startOwnControlPlane } from '../testenv/env.ts';
import { makeLeaf, makeTestCA, tlsSecret } from '../testenv/tls-fixtures.ts';

const { values: flags } = parseArgs({
  options: {
    minutes: { type: 'string', default: '20' },
    'tail-minutes': { type: 'string', default: '5' },
    secrets: { type: 'string', default: '300' },
    deployments: { type: 'string' },
    'renew-every': { type: 'string', default: '3' },
    'kill-every': { type: 'string', default: '120' },
    'apiserver-every': { type: 'string', default: '240' },
    'apiserver-offset': { type: 'string', default: '60' },
    'etcd-at': { type: 'string' },
    'max-late': { type: 'string', default: '60' },
    'rss-tolerance': { type: 'string', default: '15' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
  strict: true,
});

function num(name: keyof typeof flags, min: number): number {
  const v = Number(flags[name]);
  if (!Number.isFinite(v) || v < min) {
    process.stderr.write(`chaos: --${name} must be a number ≥ ${min} (got ${String(flags[name])})\n`);
    process.exit(2);
  }
  return v;
}

const S = 1_000;
const MIN = 60 * S;
const faultMs = num('minutes', 0.5) * MIN;
const tailMs = num('tail-minutes', 0.5) * MIN;
const secretCount = Math.floor(num('secrets', 1));
const deploymentCount = Math.min(
  secretCount,
  Math.floor(Number(flags.deployments ?? Math.min(30, secretCount))),
);
const renewEveryMin = Math.floor(num('renew-every', 1));
if (renewEveryMin >= 60) {
  process.stderr.write('chaos: --renew-every must be below 60 (minutes; certificates live 1 h)\n');
  process.exit(2);
}
const periodMs = renewEveryMin * MIN;
const killEveryMs = num('kill-every', 5) * S;
const apiEveryMs = num('apiserver-every', 5) * S;
const apiOffsetMs = num('apiserver-offset', 0) * S;
const etcdAtMs =
  flags['etcd-at'] !== undefined ? num('etcd-at', 1) * S : Math.floor(faultMs / MIN / 2) * MIN + 30 * S;
const maxLateMs = num('max-late', 1) * S;
const rssTolerance = num('rss-tolerance', 1) / 100;
const CHECK_EVERY_MS = 5 * S;
const NS = 'chaos';
const A = 'cert-rotator.io/';
const REPLICAS = 2;

const t0 = Date.now();
const stamp = () => `[chaos +${((Date.now() - t0) / 1000).toFixed(0).padStart(5)}s]`;
const say = (msg: string) => process.stdout.write(`${stamp()} ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Violations by kind, with the first few examples. */
const violations = new Map<string, { count: number; examples: string[] }>();
function violation(kind: string, detail: string): void {
  const v = violations.get(kind) ?? { count: 0, examples: [] };
  v.count++;
  if (v.examples.length < 5) {
    v.examples.push(detail);
    say(`VIOLATION ${kind}: ${detail}`);
  }
  violations.set(kind, v);
}

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)),
  ]);

// ---------------------------------------------------------------- control plane and replicas
say(
  `fault phase ${faultMs / MIN} min, tail ${tailMs / MIN} min, ${secretCount} Secrets, ${deploymentCount} Deployments, renewal every ${renewEveryMin} min`,
);
const { plane, kubeConfig, dir } = await startOwnControlPlane('cert-rotator-chaos-');
say(`control plane up in ${plane.startedInMs} ms (${dir})`);
const core = kubeConfig.makeApiClient(k8s.CoreV1Api);
const apps = kubeConfig.makeApiClient(k8s.AppsV1Api);
const leases = kubeConfig.makeApiClient(k8s.CoordinationV1Api);

let hardStop: NodeJS.Timeout | undefined;
let exitCode = 0;

interface Replica {
  slot: number;
  proc: ControllerProcess;
  startedAt: number;
  /** Set when the harness killed it (then its exit is expected). */
  killedByUs: boolean;
}
const replicas: Replica[] = [];
/** Every replica process started, for their logs when a run fails. */
const everyReplica: Replica[] = [];
let stopping = false;
const counters = {
  kills: 0,
  killSkipped: 0,
  apiRestarts: 0,
  etcdRestarts: 0,
  selfExits: 0,
  checks: 0,
  checkFailures: 0,
  harnessErrors: 0,
};
const failovers: number[] = [];
const selfExitCodes: string[] = [];

async function main(): Promise<void> {
  await core.createNamespace({ body: { metadata: { name: NS } } });
  const ca = await makeTestCA('cert-rotator chaos CA');
  await core.createNamespacedSecret({ namespace: NS, body: tlsSecret('chaos-ca', ca) });
  const configPath = await writeConfig(dir, {
    namespaces: [NS],
    issuers: [{ name: 'chaos-ca', ca: { secret: { namespace: NS, name: 'chaos-ca' } } }],
    defaults: { issuer: 'chaos-ca' },
    leaderElection: { namespace: NS },
  });

  const startReplica = (slot: number): Replica => {
    const proc = startControllerProcess({
      configPath,
      kubeconfigPath: plane.kubeconfigPath,
      extraArgs: ['--log-level', 'info'],
    });
    const r: Replica = { slot, proc, startedAt: Date.now(), killedByUs: false };
    replicas[slot] = r;
    everyReplica.push(r);
    void proc.exited.then(async (code) => {
      if (stopping) return;
      if (!r.killedByUs) {
        counters.selfExits++;
        const last = proc.logs.filter((l) => l.level === 'error').at(-1);
        selfExitCodes.push(`${code}${last ? ` (${String(last.msg)})` : ''}`);
        say(
          `replica ${slot} exited by itself with ${code}${last ? `: ${String(last.msg)}` : ''}; restarting`,
        );
      }
      // What a kubelet does with restartPolicy Always (without its crash-loop backoff).
      await sleep(1_000);
      if (!stopping) startReplica(slot);
    });
    return r;
  };
  for (let i = 0; i < REPLICAS; i++) startReplica(i);

  // ------------------------------------------------------------ warm-up: every Secret issued once
  const names = Array.from({ length: secretCount }, (_, i) => `s-${String(i).padStart(4, '0')}`);
  for (let i = 0; i < names.length; i += 20) {
    await Promise.all(
      names.slice(i, i + 20).map(async (name) => {
        const pair = await makeLeaf({
          dnsNames: [`${name}.chaos.example`],
          fromMs: -2 * 3_600_000,
          toMs: -3_600_000,
        });
        await core.createNamespacedSecret({
          namespace: NS,
          body: tlsSecret(name, pair, {
            [`${A}enabled`]: 'true',
            [`${A}duration`]: '1h',
            [`${A}renew-before`]: `${60 - renewEveryMin}m`,
          }),
        });
      }),
    );
  }
  say(`created ${secretCount} expired opted-in Secrets; waiting for their first issuance`);
  await waitUntil('every Secret issued once', 5 * MIN, async () => {
    const list = await core.listNamespacedSecret({ namespace: NS });
    return (
      list.items.filter((s) => Number(s.metadata?.annotations?.[`${A}revision`] ?? 0) >= 1).length ===
      secretCount
    );
  });
  for (let i = 0; i < deploymentCount; i++) {
    const secret = names[i] as string;
    await apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: `d-${secret}` },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: secret } },
          template: {
            metadata: { labels: { app: secret } },
            spec: {
              containers: [
                {
                  name: 'app',
                  image: 'registry.invalid/app:1',
                  volumeMounts: [{ name: 'tls', mountPath: '/tls' }],
                },
              ],
              volumes: [{ name: 'tls', secret: { secretName: secret } }],
            },
          },
        },
      },
    });
  }
  say(`warm-up done; ${deploymentCount} Deployments created; faults start now`);

  // ------------------------------------------------------------ fault schedule + checker
  const faultStart = Date.now();
  const events: Array<{ at: number; kind: 'kill' | 'apiserver' | 'etcd' }> = [];
  for (let at = killEveryMs; at < faultMs; at += killEveryMs) events.push({ at, kind: 'kill' });
  for (let at = apiOffsetMs || apiEveryMs; at < faultMs; at += apiEveryMs)
    events.push({ at, kind: 'apiserver' });
  if (etcdAtMs < faultMs) events.push({ at: etcdAtMs, kind: 'etcd' });
  events.sort((a, b) => a.at - b.at);
  say(`schedule: ${events.map((e) => `${e.kind}@${e.at / S}s`).join(', ')}`);

  const checker = new Checker(names, names.slice(0, deploymentCount));
  let checking = true;
  const checkLoop = (async () => {
    while (checking) {
      const started = Date.now();
      await checker.check().catch((err: unknown) => {
        counters.checkFailures++;
        if (counters.checkFailures % 10 === 1)
          say(`check failed (API away?): ${String(err).split('\n').slice(0, 3).join(' ').slice(0, 200)}`);
      });
      counters.checks++;
      await sleep(CHECK_EVERY_MS - (Date.now() - started));
    }
  })();

  for (const ev of events) {
    await sleep(faultStart + ev.at - Date.now());
    try {
      if (ev.kind === 'kill') await killLeader();
      else if (ev.kind === 'apiserver') {
        say('restarting kube-apiserver');
        const s = Date.now();
        await plane.restartApiServer();
        counters.apiRestarts++;
        say(`kube-apiserver back after ${Date.now() - s} ms`);
      } else {
        say('restarting etcd');
        const s = Date.now();
        await plane.restartEtcd();
        counters.etcdRestarts++;
        say(`etcd back after ${Date.now() - s} ms`);
      }
    } catch (err) {
      // The harness could not inject this fault (a peer did not come back): not the controller's
      // violation, but the run is no longer the one asked for (exit 2 unless a violation is found).
      counters.harnessErrors++;
      say(`could not inject ${ev.kind}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  await sleep(faultStart + faultMs - Date.now());
  // A fault near the end may still be settling (a leader that could not renew exits within
  // renewDeadline and is restarted): the tail starts once both replicas have run for 20 s and
  // one leads (at most a minute later), so its RSS baseline is not that of a replica listing.
  await waitUntil('both replicas settled and a leader', MIN, async () => {
    const live = replicas.filter(
      (r) => r && r.proc.proc.exitCode === null && Date.now() - r.startedAt > 20 * S,
    );
    return live.length === REPLICAS && (await leader()) !== undefined;
  }).catch(() => say('replicas did not settle within a minute; the tail starts anyway'));

  // ------------------------------------------------------------ fault-free tail: RSS
  say('fault-free tail starts');
  const rss = new RssWatch();
  rss.baseline(
    await leader()
      .then((l) => l?.proc.proc.pid)
      .catch(() => undefined),
  );
  const tailEnd = Date.now() + tailMs;
  while (Date.now() < tailEnd) {
    await sleep(Math.min(CHECK_EVERY_MS, tailEnd - Date.now()));
    rss.sample();
  }
  checking = false;
  await checkLoop;
  // Rollouts owed by the last renewals get a debounce and a patch to land.
  await waitUntil('every owed rollout', 60 * S, async () => {
    await checker.check();
    return checker.owedRollouts() === 0;
  }).catch(() => undefined);
  checker.finish();
  rss.finish();
  printSummary(checker, rss);
}

async function waitUntil(what: string, ms: number, cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      // the API may be away; try again
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(1_000);
  }
}

/** The replica that leads now: the one whose identity the Lease names. */
async function leader(): Promise<Replica | undefined> {
  const lease = await withTimeout(
    leases.readNamespacedLease({ namespace: NS, name: 'cert-rotator' }),
    5_000,
    'Lease',
  );
  const holder = lease.spec?.holderIdentity;
  return replicas.find(
    (r) =>
      r &&
      r.proc.proc.exitCode === null &&
      r.proc.logs.some((l) => l.msg === 'became leader' && l.identity === holder),
  );
}

async function killLeader(): Promise<void> {
  let target: Replica | undefined;
  try {
    target = await leader();
  } catch {
    // the API is away: nobody can tell who leads
  }
  if (!target) {
    counters.killSkipped++;
    say('no live leader to kill right now (failover in progress); skipped');
    return;
  }
  target.killedByUs = true;
  const killedAt = Date.now();
  await target.proc.kill();
  counters.kills++;
  say(`SIGKILLed leader replica ${target.slot}`);
  const others = replicas.filter((r) => r !== target);
  void (async () => {
    const deadline = Date.now() + 2 * MIN;
    while (Date.now() < deadline) {
      for (const r of [...replicas, ...others]) {
        if (!r || r === target) continue;
        const line = r.proc.logs.find(
          (l) => l.msg === 'became leader' && Date.parse(String(l.time)) >= killedAt,
        );
        if (line) {
          const ms = Date.parse(String(line.time)) - killedAt;
          failovers.push(ms);
          say(`new leader after ${ms} ms`);
          return;
        }
      }
      await sleep(200);
    }
    violation(
      'no-failover',
      `no replica took the lease within 2 min of the kill at +${(killedAt - t0) / 1000}s`,
    );
  })();
}

// ---------------------------------------------------------------- the checker
interface SecretState {
  revision: number;
  serial: string;
  notBefore: number;
  /** Revision when the checker first saw it (renewals are counted from there). */
  baseRevision: number;
  lateReported?: string;
}

class Checker {
  private readonly secrets = new Map<string, SecretState>();
  private readonly generations = new Map<string, { base: number; now: number; owedSince?: number }>();
  renewals = 0;
  maxLateMs = 0;
  rollouts = 0;

  private readonly names: string[];
  private readonly rolled: string[];

  constructor(names: string[], rolled: string[]) {
    this.names = names;
    this.rolled = rolled;
  }

  async check(): Promise<void> {
    const [list, deps] = await Promise.all([
      withTimeout(core.listNamespacedSecret({ namespace: NS }), 10_000, 'list Secrets'),
      withTimeout(apps.listNamespacedDeployment({ namespace: NS }), 10_000, 'list Deployments'),
    ]);
    const now = Date.now();
    const byName = new Map(list.items.map((s) => [s.metadata?.name ?? '', s]));
    for (const name of this.names) {
      const s = byName.get(name);
      if (!s) {
        violation('secret-missing', name);
        continue;
      }
      const crt = Buffer.from(s.data?.['tls.crt'] ?? '', 'base64').toString('utf8');
      const key = Buffer.from(s.data?.['tls.key'] ?? '', 'base64').toString('utf8');
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(crt);
      } catch {
        violation('unparseable', name);
        continue;
      }
      if (!cert.checkPrivateKey(createPrivateKey(key)))
        violation('key-mismatch', `${name} serial ${cert.serialNumber}`);
      const notBefore = Date.parse(cert.validFrom);
      const notAfter = Date.parse(cert.validTo);
      if (notAfter <= now) violation('expired', `${name} expired at ${cert.validTo}`);
      const renewalTime = notAfter - (60 - renewEveryMin) * MIN;
      const late = now - renewalTime;
      if (late > this.maxLateMs) this.maxLateMs = late;
      const revision = Number(s.metadata?.annotations?.[`${A}revision`] ?? 0);
      const prev = this.secrets.get(name);
      if (late > maxLateMs && prev?.lateReported !== cert.serialNumber) {
        violation(
          'late',
          `${name} ${Math.round(late / 1000)} s past its renewal time (revision ${revision})`,
        );
      }
      if (!prev) {
        this.secrets.set(name, { revision, serial: cert.serialNumber, notBefore, baseRevision: revision });
        continue;
      }
      if (late > maxLateMs) prev.lateReported = cert.serialNumber;
      if (revision !== prev.revision) {
        if (revision !== prev.revision + 1) {
          violation(
            'double-issuance',
            `${name} revision ${prev.revision} → ${revision} within one ${CHECK_EVERY_MS / 1000} s check`,
          );
        } else if (notBefore - prev.notBefore < periodMs / 2) {
          violation(
            'early-renewal',
            `${name} renewed ${Math.round((notBefore - prev.notBefore) / 1000)} s after the previous issuance`,
          );
        }
        if (cert.serialNumber === prev.serial)
          violation('revision-without-certificate', `${name} revision ${revision}`);
        this.renewals += Math.max(0, revision - prev.revision);
        prev.revision = revision;
        prev.serial = cert.serialNumber;
        prev.notBefore = notBefore;
      }
    }
    const depByName = new Map(deps.items.map((d) => [d.metadata?.name ?? '', d]));
    for (const secret of this.rolled) {
      const d = depByName.get(`d-${secret}`);
      const st = this.secrets.get(secret);
      if (!d || !st) continue;
      const gen = d.metadata?.generation ?? 0;
      let g = this.generations.get(secret);
      if (!g) {
        g = { base: gen - (st.revision - st.baseRevision), now: gen };
        this.generations.set(secret, g);
      }
      g.now = gen;
      const rolls = gen - g.base;
      const renewed = st.revision - st.baseRevision;
      if (rolls > renewed) {
        violation('extra-rollout', `Deployment d-${secret} rolled ${rolls} times for ${renewed} renewals`);
        g.base = gen - renewed; // report each extra roll once
      }
      if (rolls < renewed) {
        g.owedSince ??= now;
        if (now - g.owedSince > maxLateMs + 30 * S) {
          violation(
            'missing-rollout',
            `Deployment d-${secret} rolled ${rolls} times for ${renewed} renewals`,
          );
          g.base = gen - renewed;
          g.owedSince = undefined;
        }
      } else {
        g.owedSince = undefined;
      }
    }
  }

  owedRollouts(): number {
    let owed = 0;
    for (const [secret, g] of this.generations) {
      const st = this.secrets.get(secret);
      if (st) owed += Math.max(0, st.revision - st.baseRevision - (g.now - g.base));
    }
    return owed;
  }

  finish(): void {
    for (const [secret, g] of this.generations) {
      const st = this.secrets.get(secret);
      if (!st) continue;
      const renewed = st.revision - st.baseRevision;
      const rolls = g.now - g.base;
      this.rollouts += rolls;
      if (rolls !== renewed)
        violation(
          'missing-rollout',
          `Deployment d-${secret} rolled ${rolls} times for ${renewed} renewals (final)`,
        );
    }
  }

  expectedRollouts(): number {
    let n = 0;
    for (const secret of this.rolled) {
      const st = this.secrets.get(secret);
      if (st) n += st.revision - st.baseRevision;
    }
    return n;
  }
}

interface RssTrack {
  slot: number;
  rss: number;
  max: number;
  min: number;
  last: number;
  leading: boolean;
  /** [seconds since the tail started, MiB]: to tell a swing with renewal bursts from a leak. */
  series: Array<[number, number]>;
}

class RssWatch {
  private readonly base = new Map<number, RssTrack>();
  private readonly started = Date.now();

  private read(pid: number): number | undefined {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  baseline(leaderPid?: number): void {
    for (const r of replicas) {
      const pid = r?.proc.proc.pid;
      const rss = pid ? this.read(pid) : undefined;
      if (pid && rss)
        this.base.set(pid, {
          slot: r.slot,
          rss,
          max: rss,
          min: rss,
          last: rss,
          leading: pid === leaderPid,
          series: [[0, Number(mib(rss))]],
        });
    }
  }

  series(): Record<string, Array<[number, number]>> {
    return Object.fromEntries([...this.base].map(([pid, b]) => [`replica ${b.slot} (pid ${pid})`, b.series]));
  }

  sample(): void {
    for (const r of replicas) {
      const pid = r?.proc.proc.pid;
      if (!pid) continue;
      const b = this.base.get(pid);
      if (!b) {
        violation(
          'replica-restarted-in-tail',
          `replica ${r.slot} (pid ${pid}) started during the fault-free tail`,
        );
        this.base.set(pid, { slot: r.slot, rss: 0, max: 0, min: 0, last: 0, leading: false, series: [] });
        continue;
      }
      const rss = this.read(pid);
      if (rss === undefined || b.rss === 0) continue;
      b.max = Math.max(b.max, rss);
      b.min = Math.min(b.min, rss);
      b.last = rss;
      b.series.push([Math.round((Date.now() - this.started) / 1000), Number(mib(rss))]);
    }
  }

  finish(): void {
    for (const [pid, b] of this.base) {
      if (b.rss === 0) continue;
      if (b.max > b.rss * (1 + rssTolerance) || b.min < b.rss * (1 - rssTolerance)) {
        violation(
          'rss',
          `replica ${b.slot} (pid ${pid}) RSS ${mib(b.min)}–${mib(b.max)} MiB against ${mib(b.rss)} MiB at the tail's start (±${rssTolerance * 100} %)`,
        );
      }
    }
  }

  rows(): Array<[string, string, string]> {
    return [...this.base.values()].map((b) => [
      `RSS replica ${b.slot}${b.leading ? ' (leader)' : ' (standby)'} start → end, min/max`,
      `${mib(b.rss)} → ${mib(b.last)} MiB, ${mib(b.min)}/${mib(b.max)} (${pct(b.max / b.rss - 1)})`,
      `±${rssTolerance * 100} %`,
    ]);
  }
}

const mib = (b: number) => (b / 1048576).toFixed(1);
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
const median = (xs: number[]) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
};

function printSummary(checker: Checker, rss: RssWatch): void {
  const v = (k: string) => violations.get(k)?.count ?? 0;
  const rows: Array<[string, string, string]> = [
    ['fault phase / tail', `${faultMs / MIN} min / ${tailMs / MIN} min`, ''],
    ['Secrets / Deployments', `${secretCount} / ${deploymentCount}`, ''],
    ['leader SIGKILLs (skipped: no leader)', `${counters.kills} (${counters.killSkipped})`, ''],
    ['kube-apiserver restarts / etcd restarts', `${counters.apiRestarts} / ${counters.etcdRestarts}`, ''],
    [
      'replica exits by themselves',
      `${counters.selfExits}${selfExitCodes.length ? `: ${[...new Set(selfExitCodes)].join('; ')}` : ''}`,
      'any (restarted)',
    ],
    [
      'failover after SIGKILL median / max',
      `${median(failovers)} / ${Math.max(0, ...failovers)} ms (n=${failovers.length})`,
      '',
    ],
    ['checks (failed: API away)', `${counters.checks} (${counters.checkFailures})`, ''],
    ['faults the harness could not inject', String(counters.harnessErrors), '0'],
    [
      'renewals seen',
      String(checker.renewals),
      `≈ ${Math.round(((faultMs + tailMs) / periodMs) * secretCount)}`,
    ],
    [
      'max lateness past renewal time',
      `${Math.round(checker.maxLateMs / 1000)} s`,
      `≤ ${maxLateMs / 1000} s`,
    ],
    ['late Secrets', String(v('late')), '0'],
    ['expired certificates', String(v('expired')), '0'],
    ['key/certificate mismatches', String(v('key-mismatch')), '0'],
    ['double issuance / early renewal', `${v('double-issuance')} / ${v('early-renewal')}`, '0 / 0'],
    ['rollouts seen / expected', `${checker.rollouts} / ${checker.expectedRollouts()}`, 'equal'],
    ['extra / missing rollouts', `${v('extra-rollout')} / ${v('missing-rollout')}`, '0 / 0'],
    ...rss.rows(),
  ];
  const other = [...violations.keys()].filter(
    (k) =>
      ![
        'late',
        'expired',
        'key-mismatch',
        'double-issuance',
        'early-renewal',
        'extra-rollout',
        'missing-rollout',
      ].includes(k),
  );
  for (const k of other) rows.push([`violation: ${k}`, String(v(k)), '0']);
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]?.length ?? 0), 5));
  const line = (r: [string, string, string]) => `| ${r.map((c, i) => c.padEnd(w[i] ?? 0)).join(' | ')} |`;
  const out = [
    line(['check', 'value', 'limit']),
    `|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`,
    ...rows.map(line),
    '',
    violations.size === 0
      ? 'chaos: no violations'
      : `chaos: ${[...violations.values()].reduce((a, b) => a + b.count, 0)} violations:\n${[...violations].map(([k, x]) => `  ${k}: ${x.count} (e.g. ${x.examples.join('; ')})`).join('\n')}`,
  ].join('\n');
  process.stdout.write(`\n${out}\n`);
  if (flags.json) {
    writeFileSync(
      flags.json,
      JSON.stringify(
        {
          rows,
          violations: Object.fromEntries(violations),
          counters,
          failovers,
          renewals: checker.renewals,
          rssSeriesMiB: rss.series(),
        },
        null,
        2,
      ),
    );
  }
  if (violations.size > 0) exitCode = 1;
  else if (counters.harnessErrors > 0) exitCode = 2;
}

async function shutdown(): Promise<void> {
  stopping = true;
  await Promise.all(replicas.map((r) => r?.proc.kill()));
  await plane.stop();
  // Logs of a failed run are kept for a look at the peers and replicas.
  if (exitCode !== 0 || flags.keep) {
    everyReplica.forEach((r, i) => {
      writeFileSync(join(dir, `replica-${r.slot}-${i}.log`), r.proc.output());
    });
  }
  if (!flags.keep && exitCode === 0) await rm(dir, { recursive: true, force: true });
  else say(`kept ${dir}`);
}

// Bounded: whatever happens, the suite ends.
hardStop = setTimeout(
  () => {
    say('hard time limit reached; stopping');
    violation('harness-timeout', 'the suite did not finish in time');
    void shutdown().finally(() => process.exit(2));
  },
  faultMs + tailMs + 15 * MIN,
);
try {
  await main();
} catch (err) {
  say(`harness failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  exitCode = 2;
} finally {
  clearTimeout(hardStop);
  await shutdown();
}
process.exit(exitCode);
