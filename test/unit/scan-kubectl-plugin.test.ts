import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateKey, issueCertificate } from '../../src/pki/index.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

describe('kubectl plugin (kubectl cert-rotator ...)', () => {
  it('is a bin of the package, named the way kubectl finds plugins, and runs the same command line', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    // kubectl maps `kubectl cert-rotator` to an executable `kubectl-cert_rotator` on PATH.
    expect(pkg.bin['kubectl-cert_rotator']).toBe('dist/kubectl-plugin.js');
    expect(pkg.bin['cert-rotator']).toBe('dist/cli.js');
    const source = join(ROOT, 'src/kubectl-plugin.ts');
    expect(existsSync(source)).toBe(true);
    expect(readFileSync(source, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);

    const key = await generateKey('ecdsa-p256');
    const now = Date.now();
    const cert = await issueCertificate({
      subjectKeyPem: key.privateKeyPem,
      identity: { commonName: 'plugin', dnsNames: [], ipAddresses: [], uris: [] },
      notBefore: now - 60_000,
      notAfter: now + 86_400_000,
      issuer: 'self',
    });
    const dir = mkdtempSync(join(tmpdir(), 'kubectl-plugin-'));
    writeFileSync(join(dir, 'tls.crt'), cert.certPem);
    const run = (entry: string) =>
      spawnSync(process.execPath, [join(ROOT, entry), 'scan', dir, '--expiring-within', '2d'], {
        encoding: 'utf8',
        timeout: 20_000,
      });
    const plugin = run('src/kubectl-plugin.ts');
    const direct = run('src/cli.ts');
    expect(plugin.status).toBe(1);
    expect(plugin.stdout).toContain(join(dir, 'tls.crt'));
    // Identical but for the time left, which may tick over a minute between the two runs.
    const timeless = (text: string) => text.replace(/\b\d+h\d+m\b/g, 'TIME-LEFT');
    expect({ status: plugin.status, stdout: timeless(plugin.stdout), stderr: plugin.stderr }).toEqual({
      status: direct.status,
      stdout: timeless(direct.stdout),
      stderr: direct.stderr,
    });
  });

  it('is on PATH as kubectl finds it after the documented `npm install -g .`', () => {
    // npm test builds dist/ before the tests run; alone, this test builds it once.
    if (!existsSync(join(ROOT, 'dist/kubectl-plugin.js'))) {
      expect(spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' }).status).toBe(0);
    }
    const prefix = mkdtempSync(join(tmpdir(), 'kubectl-plugin-prefix-'));
    const install = spawnSync('npm', ['install', '-g', '--prefix', prefix, '.', '--no-audit', '--no-fund'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(install.status, install.stderr).toBe(0);
    // kubectl runs the first kubectl-cert_rotator on PATH; Node 24 first, as docs/cli.md says.
    const env = {
      ...process.env,
      PATH: `${join(prefix, 'bin')}:${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
    };
    const r = spawnSync('kubectl-cert_rotator', ['help'], { encoding: 'utf8', env, timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}scan \[--namespace N\]/m);
    expect(spawnSync('cert-rotator', ['version'], { encoding: 'utf8', env }).stdout.trim()).toMatch(
      /^\d+\.\d+\.\d+$/,
    );
  });
});
