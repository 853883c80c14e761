import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { certificatesFromPem, readCertificateSummary } from '../../src/pki/index.ts';
import { adminKubeConfig, serviceAccountKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { makeLeaf, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;
const ns = useNamespace(import.meta.url);
const DAY = 86_400_000;
const A = 'cert-rotator.io/';

let core: k8s.CoreV1Api;
let dir: string;
/** A second namespace with one valid Secret, for exit code 0 and the list-only ServiceAccount. */
let quiet: string;

interface Cli {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], kubeconfig = testEnv().kubeconfigPath): Promise<Cli> {
  const proc = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KUBECONFIG: kubeconfig },
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  proc.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
  return { code, stdout, stderr };
}

const validity = (pair: Pair) => readCertificateSummary(certificatesFromPem(pair.certPem)[0] as Uint8Array);
const iso = (ms: number) => new Date(ms).toISOString();

const pairs: Record<string, Pair> = {};

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  dir = await mkdtemp(join(tmpdir(), 'cert-rotator-scan-'));
  const leaf = (fromDays: number, toDays: number, name: string) =>
    makeLeaf({ dnsNames: [`${name}.example.com`], fromMs: fromDays * DAY, toMs: toDays * DAY });
  // Distinct expiries, so the expected order is unambiguous.
  pairs.valid = await leaf(-1, 30, 'valid');
  pairs.due = await leaf(-25, 5, 'due');
  pairs.expired = await leaf(-10, -1, 'expired');
  pairs.mismatch = await leaf(-1, 40, 'mismatch');
  pairs.other = await leaf(-1, 40, 'other');
  pairs.unmanaged = await leaf(-1, 50, 'unmanaged');
  pairs.badAnnotation = await leaf(-1, 60, 'bad');
  pairs.unknownIssuer = await leaf(-1, 70, 'unknown');
  pairs.teamOnly = await leaf(-1, 80, 'team');
  const on = { [`${A}enabled`]: 'true' };
  const secrets: k8s.V1Secret[] = [
    tlsSecret('valid', pairs.valid, on),
    tlsSecret('due', pairs.due, on),
    tlsSecret('expired', pairs.expired, on),
    tlsSecret('mismatch', { certPem: pairs.mismatch.certPem, keyPem: pairs.other.keyPem }, on),
    tlsSecret('unmanaged', pairs.unmanaged),
    tlsSecret('bad-annotation', pairs.badAnnotation, { ...on, [`${A}renew-before`]: 'soon' }),
    tlsSecret('unknown-issuer', pairs.unknownIssuer, { ...on, [`${A}issuer`]: 'nope' }),
    tlsSecret('team-only', pairs.teamOnly, { ...on, [`${A}issuer`]: 'team-ca' }),
    tlsSecret('unparseable', { certPem: 'not a certificate', keyPem: pairs.valid.keyPem }, on),
    // Not a TLS Secret: never listed.
    tlsSecret('opaque', pairs.valid, on, 'Opaque'),
  ];
  for (const body of secrets) await core.createNamespacedSecret({ namespace: ns(), body });

  quiet = `${ns()}-quiet`;
  await core.createNamespace({ body: { metadata: { name: quiet } } });
  await core.createNamespacedSecret({ namespace: quiet, body: tlsSecret('only', pairs.valid, on) });
  return async () => {
    await core.deleteNamespace({ name: quiet }).catch(() => undefined);
  };
});

interface Row {
  kind: string;
  namespace: string | null;
  name: string;
  source: string | null;
  managed: boolean;
  issuer: string | null;
  serial: string | null;
  commonName: string | null;
  dnsNames: string[];
  notBefore: string | null;
  notAfter: string | null;
  timeLeftSeconds: number | null;
  renewalTime: string | null;
  plannedRenewal: string | null;
  state: string;
  controllerState: string | null;
  problems: string[];
}

