import { type ChildProcess, spawn } from 'node:child_process';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey, issueCertificate, keyMatchesCertificate } from '../../../src/pki/index.ts';
import { certificatesFromPem, splitPem } from '../../../src/pki/pem.ts';
import { AtomicWriter } from '../../../src/sidecar/atomic-writer.ts';
import { CertificateFiles } from '../../../src/sidecar/cert-files.ts';
import { NO_NAMES, verifyMaterial } from '../../../src/sidecar/material.ts';

const SWAP_LOOP = new URL('./swap-loop.ts', import.meta.url).pathname;
const MIN = 60_000;

interface Pair {
  chainPem: string;
  keyPem: string;
}

async function pair(name: string): Promise<Pair> {
  const key = await generateKey('ecdsa-p256');
  const now = Date.now();
  const c = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { dnsNames: [name], ipAddresses: [], uris: [] },
    notBefore: now - MIN,
    notAfter: now + 60 * MIN,
    issuer: 'self',
  });
  return { chainPem: c.chainPem, keyPem: key.privateKeyPem };
}

function matches(certPem: string, keyPem: string): boolean {
  return keyMatchesCertificate(keyPem, certificatesFromPem(certPem)[0]!);
}

let pairs: Pair[];
let fixtures: string;
let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cert-rotator-writer-'));
  pairs = await Promise.all(['a.test', 'b.test', 'c.test', 'd.test'].map(pair));
  fixtures = join(root, 'pairs.json');
  await writeFile(fixtures, JSON.stringify(pairs));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  return await mkdtemp(join(root, 'dir-'));
}

/** Reads one pair the safe way: resolve ..data once, read both files through that generation. */
async function readThroughDataOnce(dir: string): Promise<Pair | 'gone'> {
  const gen = await readlink(join(dir, '..data'));
  try {
    const chainPem = await readFile(join(dir, gen, 'tls.crt'), 'utf8');
    const keyPem = await readFile(join(dir, gen, 'tls.key'), 'utf8');
    return { chainPem, keyPem };
  } catch (err) {
    // The generation was removed after we resolved it (two swaps later): retry, never a mix.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
}

function startLoop(
  dir: string,
  count: number,
): { child: ChildProcess; ready: Promise<void>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [SWAP_LOOP, dir, fixtures, String(count)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('ready\n')) resolve();
    });
    exit.then((code) => reject(new Error(`swap loop exited ${code} before ready: ${err}`)));
  });
  return { child, ready, exit };
}

