/**
 * The project's container image, built for the tests from the repository's own `Dockerfile` with
 * buildah on the stand-in bases that provisioning builds (test/testenv/base-images.sh), with no
 * network (`--network=none`, `--pull=never`; npm ci reads the npm cache through a copy-on-write
 * mount), and written as a docker-archive that `ctr -n k8s.io images import` takes.
 *
 * Cached by a content hash of the build context (the files `.dockerignore` admits), the
 * Dockerfile and the two base images: a second run with nothing changed returns at once.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, rmdir, stat, utimes, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cacheDir } from './env.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

/** The stand-ins base-images.sh builds; the Dockerfile's defaults are the public images. */
export const STANDIN_BASES = {
  BUILD_BASE: 'localhost/cert-rotator-standin/node:24-bookworm-slim',
  RUNTIME_BASE: 'localhost/cert-rotator-standin/distroless-nodejs24:nonroot',
} as const;

/** The image's name in the archive (and, after `ctr images import`, in containerd). */
export const IMAGE_REPOSITORY = 'localhost/cert-rotator';

export interface BuiltImage {
  /** docker-archive tarball, for `ctr -n k8s.io images import ARCHIVE`. */
  archive: string;
  /** `localhost/cert-rotator:VERSION-HASH`, the name the archive carries. */
  ref: string;
  /** Size of the archive: the image's uncompressed layers plus a few kB of metadata. */
  sizeBytes: number;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[], timeoutMs = 600_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(bin, args, { maxBuffer: 64 << 20, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({
        code,
        stdout,
        stderr: err && code === 1 && !stderr ? String(err.message) : stderr,
      });
    });
  });
}

/** buildah with the test cache's own image storage, not the machine's /var/lib/containers/storage. */
export function buildahArgs(args: string[]): string[] {
  const store = join(cacheDir(), 'containers');
  return [
    '--root',
    join(store, 'storage'),
    '--runroot',
    join(store, 'run'),
    '--storage-driver',
    'overlay',
    ...args,
  ];
}

/**
 * For `buildah bud` and `buildah run`: runc keeps its container state beside the storage, not in
 * the machine's /run/runc.
 */
export function runtimeFlags(): string[] {
  return ['--runtime-flag', `root=${join(cacheDir(), 'containers', 'run', 'runc')}`];
}

/** Runs buildah against the test storage; throws with its output on a non-zero exit. */
export async function buildah(args: string[], timeoutMs?: number): Promise<string> {
  const r = await run('buildah', buildahArgs(args), timeoutMs);
  if (r.code !== 0)
    throw new Error(`buildah ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr || r.stdout}`);
  return r.stdout;
}

/**
 * The build context as `.dockerignore` admits it: `*` first, then `!file` and `!dir/**` lines.
 * Anything else in it is refused, so the hash can never miss a file the build sees.
 */
