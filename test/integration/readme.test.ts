import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { adminKubeConfig, testEnv } from '../testenv/kube.ts';

/**
 * The README's commands do not rot: the quick start is what CI runs (`.ci/run`: `npm ci`,
 * `npm test`, and `npm test` runs `npm run demo` in demo.test.ts), every `npm run` script it or
 * the docs name exists, every `cert-rotator` command it names is one the CLI has, and its
 * `helm install` command is run here, verbatim, against the test API server.
 */
const ROOT = new URL('../../', import.meta.url).pathname;

async function text(path: string): Promise<string> {
  return await readFile(join(ROOT, path), 'utf8');
}

function codeBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```(?:sh|bash)?\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
}

function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, cwd: ROOT, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let helmEnv: NodeJS.ProcessEnv | undefined;

afterAll(async () => {
  if (!helmEnv) return;
  await run('helm', ['uninstall', 'cert-rotator', '-n', 'cert-rotator'], helmEnv);
  await adminKubeConfig()
    .makeApiClient(k8s.CoreV1Api)
    .deleteNamespace({ name: 'cert-rotator' })
    .catch(() => undefined);
});

describe('the README', () => {
  it('starts with what it is, then the two commands CI runs', async () => {
    const readme = await text('README.md');
    expect(readme.indexOf('cert-rotator is a Kubernetes controller')).toBeLessThan(
      readme.indexOf('## See it work'),
    );
    expect(codeBlocks(readme)[0]).toBe('npm ci && npm run demo\nnpm test\n');
    const ci = await text('.ci/run');
    expect(ci).toMatch(/^npm ci\b/m);
    // `npm test` as a command of its own (its output may be piped on, e.g. to reprint the summary).
    expect(ci).toMatch(/^npm test(?:$| [|>2])/m);
    // npm test runs the demo through the README's own command.
    expect(await text('test/integration/demo.test.ts')).toContain("spawn('npm', ['run', '--silent', 'demo']");
  });

  it('names only npm scripts that exist and cert-rotator commands the CLI has', async () => {
    const pkg = JSON.parse(await text('package.json')) as { scripts: Record<string, string> };
    const docs = [await text('README.md'), await text('docs/cli.md')].join('\n');
    const scripts = new Set([...docs.matchAll(/\bnpm run ([a-z][\w:-]*)/g)].map((m) => m[1] as string));
    expect(scripts.size).toBeGreaterThan(3);
    for (const s of scripts) expect(pkg.scripts[s], `npm run ${s}`).toBeDefined();
    const help = await run(process.execPath, [join(ROOT, 'src/cli.ts'), 'help'], process.env);
    const commands = new Set(
      [...docs.matchAll(/`(?:kubectl )?cert-rotator ([a-z]+)/g)].map((m) => m[1] as string),
    );
    for (const c of ['demo', 'scan', 'renew']) expect(commands).toContain(c);
    for (const c of commands) expect(help.stdout, `cert-rotator ${c}`).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
  });

  it("runs the README's helm install command verbatim against the test API server", async () => {
    const readme = await text('README.md');
    const block = codeBlocks(readme).find((b) => b.startsWith('helm install')) ?? '';
    const command = block.split('\nkubectl ')[0]?.trim() ?? '';
    expect(command).toMatch(
      /^helm install cert-rotator charts\/cert-rotator -n cert-rotator --create-namespace/,
    );
    const home = await mkdtemp(join(tmpdir(), 'cert-rotator-readme-helm-'));
    helmEnv = {
      PATH: `${dirname(testEnv().bins.helm)}:${process.env.PATH ?? ''}`,
      HOME: home,
      KUBECONFIG: testEnv().kubeconfigPath,
    };
    const r = await run('bash', ['-c', command], helmEnv);
    expect(r.code, r.stderr).toBe(0);
    const kc = adminKubeConfig();
    const deployment = await kc
      .makeApiClient(k8s.AppsV1Api)
      .readNamespacedDeployment({ namespace: 'cert-rotator', name: 'cert-rotator' });
    expect(deployment.spec?.template.spec?.containers[0]?.image).toBe(
      'registry.example.com/cert-rotator:0.1.0',
    );
    const config = await kc
      .makeApiClient(k8s.CoreV1Api)
      .readNamespacedConfigMap({ namespace: 'cert-rotator', name: 'cert-rotator' });
    expect(config.data?.['config.yaml']).toMatch(/name: self\n\s+selfSigned: \{\}/);
  });
});
