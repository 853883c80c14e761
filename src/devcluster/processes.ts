import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

/**
 * The leash: `bash -c LEASH leash CMD ARGS...` runs CMD and ends it when the script's stdin
 * reaches end-of-file. This process holds the write end of that pipe, so whenever it goes away —
 * clean exit, exception, Ctrl-C or even SIGKILL — the pipe closes and the peer is stopped: no
 * orphaned etcd or kube-apiserver survives a test run or a demo. (Inline rather than a file next
 * to this module, so the compiled dist/ needs nothing copied beside it.)
 */
const LEASH = `set -u
exec 4<&0
"$@" </dev/null 3>&- 4<&- &
child=$!
echo "$child" >&3
exec 3>&-
stop() {
  kill -TERM "$child" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$child" 2>/dev/null || exit 0; sleep 0.1; done
  kill -KILL "$child" 2>/dev/null
  exit 0
}
trap stop TERM INT HUP
( cat <&4 >/dev/null; kill -TERM $$ 2>/dev/null ) &
watcher=$!
wait "$child"
rc=$?
kill "$watcher" 2>/dev/null
exit "$rc"
`;

export interface Peer {
  readonly name: string;
  /** pid of the peer program itself (not of its leash). */
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code once the peer has stopped. */
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();

/**
 * Stops every peer still running (their leashes then stop the programs); synchronous, so it works
 * in an 'exit' or signal handler. Installed for 'exit' here; signal handlers belong to the program
 * (the test harness exits at once, the demo also removes its directory).
 */
export function stopAllPeersNow(): void {
  for (const child of running) {
    try {
      // The leash's stdin is our pipe: ending it stops the peer even if signals are lost.
      child.stdin?.destroy();
      if (child.pid) process.kill(child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
}
process.once('exit', stopAllPeersNow);

/** Stops every peer still running and resolves once their leashes have exited. */
export async function stopAllPeers(): Promise<void> {
  const children = [...running].filter((c) => c.exitCode === null && c.signalCode === null);
  const gone = children.map((c) => new Promise<void>((resolve) => c.once('exit', () => resolve())));
  stopAllPeersNow();
  await Promise.all(gone);
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  logDir: string;
  cwd?: string;
}

/**
 * Starts `bin args` under the leash with output in `<logDir>/<name>.log`. The pid reported is the
 * peer's own (the leash reports it), so tests can assert it is gone after teardown.
 */
export async function startPeer(
  name: string,
  bin: string,
  args: string[],
  opts: StartOptions,
): Promise<Peer> {
  mkdirSync(opts.logDir, { recursive: true });
  const logFile = join(opts.logDir, `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn('bash', ['-c', LEASH, 'leash', bin, ...args], {
    // fd 3: the leash writes the peer's pid on it (a bash that sources start-up files may fork
    // short-lived children first, so /proc's list of children is no reliable witness).
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  running.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      running.delete(child);
      log.end();
      resolve(code);
    });
  });
  const leashPid = child.pid;
  if (leashPid === undefined) throw new Error(`${name}: could not start ${bin}`);
  const pid = await reportedPid(child, 5_000).catch((err: unknown) => {
    throw new Error(`${name}: ${err instanceof Error ? err.message : String(err)}; see ${logFile}`);
  });
  return {
    name,
    pid,
    logFile,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The first line the leash writes on fd 3: the pid of the program it started. */
async function reportedPid(child: ChildProcess, timeoutMs: number): Promise<number> {
  const report = child.stdio[3] as Readable | null | undefined;
  if (!report) throw new Error('the leash has no pid pipe');
  return await new Promise<number>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(
      () => finish(new Error(`the leash reported no pid within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const finish = (result: number | Error) => {
      clearTimeout(timer);
      report.removeAllListeners('data');
      report.destroy();
      if (typeof result === 'number') resolve(result);
      else reject(result);
    };
    report.setEncoding('utf8');
    report.on('data', (chunk: string) => {
      text += chunk;
      const line = /^(\d+)\n/.exec(text);
      if (line?.[1]) finish(Number(line[1]));
    });
    report.once('end', () => finish(new Error('the program exited at once')));
    child.once('exit', () => finish(new Error('the program exited at once')));
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