export function contextFiles(root = ROOT): string[] {
  const lines = readFileSync(join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  if (lines[0] !== '*')
    throw new Error('.dockerignore must start with "*" (image.ts hashes only the files it admits)');
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  for (const line of lines.slice(1)) {
    const m = /^!([\w./-]+?)(\/\*\*)?$/.exec(line);
    if (!m?.[1])
      throw new Error(`.dockerignore line "${line}": image.ts understands only "!path" and "!dir/**"`);
    if (m[2]) walk(m[1]);
    else files.push(m[1]);
  }
  return files.sort();
}

/** Image id of a local image, or undefined when the storage has none of that name. */
async function imageId(ref: string): Promise<string | undefined> {
  const r = await run(
    'buildah',
    buildahArgs(['inspect', '--type', 'image', '--format', '{{.FromImageID}}', ref]),
  );
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** sha256 over the Dockerfile, the build context and the base images' ids. */
async function inputHash(bases: Record<string, string>): Promise<string> {
  const h = createHash('sha256');
  for (const f of ['Dockerfile', '.dockerignore', ...contextFiles()]) {
    h.update(`${f}\0`);
    h.update(await readFile(join(ROOT, f)));
    h.update('\0');
  }
  for (const [k, v] of Object.entries(bases)) h.update(`${k}=${v}\0`);
  return h.digest('hex').slice(0, 16);
}

/** A directory lock across processes (two vitest projects may build at once). */
async function withLock<T>(dir: string, f: () => Promise<T>): Promise<T> {
  const lock = join(dir, '.build.lock');
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => '0'));
      let alive = pid > 0;
      try {
        if (alive) process.kill(pid, 0);
      } catch {
        alive = false;
      }
      if (!alive && pid > 0) {
        await rm(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`image build lock ${lock} held by pid ${pid} for 15 minutes`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await f();
  } finally {
    await rm(join(lock, 'pid'), { force: true });
    await rmdir(lock).catch(() => undefined);
  }
}

/** Where npm keeps its cache on this machine (npm scripts export it). */
function npmCache(): string {
  return process.env.npm_config_cache || join(homedir(), '.npm');
}

/**
 * Why the image cannot be built on this machine, in one line, or undefined when it can: it needs
 * root (mmdebstrap --mode=root, buildah's own storage) and `tools` (buildah) on PATH.
 */
export function imageUnavailable(tools: string[] = ['buildah']): string | undefined {
  if (process.platform !== 'linux') return `building the image needs Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0)
    return 'building the image needs root (buildah, mmdebstrap --mode=root, containerd)';
  const onPath = (p: string) =>
    (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, p)));
  const missing = tools.filter((p) => !onPath(p));
  if (missing.length > 0) return `${missing.join(', ')} not installed: run npm run provision as root`;
  return undefined;
}

/**
 * Builds the Dockerfile on the stand-in bases (or returns the cached archive of an identical
 * build) and writes the docker-archive. Needs `npm run provision` (buildah, the stand-ins) and
 * an npm cache that holds the locked packages (any `npm ci` of this repository leaves one).
 */
export async function buildImage(): Promise<BuiltImage> {
  const unavailable = imageUnavailable();
  if (unavailable) throw new Error(unavailable);
  const bases: Record<string, string> = {};
  for (const [arg, ref] of Object.entries(STANDIN_BASES)) {
    const id = await imageId(ref);
    if (!id)
      throw new Error(
        `stand-in base image ${ref} missing from ${cacheDir()}/containers: run npm run provision`,
      );
    bases[arg] = id;
  }
  const hash = await inputHash(bases);
  const version = (
    JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  const ref = `${IMAGE_REPOSITORY}:${version}-${hash}`;
  const dir = join(cacheDir(), 'images');
  const archive = join(dir, `cert-rotator-${hash}.tar`);
  await mkdir(dir, { recursive: true });
  // Built already: no need to wait for the lock while another checkout builds its own.
  if (existsSync(archive)) return await used(archive, ref);
  return await withLock(dir, async () => {
    if (!existsSync(archive)) {
      const t0 = Date.now();
      const cache = npmCache();
      if (!existsSync(join(cache, '_cacache')))
        throw new Error(`no npm cache at ${cache}: run npm ci in ${ROOT} first (the image build is offline)`);
      await buildah(
        [
          'bud',
          '--pull=never',
          '--network=none',
          ...runtimeFlags(),
          '--layers',
          '--quiet',
          ...Object.entries(STANDIN_BASES).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
          // Copy-on-write: npm ci inside reads the cache and its writes are thrown away.
          '--volume',
          `${cache}:/root/.npm:O`,
          '--file',
          join(ROOT, 'Dockerfile'),
          '--tag',
          ref,
          ROOT,
        ],
        900_000,
      );
      const tmp = `${archive}.${process.pid}.tmp`;
      await rm(tmp, { force: true });
      await buildah(['push', '--quiet', ref, `docker-archive:${tmp}:${ref}`]);
      await rename(tmp, archive);
      await pruneOld(dir, archive, ref);
      process.stdout.write(`[image] built ${ref} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    }
    return await used(archive, ref);
  });
}

/** Marks the archive as in use (pruneOld() in another checkout leaves it) and describes it. */
async function used(archive: string, ref: string): Promise<BuiltImage> {
  const now = new Date();
  await utimes(archive, now, now);
  return { archive, ref, sizeBytes: (await stat(archive)).size };
}

/** How long an archive nobody asked for is kept (other checkouts may share the cache). */
const KEEP_UNUSED_MS = 2 * 3600_000;

/**
 * Removes archives no buildImage() asked for in two hours (every cache hit refreshes its
 * archive's mtime), the images they were exported from, and the layer cache no remaining image
 * is built on. Several checkouts may build into one cache at once, each from its own sources:
 * what another one built a moment ago stays.
 */
async function pruneOld(dir: string, keep: string, keepRef: string): Promise<void> {
  const cutoff = Date.now() - KEEP_UNUSED_MS;
  const kept = new Set<string>();
  for (const f of readdirSync(dir)) {
    const m = /^cert-rotator-([0-9a-f]{16})\.tar(\.\d+\.tmp)?$/.exec(f);
    if (!m?.[1]) continue;
    const p = join(dir, f);
    const mtime = (await stat(p).catch(() => undefined))?.mtimeMs ?? 0;
    if (p === keep || mtime >= cutoff) {
      if (!m[2]) kept.add(m[1]);
    } else await rm(p, { force: true });
  }
  const listed = await buildah(['images', '--format', '{{.Name}}:{{.Tag}}']).catch(() => '');
  for (const name of listed.split('\n').map((l) => l.trim())) {
    if (!name.startsWith(`${IMAGE_REPOSITORY}:`) || name === keepRef) continue;
    const hash = name.split('-').at(-1) ?? '';
    if (!kept.has(hash)) await buildah(['rmi', name]).catch(() => undefined);
  }
  // Layer-cache images of earlier builds that no tagged image is built on any more.
  await buildah(['rmi', '--prune']).catch(() => undefined);
}

/** One line for logs: the ref, the size and where the archive is. */
export function describeImage(img: BuiltImage): string {
  return `${img.ref} (${(img.sizeBytes / 2 ** 20).toFixed(1)} MiB, ${img.archive})`;
}
