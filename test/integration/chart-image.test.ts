/**
 * The container image's contents: scripts/build-image.sh (the Dockerfile's build step) builds
 * into a fresh directory, and the result runs with production dependencies only — help, a bad
 * config (exit 2 and the message), and a real start against the test API server that writes
 * nothing outside /tmp.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
/** Node 24, first on PATH, as in the image (the project's `node` devDependency). */
const NODE_DIR = dirname(process.execPath);

let out = '';
let buildLog = '';
let buildMs = 0;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  bin: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Result> {
  return await new Promise((resolve) => {
    execFile(bin, args, { cwd: opts.cwd, env: opts.env, maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Environment of the image: no dev tools, NODE_ENV=production, cwd and HOME elsewhere. */
function imageEnv(): NodeJS.ProcessEnv {
  return { PATH: `${NODE_DIR}:/usr/bin:/bin`, NODE_ENV: 'production', HOME: '/nonexistent' };
}

/** Every file under `dir` with its mtime, to prove a run wrote nothing there. */
function snapshot(dir: string): Map<string, number> {
  const files = new Map<string, number>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files.set(p, statSync(p).mtimeMs);
    }
  };
  walk(dir);
  return files;
}

beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'cert-rotator-image-'));
  const t0 = Date.now();
  const r = await run('bash', [join(ROOT, 'scripts/build-image.sh'), out], {
    cwd: ROOT,
    env: { ...process.env, PATH: `${NODE_DIR}:${process.env.PATH ?? ''}` },
  });
  buildMs = Date.now() - t0;
  buildLog = r.stdout + r.stderr;
  expect(r.code, buildLog).toBe(0);
}, 300_000);

describe('container image contents (scripts/build-image.sh)', () => {
  it('holds dist/, the manifest and production dependencies only', async () => {
    process.stdout.write(`[image] built in ${buildMs} ms: ${buildLog.trim().split('\n').at(-1)}\n`);
    expect(existsSync(join(out, 'dist/cli.js'))).toBe(true);
    expect(existsSync(join(out, 'src'))).toBe(false);
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    for (const dep of Object.keys(pkg.dependencies)) {
      expect(existsSync(join(out, 'node_modules', dep, 'package.json')), dep).toBe(true);
    }
    // Dev-only packages, as the lock file marks them (a dev dependency that a production one
    // also needs, like @types/node for @kubernetes/client-node, is not dev-only).
    const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages).filter(([path, p]) => path && p.dev);
    expect(devOnly.map(([path]) => path)).toEqual(
      expect.arrayContaining(
        ['typescript', 'vitest', '@biomejs/biome', 'node'].map((d) => `node_modules/${d}`),
      ),
    );
    for (const [path] of devOnly) expect(existsSync(join(out, path)), `dev-only ${path}`).toBe(false);
    // Type-stripped .ts never ships; the compiled imports point at .js.
    expect(readdirSync(join(out, 'dist')).some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toBe(false);
  });

  it('the Dockerfile runs the same script and starts the compiled CLI as user 65532', async () => {
    const dockerfile = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^RUN bash scripts\/build-image\.sh \/out$/m);
    expect(dockerfile).toMatch(/^FROM node:24-bookworm-slim AS build$/m);
    expect(dockerfile).toMatch(/^FROM gcr\.io\/distroless\/nodejs24-debian12:nonroot$/m);
    expect(dockerfile).toMatch(/^USER 65532:65532$/m);
    const entrypoint = entrypointOf(dockerfile);
    expect(entrypoint[0]).toBe('/nodejs/bin/node');
    expect(entrypoint.at(-1)).toBe('/app/dist/cli.js');
  });

  it('--help and version work from the output alone', async () => {
    const help = await run(process.execPath, [join(out, 'dist/cli.js'), '--help'], {
      cwd: '/',
      env: imageEnv(),
    });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: cert-rotator <command> [options]');
    expect(help.stdout).toContain('controller --config FILE');
    const version = await run(process.execPath, [join(out, 'dist/cli.js'), 'version'], {
      cwd: '/',
      env: imageEnv(),
    });
    expect(version.stdout.trim()).toBe(
      JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).version,
    );
  });

  it('controller with a bad config: exit code 2 and every bad path named', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-image-config-'));
    const bad = join(dir, 'config.yaml');
    await writeFile(bad, 'concurrency: 100\ndefaults: { issuer: nope }\n');
    const r = await run(process.execPath, [join(out, 'dist/cli.js'), 'controller', '--config', bad], {
      cwd: '/',
      env: imageEnv(),
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cert-rotator: invalid config file ${bad}:`);
    expect(r.stderr).toContain('concurrency: must be between 1 and 64, got 100');
    expect(r.stderr).toContain('defaults.issuer: unknown issuer "nope"');
  });

  it('controller starts against the API server, serves /healthz and /metrics, writes nothing into the image files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-image-run-'));
    const config = join(dir, 'config.yaml');
    await writeFile(config, 'namespaces: [default]\nleaderElection: { enabled: false }\n');
    const before = snapshot(out);
    // The node flags of the image's ENTRYPOINT, so the controller runs as it will in the image.
    const nodeFlags = entrypointOf(await readFile(join(ROOT, 'Dockerfile'), 'utf8')).slice(1, -1);
    const child: ChildProcess = spawn(
      process.execPath,
      [
        ...nodeFlags,
        join(out, 'dist/cli.js'),
        'controller',
        '--config',
        config,
        '--kubeconfig',
        testEnv().kubeconfigPath,
        '--metrics-address',
        '127.0.0.1:0',
      ],
      { cwd: '/', env: imageEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let logs = '';
    child.stdout?.on('data', (c: Buffer) => {
      logs += c.toString();
    });
    child.stderr?.on('data', (c: Buffer) => {
      logs += c.toString();
    });
    try {
      const port = await waitFor('the controller to start', () => {
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${logs}`);
        return /"metricsPort":(\d+)/.exec(logs)?.[1];
      });
      await waitFor('the initial list', () => (logs.includes('initial list processed') ? true : undefined));
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(200);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toContain('cert_rotator_renewals_total');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    expect(child.exitCode).toBe(0);
    expect(snapshot(out)).toEqual(before);
  });
});

/** The exec-form ENTRYPOINT of a Dockerfile as an argv array. */
function entrypointOf(dockerfile: string): string[] {
  const m = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile);
  if (!m?.[1]) throw new Error('Dockerfile has no exec-form ENTRYPOINT');
  return JSON.parse(m[1]) as string[];
}
