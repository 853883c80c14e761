/**
 * How the sidecar tells an application that new files are in place: a signal to a process found
 * by name in the shared process namespace, an HTTP POST, or a program run without a shell. Each
 * reload is retried with backoff; errors name what to change in the Pod spec.
 */
import type * as ChildProcess from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { constants } from 'node:os';
import { ReloadMethod } from '../names.ts';
import { http } from './builtins.ts';

export type ReloadMethodValue = (typeof ReloadMethod)[keyof typeof ReloadMethod];

export interface Reloader {
  readonly method: ReloadMethodValue;
  /** For logs and /readyz: "signal SIGHUP to nginx", "POST http://...". */
  readonly description: string;
  reload(): Promise<void>;
}

export class ReloadError extends Error {
  override readonly name = 'ReloadError';
}

/** `HUP`, `SIGHUP`, `hup` → `SIGHUP`, or undefined for a name Node does not know. */
export function normaliseSignal(name: string): NodeJS.Signals | undefined {
  const upper = name.toUpperCase();
  const full = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  return Object.hasOwn(constants.signals, full) ? (full as NodeJS.Signals) : undefined;
}

interface ProcInfo {
  pid: number;
  comm: string;
  /** Start time in clock ticks since boot (field 22 of /proc/PID/stat). */
  start: number;
}

async function readProc(pid: number): Promise<ProcInfo | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // comm is in parentheses and may contain spaces or ')': the fields resume after the last ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    return { pid, comm, start: Number(fields[19]) };
  } catch {
    return undefined; // exited while we looked
  }
}

async function uidOf(pid: number): Promise<string> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return /^Uid:\s+(\d+)/m.exec(status)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The processes named `name` (as /proc/PID/comm shows it), oldest first, never this process. */
export async function findProcesses(
  name: string,
  procRoot = '/proc',
): Promise<{ matches: ProcInfo[]; visible: number }> {
  // The kernel truncates comm to 15 bytes; compare on that prefix so "envoy-frontproxy" still matches.
  const want = name.slice(0, 15);
  const pids = (await readdir(procRoot)).filter((e) => /^\d+$/.test(e)).map(Number);
  const infos = (await Promise.all(pids.map((p) => readProc(p)))).filter(
    (p): p is ProcInfo => p !== undefined,
  );
  const matches = infos
    .filter((p) => p.comm === want && p.pid !== process.pid)
    .sort((a, b) => a.start - b.start || a.pid - b.pid);
  return { matches, visible: infos.length };
}

export class SignalReloader implements Reloader {
  readonly method = ReloadMethod.signal;
  readonly description: string;

  private readonly signal: NodeJS.Signals;
  private readonly processName: string;
  private readonly all: boolean;

  constructor(signal: NodeJS.Signals, processName: string, all: boolean) {
    this.signal = signal;
    this.processName = processName;
    this.all = all;
    this.description = `${signal} to ${all ? 'every process' : 'the oldest process'} named ${processName}`;
  }

  async reload(): Promise<void> {
    const { matches, visible } = await findProcesses(this.processName);
    if (matches.length === 0) {
      throw new ReloadError(
        `no process named "${this.processName}" is visible (${visible} processes in /proc, this sidecar included): ` +
          'set shareProcessNamespace: true in the Pod spec, and check the name against /proc/PID/comm ' +
          '(at most 15 characters, e.g. "nginx" for nginx\'s master)',
      );
    }
    for (const p of this.all ? matches : matches.slice(0, 1)) {
      try {
        process.kill(p.pid, this.signal);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPERM') {
          throw new ReloadError(
            `not permitted to send ${this.signal} to ${this.processName} (pid ${p.pid}, uid ${await uidOf(p.pid)}); ` +
              `the sidecar runs as uid ${process.getuid?.() ?? 'unknown'}: run it as the same user ` +
              '(securityContext.runAsUser) as the application',
          );
        }
        if (code === 'ESRCH') continue; // exited between the scan and the signal
        throw err;
      }
    }
  }
}

