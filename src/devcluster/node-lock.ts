import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { NODE_STATE_DIR } from './node-record.ts';

/** The lock that makes one node per machine: port 10250, the bridge and its range are shared. */
export async function acquireLock(waitMs: number, step: (s: string) => void): Promise<() => void> {
  await mkdir(NODE_STATE_DIR, { recursive: true });
  const lock = join(NODE_STATE_DIR, 'lock');
  // flock holds the lock while `cat` waits on our pipe: it is released when we close the pipe or
  // whenever this process goes away, however it ends.
  const child = spawn(
    'flock',
    [
      '-w',
      String(Math.ceil(waitMs / 1000)),
      '-E',
      '75',
      lock,
      'sh',
      '-c',
      'echo locked; exec cat >/dev/null',
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const waiting = setTimeout(
    () => step(`waiting for another test node on this machine to stop (lock ${lock})`),
    1_000,
  );
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('error', reject);
      child.once('exit', (code) =>
        reject(
          new Error(
            code === 75
              ? `another test node has held ${lock} for ${waitMs} ms (the demo or another test run): stop it and retry`
              : `flock ${lock} exited with ${code}`,
          ),
        ),
      );
    });
  } finally {
    clearTimeout(waiting);
  }
  return () => child.stdin.end();
}
