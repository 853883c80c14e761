/**
 * The certificate files in `--dir`: `tls.crt` (leaf + chain), `tls.key`, `ca.crt` and the
 * optional bundle (key + chain in one file), written as one AtomicWriter generation. `install`
 * takes only VerifiedMaterial, so files that fail verification can never replace good ones.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SecretKey } from '../names.ts';
import { AtomicWriter, type FileToWrite } from './atomic-writer.ts';
import type { Material, VerifiedMaterial } from './material.ts';

export interface CertificateFilesOptions {
  /** Mode of tls.key and of the bundle file. */
  keyMode: number;
  /** Mode of tls.crt and ca.crt. */
  certMode?: number;
  /** File name of the key + chain bundle, when wanted. */
  bundleFile?: string | undefined;
}

export class CertificateFiles {
  readonly dir: string;
  readonly writer: AtomicWriter;
  private readonly opts: Required<Omit<CertificateFilesOptions, 'bundleFile'>> & { bundleFile?: string };

  constructor(dir: string, opts: CertificateFilesOptions) {
    this.dir = dir;
    this.writer = new AtomicWriter(dir);
    this.opts = {
      keyMode: opts.keyMode,
      certMode: opts.certMode ?? 0o644,
      ...(opts.bundleFile !== undefined ? { bundleFile: opts.bundleFile } : {}),
    };
  }

  /** Writes the material as a new generation; resolves with the generation's name. */
  async install(m: VerifiedMaterial): Promise<string> {
    const files: Record<string, FileToWrite> = {
      [SecretKey.certificate]: { data: m.chainPem, mode: this.opts.certMode },
      [SecretKey.privateKey]: { data: m.keyPem, mode: this.opts.keyMode },
    };
    if (m.caPem !== undefined) files[SecretKey.caCertificate] = { data: m.caPem, mode: this.opts.certMode };
    if (this.opts.bundleFile !== undefined) {
      files[this.opts.bundleFile] = { data: m.keyPem + m.chainPem, mode: this.opts.keyMode };
    }
    return await this.writer.write(files);
  }

  /**
   * What is on disk now, read through one resolution of `..data` (so the pair is one
   * generation), or undefined when there is nothing complete.
   */
  async readCurrent(): Promise<Material | undefined> {
    const gen = await this.writer.currentGeneration();
    if (gen === undefined) return undefined;
    const base = join(this.dir, gen);
    try {
      const [chainPem, keyPem] = await Promise.all([
        readFile(join(base, SecretKey.certificate), 'utf8'),
        readFile(join(base, SecretKey.privateKey), 'utf8'),
      ]);
      const caPem = await readFile(join(base, SecretKey.caCertificate), 'utf8').catch(() => undefined);
      return { chainPem, keyPem, caPem };
    } catch {
      return undefined;
    }
  }
}
