import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('cert-rotator command line', () => {
  it('stops start-up with exit 2 and names every bad path of the config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-'));
    const config = join(dir, 'bad.yaml');
    writeFileSync(
      config,
      [
        'defaults: { issuer: missing, renewBefore: "150%" }',
        'concurrency: 0',
        'issuers:',
        '  - name: internal-ca',
        '    ca: { secret: { namespace: cert-rotator } }',
        '  - name: self',
        '    selfSigned: {}',
        '    allowedNamespace: ["*"]',
        '',
      ].join('\n'),
    );
    const r = run(['controller', '--config', config]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toBe(`cert-rotator: invalid config file ${config}:`);
    expect(lines).toContain('issuers[0].ca.secret.name: required');
    expect(lines.some((l) => l.startsWith('defaults.issuer: unknown issuer "missing"'))).toBe(true);
    expect(lines.some((l) => l.startsWith('defaults.renewBefore:'))).toBe(true);
    expect(lines.some((l) => l.startsWith('concurrency:'))).toBe(true);
    expect(lines.some((l) => l.startsWith('issuers[1].allowedNamespace: unknown key'))).toBe(true);
  });

  it('exits 2 with a clear message for a missing config file or flag', () => {
    const missing = run(['controller', '--config', '/nonexistent/config.yaml']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('cert-rotator: cannot read config file /nonexistent/config.yaml: ENOENT\n');
    const noFlag = run(['controller']);
    expect(noFlag.code).toBe(2);
    expect(noFlag.stderr).toContain('--config FILE is required');
    const unknown = run(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });

  it('prints usage and version', () => {
    const help = run(['help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('controller --config FILE');
    expect(run(['version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
