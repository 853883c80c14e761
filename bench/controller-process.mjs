/**
 * The real `cert-rotator controller` as a child process of a bench, against the bench's own
 * kube-apiserver: started with a config file, resolved once it has processed its initial list.
 * `output()` is everything it printed so far (for the bench's own error messages).
 */
import { spawn } from 'node:child_process';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;

export async function startController({ configPath, kubeconfigPath, timeoutMs }) {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'controller',
      '--config',
      configPath,
      '--kubeconfig',
      kubeconfigPath,
      '--metrics-address',
      '127.0.0.1:0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  child.stderr.on('data', (d) => {
    out += d;
  });
  const handle = { child, output: () => out };
  const deadline = Date.now() + timeoutMs;
  while (!out.includes('initial list processed')) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`controller did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return handle;
}
