/**
 * The container image, built from the repository's Dockerfile with buildah on the stand-in bases
 * (test/testenv/image.ts), and run with buildah as the image says: its archive carries the
 * entrypoint, user and command the chart relies on; its root filesystem has the compiled CLI and
 * the production dependencies only (no dev dependency, no @kubernetes/client-node, no shell);
 * in a container of it, as user 65532, help and version work, a bad config exits 2 naming every
 * bad path, an exec kubeconfig fails with the error that explains why, and the controller starts
 * against the test API server, serves /healthz and /metrics, stops cleanly on SIGTERM and writes
 * nothing into the container's files.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BuiltImage,
  buildah,
  buildahArgs,
  buildImage,
  describeImage,
  imageUnavailable,
  runtimeFlags,
} from '../testenv/image.ts';
import { testEnv } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

let image: BuiltImage;
let container = '';
/** The container's root filesystem (buildah mount). */
let rootfs = '';
let buildMs = 0;
const tempDirs: string[] = [];

interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  User?: string;
  Env?: string[];
  WorkingDir?: string;
  ExposedPorts?: Record<string, unknown>;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(bin, args, { maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The config of the image in the docker-archive, as containerd will read it on import. */
async function archiveConfig(): Promise<{ repoTags: string[]; config: ImageConfig }> {
  const manifest = JSON.parse((await run('tar', ['-xOf', image.archive, 'manifest.json'])).stdout) as {
    Config: string;
    RepoTags: string[];
  }[];
  const entry = manifest[0];
  if (!entry) throw new Error(`${image.archive}: empty manifest.json`);
  const cfg = JSON.parse((await run('tar', ['-xOf', image.archive, entry.Config])).stdout) as {
    config: ImageConfig;
  };
  return { repoTags: entry.RepoTags, config: cfg.config };
}

/** A temporary directory user 65532 in the container can read (mkdtemp makes it 0700). */
async function sharedDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(dir);
  await chmod(dir, 0o755);
  return dir;
}

/** `buildah run` in a container of the image, as user 65532 with the image's entrypoint. */
async function runInImage(
  args: string[],
  opts: { volumes?: string[]; network?: string } = {},
): Promise<Result> {
  const { config } = await archiveConfig();
  return await run('buildah', buildahArgs(runArgs(config, args, opts)));
}

function runArgs(
  config: ImageConfig,
  args: string[],
  opts: { volumes?: string[]; network?: string },
): string[] {
  return [
    'run',
    ...runtimeFlags(),
    '--user',
    config.User ?? '',
    '--network',
    opts.network ?? 'none',
    ...(opts.volumes ?? []).flatMap((v) => ['--volume', v]),
    ...(config.Env ?? []).flatMap((e) => ['--env', e]),
    '--workingdir',
    config.WorkingDir ?? '/',
    container,
    '--',
    ...(config.Entrypoint ?? []),
    ...args,
  ];
}

/** Why the image cannot be built and run here (not root, no buildah or containerd), if so. */
const unavailable = imageUnavailable(['buildah', 'containerd', 'ctr']);
if (unavailable)
  process.stdout.write(
    `[image] ${process.env.CI === 'true' ? 'failing (CI=true)' : 'skipped'}: ${unavailable}\n`,
  );

// Where the image cannot be built, say why and skip, except in CI, where that is a failure.
describe.skipIf(unavailable !== undefined && process.env.CI !== 'true')('the image', () => {
  beforeAll(async () => {
    if (unavailable) throw new Error(unavailable);
    const t0 = Date.now();
    image = await buildImage();
    buildMs = Date.now() - t0;
    container = `cert-rotator-image-test-${randomBytes(4).toString('hex')}`;
    await buildah(['from', '--pull=never', '--quiet', '--name', container, image.ref]);
    rootfs = (await buildah(['mount', container])).trim();
  }, 900_000);

  afterAll(async () => {
    if (container) await buildah(['rm', container]).catch(() => undefined);
    for (const d of tempDirs) await rm(d, { recursive: true, force: true });
  });

  describe('container image (Dockerfile built with buildah on the stand-in bases)', () => {
    it('the archive is importable as the ref, with the entrypoint, user and command the chart relies on', async () => {
      process.stdout.write(`[image] ${describeImage(image)}; buildImage() took ${buildMs} ms\n`);
      const { repoTags, config } = await archiveConfig();
      expect(repoTags).toEqual([image.ref]);
      expect(config.User).toBe('65532:65532');
      expect(config.Entrypoint).toEqual([
        '/nodejs/bin/node',
        '--max-semi-space-size=1',
        '--no-opt',
        '--no-maglev',
        '/app/dist/cli.js',
      ]);
      expect(config.Cmd).toEqual(['controller', '--config', '/etc/cert-rotator/config.yaml']);
      expect(config.Env).toContain('NODE_ENV=production');
      expect(config.WorkingDir).toBe('/app');
      expect(Object.keys(config.ExposedPorts ?? {}).sort()).toEqual(['8089/tcp', '9402/tcp']);
      // The bases are build arguments whose defaults are the public images.
      const dockerfile = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
      expect(dockerfile).toMatch(/^ARG BUILD_BASE=node:24-bookworm-slim$/m);
      expect(dockerfile).toMatch(/^ARG RUNTIME_BASE=gcr\.io\/distroless\/nodejs24-debian12:nonroot$/m);
      expect(dockerfile).toMatch(/^FROM --platform=\$BUILDPLATFORM \$\{BUILD_BASE\} AS build$/m);
      expect(dockerfile).toMatch(/^FROM \$\{RUNTIME_BASE\}$/m);
    });

    it('holds dist/ and the production dependencies only: no dev dependency, no client-node, no shell', async () => {
      const app = join(rootfs, 'app');
      expect(existsSync(join(app, 'dist/cli.js'))).toBe(true);
      expect(existsSync(join(app, 'src'))).toBe(false);
      expect(readdirSync(join(app, 'dist')).some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toBe(
        false,
      );
      const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
        dependencies: Record<string, string>;
        optionalDependencies: Record<string, string>;
      };
      for (const dep of Object.keys(pkg.dependencies))
        expect(existsSync(join(app, 'node_modules', dep, 'package.json')), dep).toBe(true);
      expect(Object.keys(pkg.optionalDependencies)).toEqual(['@kubernetes/client-node']);
      // Dev-only and optional-only packages as the lock file marks them (a package that a shipped
      // one also needs is neither).
      const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;
      };
      const left = Object.entries(lock.packages)
        .filter(([path, p]) => path && (p.dev || p.optional || p.devOptional))
        .map(([path]) => path);
      expect(left).toEqual(
        expect.arrayContaining(
          ['typescript', 'vitest', '@biomejs/biome', 'node', '@kubernetes/client-node'].map(
            (d) => `node_modules/${d}`,
          ),
        ),
      );
      for (const path of left) expect(existsSync(join(app, path)), `left out: ${path}`).toBe(false);
      for (const sh of ['bin/sh', 'bin/bash', 'bin/dash', 'usr/bin/sh', 'busybox'])
        expect(existsSync(join(rootfs, sh)), sh).toBe(false);
      expect(readFileSync(join(rootfs, 'etc/passwd'), 'utf8')).toMatch(/^nonroot:x:65532:65532:/m);
    });

    it('--help and version run in the image as user 65532', async () => {
      const help = await runInImage(['--help']);
      expect(help.code, help.stderr).toBe(0);
      expect(help.stdout).toContain('Usage: cert-rotator <command> [options]');
      expect(help.stdout).toContain('controller --config FILE');
      const version = await runInImage(['version']);
      expect(version.stdout.trim()).toBe(
        JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).version,
      );
    });

    it('controller with a bad config: exit code 2 and every bad path named', async () => {
      const dir = await sharedDir('cert-rotator-image-config-');
      await writeFile(join(dir, 'config.yaml'), 'concurrency: 100\ndefaults: { issuer: nope }\n');
      const r = await runInImage(['controller', '--config', '/cfg/config.yaml'], {
        volumes: [`${dir}:/cfg:ro`],
      });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('cert-rotator: invalid config file /cfg/config.yaml:');
      expect(r.stderr).toContain('concurrency: must be between 1 and 64, got 100');
      expect(r.stderr).toContain('defaults.issuer: unknown issuer "nope"');
    });

    it('an exec kubeconfig fails with the error that says client-node is left out of the image', async () => {
      const dir = await sharedDir('cert-rotator-image-exec-');
      await writeFile(
        join(dir, 'kubeconfig'),
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          'current-context': 'c',
          contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
          clusters: [
            { name: 'c', cluster: { server: testEnv().apiServerUrl, 'insecure-skip-tls-verify': true } },
          ],
          users: [
            {
              name: 'u',
              user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: '/nodejs/bin/node' } },
            },
          ],
        }),
      );
      const r = await runInImage(['scan', '--kubeconfig', '/cfg/kubeconfig'], {
        volumes: [`${dir}:/cfg:ro`],
        network: 'host',
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('authenticates with an exec credential plugin');
      expect(r.stderr).toContain('the container image leaves it out');
    });

    it('controller starts against the API server, serves /healthz and /metrics, stops on SIGTERM, writes nothing', async () => {
      const dir = await sharedDir('cert-rotator-image-run-');
      // A marker in the config path finds the container's node process among the machine's.
      const marker = `config-${randomBytes(6).toString('hex')}.yaml`;
      await writeFile(join(dir, marker), 'namespaces: [default]\nleaderElection: { enabled: false }\n');
      await writeFile(join(dir, 'kubeconfig'), await readFile(testEnv().kubeconfigPath));
      const { config } = await archiveConfig();
      const args = runArgs(
        config,
        [
          'controller',
          '--config',
          `/cfg/${marker}`,
          '--kubeconfig',
          '/cfg/kubeconfig',
          '--metrics-address',
          '127.0.0.1:0',
        ],
        { volumes: [`${dir}:/cfg:ro`], network: 'host' },
      );
      const child: ChildProcess = spawn('buildah', buildahArgs(args), { stdio: ['ignore', 'pipe', 'pipe'] });
      let logs = '';
      child.stdout?.on('data', (c: Buffer) => {
        logs += c.toString();
      });
      child.stderr?.on('data', (c: Buffer) => {
        logs += c.toString();
      });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      let pid = 0;
      try {
        const port = await waitFor('the controller to start in the container', () => {
          if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${logs}`);
          return /"metricsPort":(\d+)/.exec(logs)?.[1];
        });
        await waitFor('the initial list', () => (logs.includes('initial list processed') ? true : undefined));
        expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
        expect(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).toContain(
          'cert_rotator_renewals_total',
        );
        pid = nodePid(marker);
        // The container's process runs as 65532, whatever buildah runs as.
        expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^Uid:\s+65532\s/m);
        process.kill(pid, 'SIGTERM');
        expect(await exited, logs).toBe(0);
      } finally {
        if (child.exitCode === null) {
          if (pid) process.kill(pid, 'SIGKILL');
          await exited;
        }
      }
      expect(written()).toEqual([]);
    });
  });

  describe('container image in containerd (the archive as the node imports it)', () => {
    it('ctr -n k8s.io images import takes the archive under its ref, complete, with the config of the image', async () => {
      // A containerd of the test's own (CRI off, own root, state and socket), ended by pid.
      const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-image-containerd-'));
      const sock = join(dir, 'containerd.sock');
      await writeFile(
        join(dir, 'config.toml'),
        [
          'version = 2',
          `root = "${dir}/root"`,
          `state = "${dir}/state"`,
          // No CRI (nothing is scheduled here) and no opt plugin (it would create /opt/containerd).
          'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"]',
          `[grpc]\n  address = "${sock}"`,
          `[ttrpc]\n  address = "${sock}.ttrpc"`,
          '[metrics]\n  address = ""',
          '',
        ].join('\n'),
      );
      const daemon = spawn('containerd', ['--config', join(dir, 'config.toml')], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let log = '';
      daemon.stderr?.on('data', (c: Buffer) => {
        log += c.toString();
      });
      const gone = new Promise((r) => daemon.once('exit', r));
      daemon.once('error', (err) => {
        log += `${err.message}\n`;
      });
      const ctr = (args: string[]) => run('ctr', ['--address', sock, '--namespace', 'k8s.io', ...args]);
      try {
        await waitFor('containerd to serve', async () => {
          if (daemon.exitCode !== null || log.includes('ENOENT'))
            throw new Error(`containerd did not start: ${log}`);
          return (await ctr(['version'])).code === 0;
        });
        const imported = await ctr(['images', 'import', image.archive]);
        expect(imported.code, imported.stderr).toBe(0);
        expect((await ctr(['images', 'ls', '--quiet'])).stdout.split('\n')).toContain(image.ref);
        // What containerd stored is what the kubelet will start pods from: follow the manifest it
        // recorded for the ref to the image config. (No `ctr run` here: its shim would leave
        // /run/containerd behind; the e2e project runs the image in pods.)
        const listed = (await ctr(['images', 'ls'])).stdout
          .split('\n')
          .find((l) => l.startsWith(`${image.ref} `));
        const manifestDigest = listed?.split(/\s+/)[2] ?? '';
        expect(manifestDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
        const manifest = JSON.parse((await ctr(['content', 'get', manifestDigest])).stdout) as {
          config: { digest: string };
          layers: unknown[];
        };
        expect(manifest.layers).toHaveLength(2);
        const stored = JSON.parse((await ctr(['content', 'get', manifest.config.digest])).stdout) as {
          architecture: string;
          os: string;
          config: ImageConfig;
        };
        expect(stored.os).toBe('linux');
        expect(stored.config).toEqual((await archiveConfig()).config);
        expect(stored.config.User).toBe('65532:65532');
        const check = await ctr(['images', 'check', `name==${image.ref}`]);
        expect(check.stdout).toMatch(/complete \(\d+\/\d+\)/);
      } finally {
        if (daemon.pid && daemon.exitCode === null) process.kill(daemon.pid, 'SIGTERM');
        await gone;
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});

/** The pid of the container's node process, found by the marker in its command line. */
function nodePid(marker: string): number {
  const found: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmd.startsWith('/nodejs/bin/node\0') && cmd.includes(`/cfg/${marker}`)) found.push(Number(e));
  }
  if (found.length !== 1)
    throw new Error(`expected one node process with ${marker}, found ${found.join(',') || 'none'}`);
  return found[0] as number;
}

/**
 * What the container wrote into its own files: the overlay's upper directory beside the mount,
 * minus what buildah itself puts there for a run (/etc/hosts, /etc/resolv.conf, /run, mount points).
 */
function written(): string[] {
  const upper = join(dirname(rootfs), 'diff');
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(join(d, e.name), r);
      else out.push(r);
    }
  };
  walk(upper, '');
  return out.filter((p) => !/^\/(etc\/(hosts|resolv\.conf|hostname)|run\/|cfg$)/.test(p));
}