describe('AtomicWriter: kubelet layout', () => {
  it('writes a timestamped generation, ..data pointing at it and user-visible links through ..data, with modes', async () => {
    const dir = await freshDir();
    const files = new CertificateFiles(dir, { keyMode: 0o600, bundleFile: 'tls-bundle.pem' });
    const v = verifyMaterial({ ...pairs[0]!, caPem: pairs[0]!.chainPem }, NO_NAMES, Date.now());
    const gen = await files.install(v);
    expect(gen).toMatch(/^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d{3}\.[0-9a-f]{8}$/);
    expect(await readlink(join(dir, '..data'))).toBe(gen);
    for (const name of ['tls.crt', 'tls.key', 'ca.crt', 'tls-bundle.pem']) {
      expect((await lstat(join(dir, name))).isSymbolicLink()).toBe(true);
      expect(await readlink(join(dir, name))).toBe(`..data/${name}`);
    }
    expect((await stat(join(dir, 'tls.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'tls-bundle.pem'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'tls.crt'))).mode & 0o777).toBe(0o644);
    expect((await stat(join(dir, 'ca.crt'))).mode & 0o777).toBe(0o644);
    const crt = await readFile(join(dir, 'tls.crt'), 'utf8');
    const key = await readFile(join(dir, 'tls.key'), 'utf8');
    expect(matches(crt, key)).toBe(true);
    // The bundle holds the key and the chain in one file.
    const bundle = await readFile(join(dir, 'tls-bundle.pem'), 'utf8');
    const labels = splitPem(bundle).map((b) => b.label);
    expect(labels).toEqual(['PRIVATE KEY', 'CERTIFICATE']);
    expect(matches(bundle, bundle)).toBe(true);
  });

  it('applies --key-mode on every write, whatever the umask', async () => {
    const dir = await freshDir();
    const files = new CertificateFiles(dir, { keyMode: 0o640 });
    const old = process.umask(0o077);
    try {
      await files.install(verifyMaterial(pairs[0]!, NO_NAMES, Date.now()));
      expect((await stat(join(dir, 'tls.crt'))).mode & 0o777).toBe(0o644);
      await files.install(verifyMaterial(pairs[1]!, NO_NAMES, Date.now()));
      expect((await stat(join(dir, 'tls.key'))).mode & 0o777).toBe(0o640);
      expect((await stat(join(dir, 'tls.crt'))).mode & 0o777).toBe(0o644);
    } finally {
      process.umask(old);
    }
  });

  it('keeps the previous generation for readers mid-read, removes older ones and links of names no longer written', async () => {
    const dir = await freshDir();
    const withBundle = new CertificateFiles(dir, { keyMode: 0o600, bundleFile: 'b.pem' });
    const g1 = await withBundle.install(verifyMaterial(pairs[0]!, NO_NAMES, Date.now()));
    const g2 = await withBundle.install(verifyMaterial(pairs[1]!, NO_NAMES, Date.now()));
    const plain = new CertificateFiles(dir, { keyMode: 0o600 });
    const g3 = await plain.install(verifyMaterial(pairs[2]!, NO_NAMES, Date.now()));
    const entries = (await readdir(dir)).sort();
    expect(entries).toEqual(['..data', g2, g3, 'tls.crt', 'tls.key'].sort());
    expect(entries).not.toContain(g1);
    expect(await readFile(join(dir, 'tls.crt'), 'utf8')).toBe(
      verifyMaterial(pairs[2]!, NO_NAMES, 0 + Date.now()).chainPem,
    );
    expect(await plain.readCurrent()).toMatchObject({ chainPem: pairs[2]!.chainPem.replace(/\r/g, '') });
  });

  it('refuses a file name that is not one plain path segment', async () => {
    const w = new AtomicWriter(await freshDir());
    await expect(w.write({ '../evil': { data: 'x', mode: 0o644 } })).rejects.toThrow(/invalid file name/);
    await expect(w.write({ '..data': { data: 'x', mode: 0o644 } })).rejects.toThrow(/invalid file name/);
  });
});

describe('AtomicWriter: concurrent readers and crashes', () => {
  it('a reader that resolves ..data once never sees a mismatched pair during 50 swaps (writer in another process)', async () => {
    const dir = await freshDir();
    const loop = startLoop(dir, 50);
    await loop.ready;
    let reads = 0;
    let mismatched = 0;
    let bundleMismatched = 0;
    let retried = 0;
    let done = false;
    loop.exit.then(() => {
      done = true;
    });
    while (!done) {
      const got = await readThroughDataOnce(dir);
      if (got === 'gone') {
        retried++;
        continue;
      }
      reads++;
      if (!matches(got.chainPem, got.keyPem)) mismatched++;
      // A reader of the bundle file needs one open only.
      const bundle = await readFile(join(dir, 'bundle.pem'), 'utf8');
      if (!matches(bundle, bundle)) bundleMismatched++;
    }
    expect(await loop.exit).toBe(0);
    expect(reads).toBeGreaterThan(0);
    expect({ mismatched, bundleMismatched }).toEqual({ mismatched: 0, bundleMismatched: 0 });
    // Reported for the record: retries are resolutions that raced the removal two swaps later.
    console.log(`reader: ${reads} consistent reads, ${retried} retries, 0 mismatches over 50 swaps`);
  });

  it('SIGKILL in the middle of a swap loop leaves the directory consistent for the next reader and writer', async () => {
    const dir = await freshDir();
    for (let round = 0; round < 8; round++) {
      const loop = startLoop(dir, 0);
      await loop.ready;
      // Let it swap for a few ms (a different point of the swap each round), then kill it.
      await new Promise((r) => setTimeout(r, 3 + round * 7));
      loop.child.kill('SIGKILL');
      await loop.exit;
      const got = await readThroughDataOnce(dir);
      expect(got).not.toBe('gone');
      if (got === 'gone') return;
      expect(matches(got.chainPem, got.keyPem)).toBe(true);
      const viaLinks = {
        chainPem: await readFile(join(dir, 'tls.crt'), 'utf8'),
        keyPem: await readFile(join(dir, 'tls.key'), 'utf8'),
      };
      expect(matches(viaLinks.chainPem, viaLinks.keyPem)).toBe(true);
    }
    // The next write cleans up whatever the kills left behind.
    const files = new CertificateFiles(dir, { keyMode: 0o600, bundleFile: 'bundle.pem' });
    const gen = await files.install(verifyMaterial(pairs[3]!, NO_NAMES, Date.now()));
    const entries = await readdir(dir);
    expect(entries.filter((e) => e.endsWith('_tmp'))).toEqual([]);
    expect(entries.filter((e) => e.startsWith('..') && e !== '..data').length).toBeLessThanOrEqual(2);
    expect(entries).toContain(gen);
  });
});
