import { spawn } from 'node:child_process';
import { appendFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { acquireLock } from './node-lock.ts';
import { loadRecord, restoreHost } from './node-record.ts';

/**
 * The node's watchdog: a detached process that waits for the end of the process that started the
 * node (end of file on its stdin, however that process ended: Ctrl-C, a CI runner's SIGKILL) and
 * then, holding the machine's node lock, restores the host by the record — unless stop() already
 * did, or the record is another run's. So an interrupted run leaves no bridge, rule or mount
 * behind until the next start; the next start's own cleanup stays the fallback.
 */
export function startWatchdog(root: string, logFile: string): () => void {
  // The compiled dist/ has node-watchdog.js beside node-watchdog.ts's output.
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [self, root, logFile], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  child.unref();
  // The pipe's write end stays open in this process until it ends; it keeps no event loop alive.
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  child.stdin?.on('error', () => undefined);
  return () => {
    child.stdin?.end();
  };
}

async function watch(root: string, logFile: string): Promise<void> {
  const log = (line: string) =>
    appendFile(logFile, `${new Date().toISOString()} watchdog: ${line}\n`).catch(() => undefined);
  await new Promise<void>((resolve) => {
    process.stdin.on('data', () => undefined);
    process.stdin.once('end', () => resolve());
    process.stdin.once('error', () => resolve());
  });
  // Nothing of ours left (stop() ran, or the next run already cleaned up): no need for the lock.
  if ((await loadRecord())?.root !== root) return;
  const release = await acquireLock(600_000, () => undefined);
  try {
    const rec = await loadRecord();
    if (rec?.root !== root) return;
    await log(`the node's process ended without stop(): restoring the host`);
    await restoreHost(rec, (line) => void log(line));
    await log('host restored');
  } catch (err) {
    await log(`could not restore the host: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    release();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [root, logFile] = process.argv.slice(2);
  if (!root || !logFile) {
    process.stderr.write('usage: node-watchdog ROOT LOGFILE\n');
    process.exit(2);
  }
  await watch(root, logFile);
  process.exit(0);
}
