import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificatesFromPem, readCertificateSummary } from '../../src/pki/index.ts';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { decoded, makeLeaf, tlsSecret, waitForRevision } from '../testenv/tls-fixtures.ts';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;
const ns = useNamespace(import.meta.url);
const DAY = 86_400_000;
const REQUESTED = 'cert-rotator.io/renew-requested-at';
const HANDLED = 'status.cert-rotator.io/renew-request-handled';

let core: k8s.CoreV1Api;
let replicas: ControllerProcess[] = [];

async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KUBECONFIG: testEnv().kubeconfigPath },
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

const read = (name: string) => core.readNamespacedSecret({ namespace: ns(), name });
const serialOf = (s: k8s.V1Secret) =>
  readCertificateSummary(certificatesFromPem(decoded(s, 'tls.crt'))[0] as Uint8Array);
const renewedLines = (name: string) =>
  replicas
    .flatMap((c) => c.logs)
    .filter((l) => l.msg === 'certificate renewed' && l.secret === `${ns()}/${name}`).length;

async function createManaged(name: string, annotations: Record<string, string> = {}): Promise<void> {
  // Valid for 30 more days: never due by itself during the test.
  const pair = await makeLeaf({ dnsNames: [`${name}.example.com`], fromMs: -DAY, toMs: 30 * DAY });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret(name, pair, { 'cert-rotator.io/enabled': 'true', ...annotations }),
  });
}

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-renew-'));
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    issuers: [{ name: 'self', selfSigned: {} }],
    defaults: { issuer: 'self' },
  });
  // Two replicas with leader election: whichever leads answers the request, once.
  replicas = [0, 1].map(() =>
    startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath }),
  );
  await Promise.all(
    replicas.map((c) => c.waitForLog('the initial list', (l) => l.msg === 'initial list processed')),
  );
  await createManaged('web');
  await createManaged('api');
  await createManaged('other');
  await createManaged('bad', { 'cert-rotator.io/renew-before': 'soon' });
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret(
      'plain',
      await makeLeaf({ dnsNames: ['plain.example.com'], fromMs: -DAY, toMs: 30 * DAY }),
    ),
  });
});

afterAll(async () => {
  await killAllControllers();
});

describe('cert-rotator renew', () => {
  it('renews a managed Secret that is not due, waits for the new revision and prints its serial and notAfter', async () => {
    const before = serialOf(await read('web'));
    const r = await cli(['renew', `${ns()}/web`]);
    expect(r.code, r.stderr).toBe(0);
    const after = await read('web');
    const cert = serialOf(after);
    expect(cert.serialHex).not.toBe(before.serialHex);
    const annotations = after.metadata?.annotations ?? {};
    expect(annotations['cert-rotator.io/revision']).toBe('1');
    const token = annotations[REQUESTED] as string;
    expect(token).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(annotations[HANDLED]).toBe(token);
    expect(r.stdout).toBe(
      `renewal of ${ns()}/web requested (${REQUESTED}=${token}); revision now 0\n` +
        `renewed ${ns()}/web: revision 1, serial ${cert.serialHex}, notAfter ${new Date(cert.notAfter).toISOString()}\n`,
    );
    expect(renewedLines('web')).toBe(1);
  });

  it('does nothing for a request already handled (the same token again)', async () => {
    const before = await read('web');
    const token = before.metadata?.annotations?.[REQUESTED] as string;
    // Re-apply the same token with an unrelated change, so the controllers see an update event.
    await core.patchNamespacedSecret(
      {
        namespace: ns(),
        name: 'web',
        body: { metadata: { annotations: { [REQUESTED]: token, 'example.com/touched': 'yes' } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const touched = (await read('web')).metadata?.resourceVersion;
    await Promise.all(
      replicas.map((c) =>
        c.waitForLog(
          'the update to be seen',
          (l) => l.msg === 'Secret seen' && l.resourceVersion === touched,
        ),
      ),
    );
    // A later request on another Secret completes: the controllers are past the update of `web`.
    const other = await cli(['renew', `${ns()}/other`]);
    expect(other.code, other.stderr).toBe(0);
    const after = await read('web');
    expect(after.metadata?.annotations?.['cert-rotator.io/revision']).toBe('1');
    expect(decoded(after, 'tls.crt')).toBe(decoded(before, 'tls.crt'));
    expect(renewedLines('web')).toBe(1);
  });

  it('--no-wait returns at once; the controller still renews once', async () => {
    const r = await cli(['renew', `${ns()}/api`, '--no-wait']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`^renewal of ${ns()}/api requested \\(${REQUESTED}=\\S+\\); revision now 0\\n$`),
    );
    const renewed = await waitForRevision(core, ns(), 'api', '1');
    expect(renewed.metadata?.annotations?.[HANDLED]).toBe(renewed.metadata?.annotations?.[REQUESTED]);
    await waitFor('the renewal to be logged', () => renewedLines('api') === 1);
  });

  it('refuses a Secret that is not opted in, one that does not exist, and one with a bad annotation, with exit 2', async () => {
    const plain = await cli(['renew', `${ns()}/plain`]);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toBe(
      `cert-rotator renew: Secret ${ns()}/plain is not managed by cert-rotator (no cert-rotator.io/enabled: "true"); opt it in with: kubectl annotate secret -n ${ns()} plain cert-rotator.io/enabled=true\n`,
    );
    expect((await read('plain')).metadata?.annotations?.[REQUESTED]).toBeUndefined();
    const missing = await cli(['renew', `${ns()}/missing`]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`cert-rotator renew: Secret ${ns()}/missing not found\n`);
    const bad = await cli(['renew', `${ns()}/bad`]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      new RegExp(
        `^cert-rotator renew: Secret ${ns()}/bad has annotations the controller refuses, so it would not renew it: bad annotation cert-rotator\\.io/renew-before: "soon" `,
      ),
    );
    expect((await read('bad')).metadata?.annotations?.[REQUESTED]).toBeUndefined();
    const malformed = await cli(['renew', 'just-a-name']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/^cert-rotator renew: name the Secret as NAMESPACE\/NAME\n/);
  });
});
