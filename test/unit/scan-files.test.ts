import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  certificatesFromPem,
  generateKey,
  issueCertificate,
  readCertificateSummary,
} from '../../src/pki/index.ts';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;
const DAY = 86_400_000;

function scan(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'scan', ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Row {
  kind: string;
  name: string;
  source: string | null;
  issuer: string | null;
  serial: string | null;
  notAfter: string | null;
  state: string;
  problems: string[];
}

async function cert(cn: string, fromDays: number, toDays: number, ca?: { certPem: string; keyPem: string }) {
  const key = await generateKey('ecdsa-p256');
  const now = Date.now();
  const issued = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { commonName: cn, dnsNames: [], ipAddresses: [], uris: [] },
    notBefore: now + fromDays * DAY,
    notAfter: now + toDays * DAY,
    issuer: ca ?? 'self',
    isCA: ca === undefined,
  });
  const s = readCertificateSummary(certificatesFromPem(issued.certPem)[0] as Uint8Array);
  return {
    certPem: issued.certPem,
    keyPem: key.privateKeyPem,
    serial: s.serialHex,
    notAfter: new Date(s.notAfter).toISOString(),
  };
}

let dir: string;
let ca: Awaited<ReturnType<typeof cert>>;
let server: Awaited<ReturnType<typeof cert>>;
let client: Awaited<ReturnType<typeof cert>>;
let old: Awaited<ReturnType<typeof cert>>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'scan-files-'));
  ca = await cert('files CA', -1, 365);
  server = await cert('server', -1, 20, ca);
  client = await cert('client', -1, 10, ca);
  old = await cert('old', -30, -2, ca);
  const other = await cert('other', -1, 19, ca);
  mkdirSync(join(dir, 'certs', 'nested'), { recursive: true });
  writeFileSync(join(dir, 'certs', 'server.pem'), server.certPem);
  // A bundle: leaf then CA, as a chain file.
  writeFileSync(join(dir, 'certs', 'nested', 'chain.pem'), server.certPem + ca.certPem);
  writeFileSync(join(dir, 'certs', 'old.crt'), old.certPem);
  // A certificate with the wrong key in the same file.
  writeFileSync(join(dir, 'certs', 'mismatch.pem'), other.certPem + server.keyPem);
  writeFileSync(
    join(dir, 'certs', 'server.der'),
    Buffer.from(certificatesFromPem(server.certPem)[0] as Uint8Array),
  );
  writeFileSync(join(dir, 'certs', 'notes.txt'), 'just some notes\n');
  // A Secret volume's layout: the file reached through ..data is read once.
  mkdirSync(join(dir, 'volume', '..data'), { recursive: true });
  writeFileSync(join(dir, 'volume', '..data', 'tls.crt'), client.certPem);
  symlinkSync('..data/tls.crt', join(dir, 'volume', 'tls.crt'));
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  writeFileSync(
    join(dir, 'admin.kubeconfig'),
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: prod\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: ${b64(ca.certPem)}`,
      'users:',
      `- name: admin\n  user:\n    client-certificate-data: ${b64(client.certPem)}\n    client-key-data: ${b64(client.keyPem)}`,
      'contexts: []',
      '',
    ].join('\n'),
  );
});

describe('cert-rotator scan PATH...', () => {
  it('reports PEM files, bundles, DER, kubeconfigs and non-certificates in one JSON list, sorted by expiry', () => {
    const r = scan([dir, '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = (JSON.parse(r.stdout) as { items: Row[] }).items;
    const summary = rows.map((row) => [row.name.slice(dir.length + 1), row.source, row.serial, row.state]);
    expect(summary).toEqual([
      ['certs/notes.txt', 'file', null, 'invalid'],
      ['certs/old.crt', 'certificate', old.serial, 'expired'],
      ['admin.kubeconfig', 'kubeconfig user admin: client certificate', client.serial, 'valid'],
      ['volume/tls.crt', 'certificate', client.serial, 'valid'],
      ['certs/mismatch.pem', 'certificate', expect.any(String), 'valid'],
      ['certs/nested/chain.pem#1', 'certificate 1 of 2', server.serial, 'valid'],
      ['certs/server.der', 'DER certificate', server.serial, 'valid'],
      ['certs/server.pem', 'certificate', server.serial, 'valid'],
      ['admin.kubeconfig', 'kubeconfig cluster prod: CA', ca.serial, 'valid'],
      ['certs/nested/chain.pem#2', 'certificate 2 of 2', ca.serial, 'valid'],
    ]);
    const by = (suffix: string) => rows.find((row) => row.name.endsWith(suffix)) as Row;
    expect(by('notes.txt').problems).toEqual([
      'not a certificate: no PEM block, DER certificate or kubeconfig found',
    ]);
    expect(by('old.crt')).toMatchObject({
      issuer: 'files CA',
      notAfter: old.notAfter,
      problems: [`expired ${old.notAfter}`],
    });
    expect(by('mismatch.pem').problems).toEqual([
      'the private key in the file does not match the certificate',
    ]);
    expect(rows.find((row) => row.source?.includes('client certificate'))?.problems).toEqual([]);
  });

  it('a certificate readable but not acceptable to act on: its expiry, no names from the failed part, the problem', () => {
    const corpus = new URL('./pki/corpus/', import.meta.url).pathname;
    const r = scan([join(corpus, 'malformed-san.pem'), join(corpus, 'negative_serial.pem'), '-o', 'json']);
    const rows = (JSON.parse(r.stdout) as { items: (Row & { dnsNames: string[] })[] }).items;
    const san = rows.find((row) => row.name.endsWith('malformed-san.pem'))!;
    expect(san).toMatchObject({ notAfter: '2017-09-27T11:24:43.000Z', dnsNames: [], state: 'expired' });
    expect(san.problems[0]).toBe(
      'certificate subjectAltName is not acceptable to act on (expected otherName [0] value); names from it are not used',
    );
    const negative = rows.find((row) => row.name.endsWith('negative_serial.pem'))!;
    expect(negative.dnsNames).toEqual(['*.gov.us', 'gov.us']);
    expect(negative.problems[0]).toBe('serial number is negative (RFC 5280 requires a positive one)');
  });

  it('prints the same table as for Secrets, and --expiring-within works on files', () => {
    const r = scan([join(dir, 'certs', 'server.pem'), join(dir, 'certs', 'notes.txt')]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^NAMESPACE\s+NAME\s+MANAGED\s+ISSUER\s+NOT-AFTER\s+TIME-LEFT\s+RENEWAL\s+STATE\s+PROBLEM$/,
    );
    expect(lines).toHaveLength(3);
    expect(lines[1]?.split(/\s{2,}/)).toEqual([
      '-',
      `${join(dir, 'certs', 'notes.txt')} (file)`,
      '-',
      '-',
      '-',
      '-',
      '-',
      'invalid',
      'not a certificate: no PEM block, DER certificate or kubeconfig found',
    ]);
    expect(lines[2]?.split(/\s{2,}/).slice(3, 5)).toEqual([
      'files CA',
      server.notAfter.replace('.000Z', 'Z'),
    ]);
    expect(scan([join(dir, 'certs', 'server.pem'), '--expiring-within', '30d']).code).toBe(1);
    expect(scan([join(dir, 'certs', 'server.pem'), '--expiring-within', '10d']).code).toBe(0);
  });

  it('reports a path that does not exist and goes on', () => {
    const r = scan([join(dir, 'missing.pem'), join(dir, 'certs', 'server.pem'), '-o', 'json']);
    expect(r.code).toBe(0);
    const rows = (JSON.parse(r.stdout) as { items: Row[] }).items;
    expect(rows.map((row) => [row.state, row.problems])).toEqual([
      ['invalid', ['cannot read: ENOENT']],
      ['valid', []],
    ]);
  });

  it('refuses flags that only make sense for a cluster, and a bad --output', () => {
    const r = scan([dir, '--namespace', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--namespace, --kubeconfig and --config apply to a cluster scan only');
    const o = scan([dir, '-o', 'yaml']);
    expect(o.code).toBe(2);
    expect(o.stderr).toBe('cert-rotator scan: --output must be one of table, wide, json, got "yaml"\n');
  });
});
