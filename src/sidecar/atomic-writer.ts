/**
 * Writes a set of files into a directory the way kubelet's AtomicWriter does for Secret and
 * ConfigMap volumes, so every reader that already copes with a mounted Secret copes with this:
 *
 *   DIR/..2026_12_01_08_30_00.123456789.ab12cd/   one generation, written completely, fsynced
 *   DIR/..data -> ..2026_12_01_08_30_00.123456789.ab12cd   swapped by rename(2): atomic
 *   DIR/tls.crt -> ..data/tls.crt                  user-visible names, created once
 *
 * A reader that resolves `..data` once and reads every file through that directory sees one
 * generation only. The previous generation is kept until the next swap (kubelet removes it at
 * once), so a reader that resolved `..data` just before a swap can still finish its reads.
 *
 * A crash at any instant leaves `..data` pointing at a complete generation: the new directory
 * is fsynced before the symlink is renamed over `..data`, and leftovers (`..data_tmp`, orphan
 * generations) are removed by the next write.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export const DATA_DIR_NAME = '..data';
const DATA_DIR_TMP_NAME = '..data_tmp';

export interface FileToWrite {
  data: string | Uint8Array;
  /** Permission bits, applied with chmod after writing so the umask does not change them. */
  mode: number;
}

/** A user-visible file name: one path segment, not hidden, not one of the writer's own names. */
export function validFileName(name: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$/.test(name);
}

function timestampName(now: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const ts = `${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(
    now.getUTCMinutes(),
  )}_${p(now.getUTCSeconds())}.${p(now.getUTCMilliseconds(), 3)}`;
  return `..${ts}.${randomBytes(4).toString('hex')}`;
}

function isGeneration(name: string): boolean {
  return /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+\.[0-9a-f]+$/.test(name);
}

async function fsyncPath(path: string, flags = constants.O_RDONLY): Promise<void> {
  const fh = await open(path, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeFileSynced(path: string, file: FileToWrite): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, file.mode);
  try {
    await fh.writeFile(file.data);
    await fh.chmod(file.mode);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readlinkOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EINVAL')
      return undefined;
    throw err;
  }
}

/** Replaces (or creates) a symlink atomically: a temporary link renamed over the name. */
async function swapSymlink(dir: string, name: string, target: string, tmpName: string): Promise<void> {
  const tmp = join(dir, tmpName);
  await rm(tmp, { force: true });
  await symlink(target, tmp);
  await rename(tmp, join(dir, name));
}

export interface AtomicWriterOptions {
  /** For tests: the clock that names generations. */
  now?: () => Date;
}

export class AtomicWriter {
  readonly dir: string;
  private readonly now: () => Date;

  constructor(dir: string, options: AtomicWriterOptions = {}) {
    this.dir = dir;
    this.now = options.now ?? (() => new Date());
  }

  /** The generation directory `..data` points at, or undefined before the first write. */
  async currentGeneration(): Promise<string | undefined> {
    return await readlinkOrUndefined(join(this.dir, DATA_DIR_NAME));
  }

  /**
   * Writes `files` as a new generation and swaps `..data` to it. Returns the generation name.
   * Throws on any I/O error; the previous generation stays in place in that case.
   */
  async write(files: Record<string, FileToWrite>): Promise<string> {
    const names = Object.keys(files);
    for (const name of names) {
      if (!validFileName(name)) throw new Error(`invalid file name ${JSON.stringify(name)} for ${this.dir}`);
    }
    await mkdir(this.dir, { recursive: true });
    const previous = await this.currentGeneration();

    const generation = timestampName(this.now());
    const genPath = join(this.dir, generation);
    await mkdir(genPath, { mode: 0o755 });
    await chmod(genPath, 0o755);
    try {
      for (const name of names) await writeFileSynced(join(genPath, name), files[name]!);
      await fsyncPath(genPath);
    } catch (err) {
      await rm(genPath, { recursive: true, force: true });
      throw err;
    }

    // The swap: after this rename every new lookup of DIR/..data/NAME sees the new generation.
    await swapSymlink(this.dir, DATA_DIR_NAME, generation, DATA_DIR_TMP_NAME);
    await fsyncPath(this.dir);

    for (const name of names) {
      const target = `${DATA_DIR_NAME}/${name}`;
      if ((await readlinkOrUndefined(join(this.dir, name))) !== target) {
        await swapSymlink(this.dir, name, target, `..${name}_tmp`);
      }
    }
    await this.removeStale(new Set([generation, ...(previous !== undefined ? [previous] : [])]), names);
    await fsyncPath(this.dir);
    return generation;
  }

  /**
   * Removes generations other than `keep`, leftovers of an interrupted write, and user-visible
   * links into `..data` for names no longer written. Never touches anything else in the directory.
   */
  private async removeStale(keep: Set<string>, names: string[]): Promise<void> {
    const wanted = new Set(names);
    for (const entry of await readdir(this.dir)) {
      const path = join(this.dir, entry);
      if (isGeneration(entry) && !keep.has(entry)) {
        await rm(path, { recursive: true, force: true });
      } else if (entry === DATA_DIR_TMP_NAME || /^\.\..+_tmp$/.test(entry)) {
        await rm(path, { force: true });
      } else if (!entry.startsWith('.') && !wanted.has(entry)) {
        const st = await lstat(path).catch(() => undefined);
        if (st?.isSymbolicLink() && (await readlinkOrUndefined(path))?.startsWith(`${DATA_DIR_NAME}/`)) {
          await unlink(path).catch(() => undefined);
        }
      }
    }
  }
}
