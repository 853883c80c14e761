import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { collectJsonLogs } from './json-logs.ts';
import { waitFor } from './net.ts';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;

export interface ControllerProcess {
  proc: ChildProcess;
  /** Every JSON log line so far, parsed. */
  logs: Array<Record<string, unknown>>;
  /** Raw stdout + stderr text, for scanning. */
  output(): string;
  metricsUrl(): Promise<string>;
  waitForLog(
    what: string,
    pred: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL: a crash, no clean-up. */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

/** Every controller started by a test file; its afterAll kills the ones still running. */
const started = new Set<ControllerProcess>();
/** Output of every controller this test file started, running or not (for log scans). */
const outputs: Array<() => string> = [];

export function allControllerOutput(): string {
  return outputs.map((o) => o()).join('\n');
}

/**
 * Writes a controller config file. Unless the test sets `leaderElection`, the Lease lives in the
 * first watched namespace, so controllers of different test files never wait for each other's lease.
 */
export async function writeConfig(dir: string, config: unknown, name = 'config.yaml'): Promise<string> {
  const path = join(dir, name);
  let doc = config;
  if (doc && typeof doc === 'object' && !('leaderElection' in doc) && 'namespaces' in doc) {
    const first = (doc as { namespaces: unknown }).namespaces;
    if (Array.isArray(first) && typeof first[0] === 'string')
      doc = { ...doc, leaderElection: { namespace: first[0] } };
  }
  await writeFile(path, typeof doc === 'string' ? doc : stringify(doc));
  return path;
}

/** Runs `cert-rotator controller` from the sources (Node 24 strips the types) as a child process. */
export function startControllerProcess(args: {
  configPath: string;
  kubeconfigPath: string;
  extraArgs?: string[];
  /** Extra environment, e.g. a fault injection such as CERT_ROTATOR_TEST_CRASH_AFTER. */
  env?: Record<string, string>;
}): ControllerProcess {
  const proc = spawn(
    process.execPath,
    [
      CLI,
      'controller',
      '--config',
      args.configPath,
      '--kubeconfig',
      args.kubeconfigPath,
      '--metrics-address',
      '127.0.0.1:0',
      '--log-level',
      'debug',
      ...(args.extraArgs ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], ...(args.env ? { env: { ...process.env, ...args.env } } : {}) },
  );
  const { logs, output } = collectJsonLogs(proc);
  // 'close', not 'exit': 'exit' may come before the last stdout chunks are read, and a test that
  // looks at the logs right after stop() would then miss the lines printed on the way out.
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  const handle: ControllerProcess = {
    proc,
    logs,
    output,
    exited,
    async metricsUrl() {
      const line = await handle.waitForLog(
        'the controller to start',
        (l) => typeof l.metricsPort === 'number',
      );
      return `http://127.0.0.1:${line.metricsPort}/metrics`;
    },
    async waitForLog(what, pred, timeoutMs = 30_000) {
      return await waitFor(
        `${what} (controller log)`,
        () => {
          if (proc.exitCode !== null)
            throw new Error(`controller exited with ${proc.exitCode}:\n${output().slice(-2000)}`);
          return logs.find(pred);
        },
        { timeoutMs, intervalMs: 50 },
      );
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const code = await exited;
      started.delete(handle);
      return code;
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
      started.delete(handle);
    },
  };
  started.add(handle);
  outputs.push(handle.output);
  return handle;
}

export async function killAllControllers(): Promise<void> {
  await Promise.all([...started].map((c) => c.kill()));
}

/** Value of one metric series from a /metrics scrape, or undefined. */
export async function metricValue(
  url: string,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  const text = await (await fetch(url)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return undefined;
}