export class HttpPostReloader implements Reloader {
  readonly method = ReloadMethod.httpPost;
  readonly description: string;

  private readonly url: URL;
  private readonly timeoutMs: number;

  constructor(url: URL, timeoutMs = 10_000) {
    this.url = url;
    this.timeoutMs = timeoutMs;
    this.description = `POST ${url.origin}${url.pathname}`;
  }

  async reload(): Promise<void> {
    const request = this.url.protocol === 'https:' ? httpsRequest : http.request;
    await new Promise<void>((resolve, reject) => {
      const req = request(
        this.url,
        { method: 'POST', headers: { 'content-length': '0', 'user-agent': 'cert-rotator-sidecar' } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            if (body.length < 200) body += c;
          });
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve();
            else
              reject(
                new ReloadError(
                  `${this.description} answered ${status}${body.trim() ? `: ${body.trim().slice(0, 200)}` : ''}`,
                ),
              );
          });
          res.on('error', reject);
        },
      );
      req.setTimeout(this.timeoutMs, () =>
        req.destroy(new ReloadError(`${this.description}: no answer within ${this.timeoutMs} ms`)),
      );
      req.on('error', (err) =>
        reject(err instanceof ReloadError ? err : new ReloadError(`${this.description}: ${err.message}`)),
      );
      req.end();
    });
  }
}

export class ExecReloader implements Reloader {
  readonly method = ReloadMethod.exec;
  readonly description: string;

  private readonly command: string;
  private readonly args: string[];
  private readonly timeoutMs: number;

  constructor(command: string, args: string[], timeoutMs = 30_000) {
    this.command = command;
    this.args = args;
    this.timeoutMs = timeoutMs;
    this.description = `exec ${[command, ...args].join(' ')}`;
  }

  async reload(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      // Loaded here, not imported: an ESM import of node:child_process alone adds ~2.5 MiB to a bare
      // process, and most sidecars never exec.
      const { spawn } = process.getBuiltinModule('node:child_process') as typeof ChildProcess;
      // No shell: the arguments reach the program exactly as given (the image has no shell anyway).
      const child = spawn(this.command, this.args, { stdio: ['ignore', 'ignore', 'pipe'], shell: false });
      let stderr = '';
      child.stderr?.setEncoding('utf8');
      child.stderr?.on('data', (c: string) => {
        stderr = (stderr + c).slice(-500);
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), this.timeoutMs);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new ReloadError(`${this.description}: ${err.message}`));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else
          reject(
            new ReloadError(
              `${this.description} ${signal ? `was killed by ${signal}` : `exited with ${code}`}${
                stderr.trim() ? `: ${stderr.trim()}` : ''
              }`,
            ),
          );
      });
    });
  }
}

export interface RetryOptions {
  attempts: number;
  firstDelayMs: number;
  maxDelayMs: number;
  sleep?: (ms: number) => Promise<void>;
}

export const DEFAULT_RETRY: RetryOptions = { attempts: 5, firstDelayMs: 1_000, maxDelayMs: 30_000 };

/** Runs `reload` until it succeeds or `attempts` are used; calls onAttempt after each try. */
export async function reloadWithRetry(
  reloader: Reloader,
  opts: RetryOptions,
  onAttempt: (ok: boolean, attempt: number, err?: unknown) => void,
): Promise<boolean> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let delay = opts.firstDelayMs;
  for (let attempt = 1; attempt <= opts.attempts; attempt++) {
    try {
      await reloader.reload();
      onAttempt(true, attempt);
      return true;
    } catch (err) {
      onAttempt(false, attempt, err);
      if (attempt === opts.attempts) return false;
      await sleep(delay);
      delay = Math.min(delay * 2, opts.maxDelayMs);
    }
  }
  return false;
}
