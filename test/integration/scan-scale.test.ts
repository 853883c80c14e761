import { spawn } from 'node:child_process';
import * as k8s from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { scanCluster } from '../../src/app/scan.ts';
import { loadConfig } from '../../src/config/load.ts';
import { listTlsSecrets } from '../../src/kube/secret-list.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { makeLeaf, tlsSecret } from '../testenv/tls-fixtures.ts';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;
const ns = useNamespace(import.meta.url);
const COUNT = 10_000;
const DAY = 86_400_000;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

beforeAll(async () => {
  const core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const pair = await makeLeaf({ dnsNames: ['many.example.com'], fromMs: -DAY, toMs: 90 * DAY });
  const annotations = { 'cert-rotator.io/enabled': 'true' };
  let next = 0;
  // 16 creators in parallel: the API server, not this loop, sets the pace.
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < COUNT; i = next++) {
        await core.createNamespacedSecret({
          namespace: ns(),
          body: tlsSecret(`s-${String(i).padStart(5, '0')}`, pair, annotations),
        });
      }
    }),
  );
}, 600_000);

describe('scan of 10,000 Secrets', () => {
  it('reads every one, measured side by side with a bare paged LIST of the same Secrets', async () => {
    const kc = adminKubeConfig();
    const config = loadConfig('');
    const bare: number[] = [];
    const scan: number[] = [];
    let rows = 0;
    // Alternate, three rounds each: the machine is shared, so only a same-run ratio means anything.
    for (let round = 0; round < 3; round++) {
      let t0 = performance.now();
      let listed = 0;
      await listTlsSecrets(kc, {
        namespace: ns(),
        onPage: (items) => {
          listed += items.length;
        },
      });
      bare.push(performance.now() - t0);
      expect(listed).toBe(COUNT);
      t0 = performance.now();
      const result = await scanCluster(kc, {
        namespace: ns(),
        config,
        configFromFile: false,
        now: Date.now(),
      });
      scan.push(performance.now() - t0);
      rows = result.length;
      expect(result.every((r) => r.state === 'valid' && r.managed && r.problems.length === 0)).toBe(true);
    }
    expect(rows).toBe(COUNT);
    const [b, s] = [median(bare), median(scan)];
    process.stdout.write(
      `[scan-scale] ${COUNT} Secrets: bare paged LIST median ${Math.round(b)} ms, scan (list + evaluate + key check) median ${Math.round(s)} ms, ratio ${(s / b).toFixed(2)} (rounds: list ${bare.map(Math.round).join('/')}, scan ${scan.map(Math.round).join('/')})\n`,
    );
  }, 300_000);

  it('the CLI prints all 10,000 rows and, when it takes over a second, a progress line on stderr', async () => {
    const t0 = Date.now();
    const proc = spawn(process.execPath, [CLI, 'scan', '-n', ns(), '-o', 'json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KUBECONFIG: testEnv().kubeconfigPath },
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    proc.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    const tookMs = Date.now() - t0;
    expect(code, stderr).toBe(0);
    const items = JSON.parse(stdout).items as Array<{ name: string }>;
    expect(items).toHaveLength(COUNT);
    expect(new Set(items.map((i) => i.name)).size).toBe(COUNT);
    process.stdout.write(
      `[scan-scale] cert-rotator scan -o json of ${COUNT} Secrets (CLI, with start-up): ${tookMs} ms\n`,
    );
    // The listing part of a run this long takes more than the one second after which progress shows.
    if (tookMs > 3_000) expect(stderr).toMatch(/^scanning: \d+ Secrets read \(\d+s\)$/m);
  }, 120_000);
});
