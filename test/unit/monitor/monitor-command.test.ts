/**
 * `cert-rotator monitor` (node mode) as a host process: files in a directory tree laid out like a
 * kubeadm node, the command started on loopback, its /metrics scraped.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanFiles } from '../../../src/monitor/file-monitor.ts';

const CLI = new URL('../../../src/cli.ts', import.meta.url).pathname;
const fixtures = new URL('fixtures/', import.meta.url).pathname;
const expected = (await import('./fixtures/expected.json', { with: { type: 'json' } })).default as Record<
  string,
  string
>;
const leafSeconds = Date.parse(expected.leaf as string) / 1000;
const rootSeconds = Date.parse(expected.root as string) / 1000;

let dir = '';
let host = '';
let proc: ChildProcess | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cr-monitor-'));
  host = join(dir, 'host');
  await mkdir(join(host, 'etc/kubernetes/pki'), { recursive: true });
  await mkdir(join(host, 'var/lib/kubelet/pki'), { recursive: true });
  await copyFile(join(fixtures, 'chain.pem'), join(host, 'etc/kubernetes/pki/ca.crt'));
  await writeFile(join(host, 'etc/kubernetes/pki/ca.key'), 'not read: a key file\n', { mode: 0o600 });
  await copyFile(join(fixtures, 'modern.p12'), join(host, 'etc/kubernetes/pki/ks.p12'));
  await writeFile(join(host, 'etc/kubernetes/pki/broken.crt'), '-----BEGIN CERTIFICATE-----\nnope\n');
  const leaf = (await import('node:fs')).readFileSync(join(fixtures, 'leaf.crt')).toString('base64');
  await writeFile(
    join(host, 'etc/kubernetes/kubelet.conf'),
    `apiVersion: v1\nkind: Config\nusers:\n- name: default-auth\n  user:\n    client-certificate-data: ${leaf}\n`,
  );
  await copyFile(join(fixtures, 'leaf.crt'), join(host, 'var/lib/kubelet/pki/kubelet-client-2026.pem'));
  await symlink('kubelet-client-2026.pem', join(host, 'var/lib/kubelet/pki/kubelet-client-current.pem'));
  await writeFile(join(dir, 'password'), 's3cret\n');
});

afterAll(async () => {
  if (proc && proc.exitCode === null) proc.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('node files', () => {
  it('reads certificates, kubeconfigs and keystores by name; reports the broken file; opens no key', async () => {
    const summaries = await scanFiles({
      paths: [join(host, 'etc/kubernetes'), join(host, 'var/lib/kubelet/pki')],
      stripPrefix: host,
      password: 's3cret',
    });
    expect(summaries.map((s) => [s.name, s.certs.length, s.problems.map((p) => p.reason)])).toEqual([
      ['/etc/kubernetes/kubelet.conf', 1, []],
      ['/etc/kubernetes/pki/broken.crt', 0, ['malformed']],
      ['/etc/kubernetes/pki/ca.crt', 3, []],
      ['/etc/kubernetes/pki/ks.p12', 3, []],
      ['/var/lib/kubelet/pki/kubelet-client-2026.pem', 1, []],
    ]);
  });

  it('cert-rotator monitor exports them labelled with the node, and the read error', async () => {
    proc = spawn(
      process.execPath,
      [
        CLI,
        'monitor',
        '--path',
        join(host, 'etc/kubernetes'),
        '--path',
        join(host, 'var/lib/kubelet/pki'),
        '--strip-prefix',
        host,
        '--node',
        'worker-1',
        '--password-file',
        join(dir, 'password'),
        '--metrics-address',
        '127.0.0.1:0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    proc.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
    });
    proc.stderr?.on('data', (b: Buffer) => {
      out += b.toString();
    });
    const deadline = Date.now() + 15_000;
    let port: number | undefined;
    while (port === undefined && Date.now() < deadline) {
      port = Number(/"metricsPort":(\d+)/.exec(out)?.[1]) || undefined;
      if (port === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    expect(port, out).toBeDefined();
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toContain(
      `cert_rotator_x509_not_after_timestamp_seconds{source="file",name="/var/lib/kubelet/pki/kubelet-client-2026.pem",index="0",subject_cn="fixture-leaf",issuer_cn="fixture-intermediate",node="worker-1"} ${leafSeconds}`,
    );
    expect(text).toContain(
      `cert_rotator_x509_not_after_timestamp_seconds{source="file",name="/etc/kubernetes/pki/ks.p12",index="2",subject_cn="fixture-root",issuer_cn="fixture-root",node="worker-1"} ${rootSeconds}`,
    );
    expect(text).toContain(
      'cert_rotator_x509_read_errors{source="file",name="/etc/kubernetes/pki/broken.crt",reason="malformed",node="worker-1"} 1',
    );
    expect(text).not.toContain('ca.key');
    proc.kill('SIGTERM');
    const code = await new Promise((r) => proc?.once('close', r));
    expect(code).toBe(0);
  });

  it('refuses to start without --path', async () => {
    const p = spawn(process.execPath, [CLI, 'monitor'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    p.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    expect(await new Promise((r) => p.once('close', r))).toBe(2);
    expect(err).toContain('at least one --path is required');
  });
});