describe('cert-rotator scan against the API server', () => {
  it('reports every TLS Secret with its expiry, planned renewal, state and problem (JSON, field by field)', async () => {
    const before = Date.now();
    const r = await cli(['scan', '--namespace', ns(), '--output', 'json']);
    const after = Date.now();
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { scannedAt: string; items: Row[] };
    const at = Date.parse(doc.scannedAt);
    expect(at).toBeGreaterThanOrEqual(before - 1000);
    expect(at).toBeLessThanOrEqual(after);
    const byName = new Map(doc.items.map((row) => [row.name, row]));
    expect(doc.items.map((row) => row.name)).toEqual([
      'unparseable',
      'expired',
      'due',
      'valid',
      'mismatch',
      'unmanaged',
      'bad-annotation',
      'unknown-issuer',
      'team-only',
    ]);
    const certOf = (name: string, pair: Pair) => {
      const v = validity(pair);
      return {
        serial: v.serialHex,
        commonName: null,
        dnsNames: [`${name}.example.com`],
        notBefore: iso(v.notBefore),
        notAfter: iso(v.notAfter),
        timeLeftSeconds: Math.floor((v.notAfter - at) / 1000),
      };
    };
    const third = (pair: Pair) => {
      const v = validity(pair);
      return iso(v.notAfter - Math.round((v.notAfter - v.notBefore) / 3));
    };
    const base = { kind: 'Secret', namespace: ns(), source: null, controllerState: null };
    expect(byName.get('valid')).toEqual({
      ...base,
      name: 'valid',
      managed: true,
      issuer: null,
      ...certOf('valid', pairs.valid as Pair),
      renewalTime: third(pairs.valid as Pair),
      plannedRenewal: third(pairs.valid as Pair),
      state: 'valid',
      problems: [],
    });
    expect(byName.get('due')).toEqual({
      ...base,
      name: 'due',
      managed: true,
      issuer: null,
      ...certOf('due', pairs.due as Pair),
      renewalTime: third(pairs.due as Pair),
      plannedRenewal: 'now',
      state: 'due',
      problems: [],
    });
    expect(byName.get('expired')).toEqual({
      ...base,
      name: 'expired',
      managed: true,
      issuer: null,
      ...certOf('expired', pairs.expired as Pair),
      renewalTime: third(pairs.expired as Pair),
      plannedRenewal: 'now',
      state: 'expired',
      problems: [`expired ${iso(validity(pairs.expired as Pair).notAfter)}`],
    });
    expect(byName.get('mismatch')).toMatchObject({
      managed: true,
      state: 'valid',
      problems: ['tls.key does not match tls.crt'],
      ...certOf('mismatch', pairs.mismatch as Pair),
    });
    expect(byName.get('unmanaged')).toEqual({
      ...base,
      name: 'unmanaged',
      managed: false,
      issuer: null,
      ...certOf('unmanaged', pairs.unmanaged as Pair),
      renewalTime: null,
      plannedRenewal: null,
      state: 'valid',
      problems: [],
    });
    const bad = byName.get('bad-annotation') as Row;
    expect(bad).toMatchObject({ managed: true, state: 'valid', renewalTime: null, plannedRenewal: null });
    expect(bad.problems).toHaveLength(1);
    expect(bad.problems[0]).toMatch(/^bad annotation cert-rotator\.io\/renew-before: "soon" /);
    // Without --config, issuer problems are not reported: the named issuer is taken to exist.
    expect(byName.get('unknown-issuer')).toMatchObject({ issuer: 'nope', state: 'valid', problems: [] });
    expect(byName.get('unparseable')).toEqual({
      ...base,
      name: 'unparseable',
      managed: true,
      issuer: null,
      serial: null,
      commonName: null,
      dnsNames: [],
      notBefore: null,
      notAfter: null,
      timeLeftSeconds: null,
      renewalTime: null,
      plannedRenewal: 'now',
      state: 'invalid',
      problems: ['tls.crt cannot be parsed: no CERTIFICATE block found in PEM text'],
    });
  });

  it('prints a table: the header, one row per Secret, sorted by expiry', async () => {
    const r = await cli(['scan', '-n', ns()]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]?.split(/\s{2,}/)).toEqual([
      'NAMESPACE',
      'NAME',
      'MANAGED',
      'ISSUER',
      'NOT-AFTER',
      'TIME-LEFT',
      'RENEWAL',
      'STATE',
      'PROBLEM',
    ]);
    const rows = lines.slice(1).map((l) => l.split(/\s{2,}/));
    expect(rows.map((c) => c[1])).toEqual([
      'unparseable',
      'expired',
      'due',
      'valid',
      'mismatch',
      'unmanaged',
      'bad-annotation',
      'unknown-issuer',
      'team-only',
    ]);
    const row = (name: string) => rows.find((c) => c[1] === name) as string[];
    const expired = row('expired');
    expect(expired.slice(0, 4)).toEqual([ns(), 'expired', 'yes', '-']);
    expect(expired[4]).toBe(iso(validity(pairs.expired as Pair).notAfter).replace('.000Z', 'Z'));
    expect(expired[5]).toMatch(/^-1d0h$|^-23h59m$/);
    expect(expired.slice(6, 8)).toEqual(['now', 'expired']);
    expect(row('due').slice(6, 9)).toEqual(['now', 'due', '-']);
    expect(row('mismatch').slice(7)).toEqual(['valid', 'tls.key does not match tls.crt']);
    expect(row('unmanaged').slice(2, 3)).toEqual(['no']);
    expect(row('unmanaged').slice(6)).toEqual(['-', 'valid', '-']);
    expect(row('unparseable').slice(4)).toEqual([
      '-',
      '-',
      'now',
      'invalid',
      'tls.crt cannot be parsed: no CERTIFICATE block found in PEM text',
    ]);
    // wide adds the controller's state, the serial and the names.
    const wide = await cli(['scan', '-n', ns(), '-o', 'wide']);
    expect(wide.stdout.split('\n')[0]).toMatch(/STATE\s+CONTROLLER-STATE\s+SERIAL\s+DNS-NAMES\s+PROBLEM$/);
    expect(wide.stdout).toContain(validity(pairs.valid as Pair).serialHex);
  });

  it('exits 1 when a certificate expires within --expiring-within, 0 when none does', async () => {
    const soon = await cli(['scan', '-n', ns(), '--expiring-within', '14d']);
    expect(soon.code).toBe(1);
    expect(soon.stderr).toBe('cert-rotator scan: 2 certificates expire within 14d\n');
    const calm = await cli(['scan', '-n', quiet, '--expiring-within', '14d']);
    expect(calm.code, calm.stderr).toBe(0);
    expect(calm.stderr).toBe('');
    const later = await cli(['scan', '-n', quiet, '--expiring-within', '45d', '-o', 'json']);
    expect(later.code).toBe(1);
    expect(JSON.parse(later.stdout).expiringWithin).toBe('45d');
    const bad = await cli(['scan', '-n', quiet, '--expiring-within', 'two weeks']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^cert-rotator scan: --expiring-within: "two weeks" is not a duration/);
  });

  it('judges issuers with --config: an unknown issuer and a namespace the issuer does not allow are problems', async () => {
    const config = join(dir, 'config.yaml');
    await writeFile(
      config,
      [
        'issuers:',
        '  - name: internal-ca',
        '    ca: { secret: { namespace: cert-rotator, name: internal-ca } }',
        '  - name: team-ca',
        '    ca: { secret: { namespace: cert-rotator, name: team-ca } }',
        '    allowedNamespaces: ["team-*"]',
        'defaults: { issuer: internal-ca, renewBefore: 20d }',
        '',
      ].join('\n'),
    );
    const r = await cli(['scan', '-n', ns(), '-o', 'json', '--config', config]);
    expect(r.code, r.stderr).toBe(0);
    const byName = new Map((JSON.parse(r.stdout).items as Row[]).map((row) => [row.name, row]));
    expect(byName.get('unknown-issuer')?.problems).toEqual([
      'bad annotation cert-rotator.io/issuer: unknown issuer "nope" (issuers: internal-ca, team-ca)',
    ]);
    expect(byName.get('team-only')).toMatchObject({
      issuer: 'team-ca',
      renewalTime: null,
      plannedRenewal: null,
      problems: [expect.stringMatching(/^issuer "team-ca" does not allow this Secret: /)],
    });
    // The config's defaults decide the renewal time: 20 days before notAfter, not a third.
    const renewal = iso(validity(pairs.valid as Pair).notAfter - 20 * DAY);
    expect(byName.get('valid')).toMatchObject({
      issuer: 'internal-ca',
      renewalTime: renewal,
      plannedRenewal: renewal,
    });
    // A Secret that is not opted in gets no issuer and no renewal, config or not.
    expect(byName.get('unmanaged')).toMatchObject({
      issuer: null,
      renewalTime: null,
      plannedRenewal: null,
      problems: [],
    });
    // Without --config the same Secret is only judged on its own annotations.
    const plain = await cli(['scan', '-n', ns(), '-o', 'json']);
    const plainRows = new Map((JSON.parse(plain.stdout).items as Row[]).map((row) => [row.name, row]));
    expect(plainRows.get('team-only')).toMatchObject({ issuer: 'team-ca', problems: [] });
    const bad = await cli(['scan', '--config', join(dir, 'missing.yaml')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('cannot read config file');
  });

  it('runs with a ServiceAccount that may only list Secrets in one namespace', async () => {
    const admin = adminKubeConfig();
    const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
    await core.createNamespacedServiceAccount({ namespace: quiet, body: { metadata: { name: 'scanner' } } });
    await rbac.createNamespacedRole({
      namespace: quiet,
      body: {
        metadata: { name: 'list-secrets' },
        rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['list'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: quiet,
      body: {
        metadata: { name: 'scanner' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'list-secrets' },
        subjects: [{ kind: 'ServiceAccount', name: 'scanner', namespace: quiet }],
      },
    });
    const sa = await serviceAccountKubeConfig(admin, quiet, 'scanner');
    const kubeconfig = join(dir, 'scanner.kubeconfig');
    await writeFile(kubeconfig, sa.exportConfig(), { mode: 0o600 });
    const r = await cli(['scan', '-n', quiet, '-o', 'json'], kubeconfig);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout).items as Row[]).map((row) => `${row.namespace}/${row.name}`)).toEqual([
      `${quiet}/only`,
    ]);
    // All namespaces needs a ClusterRole: a clear message, exit 2.
    const all = await cli(['scan'], kubeconfig);
    expect(all.code).toBe(2);
    expect(all.stderr).toMatch(
      /^cert-rotator scan: cannot list Secrets: HTTP 403: .*; scan needs "list" on secrets in all namespaces/,
    );
  });
});
