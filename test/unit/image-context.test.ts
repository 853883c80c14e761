/**
 * test/testenv/image.ts caches the image by a hash of the build context as `.dockerignore`
 * admits it: that context must hold everything the Dockerfile copies, nothing of the tests, and
 * a `.dockerignore` the hash could misread is refused rather than guessed at.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { contextFiles } from '../testenv/image.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

describe('image build context (the files the image hash covers)', () => {
  it('holds every source the Dockerfile copies, and no test, doc or chart file', async () => {
    const files = contextFiles();
    const dockerfile = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
      (m[1] ?? '').split(/\s+/),
    );
    expect(sources).toEqual([
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'src',
    ]);
    for (const s of sources)
      expect(
        files.some((f) => f === s || f.startsWith(`${s}/`)),
        s,
      ).toBe(true);
    expect(files).toContain('src/cli.ts');
    expect(files.filter((f) => /^(test|docs|charts|bench|node_modules|dist)\//.test(f))).toEqual([]);
  });

  it('refuses a .dockerignore it cannot read exactly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-dockerignore-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src', 'a.ts'), '');
    await writeFile(join(dir, 'package.json'), '{}');
    await writeFile(join(dir, '.dockerignore'), '*\n!package.json\n!src/**\n');
    expect(contextFiles(dir)).toEqual(['package.json', 'src/a.ts']);
    await writeFile(join(dir, '.dockerignore'), 'node_modules\n');
    expect(() => contextFiles(dir)).toThrow('.dockerignore must start with "*"');
    await writeFile(join(dir, '.dockerignore'), '*\n!src/*.ts\n');
    expect(() => contextFiles(dir)).toThrow('.dockerignore line "!src/*.ts": image.ts understands only');
  });
});
