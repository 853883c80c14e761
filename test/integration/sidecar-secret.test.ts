/**
 * `cert-rotator sidecar --secret` against the real kube-apiserver, on the in-cluster credential
 * path (token file, CA file, KUBERNETES_SERVICE_HOST/PORT) with a real ServiceAccount token whose
 * Role allows one Secret name only; the real controller renews the Secret.
 */
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCertificateSummary } from '../../src/pki/der.ts';
import { certificatesFromPem } from '../../src/pki/pem.ts';
import { killAllControllers, startControllerProcess, writeConfig } from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { makeLeaf, makeTestCA, type Pair, tlsSecret, waitForRevision } from '../testenv/tls-fixtures.ts';
import {
  type Child,
  metricsUrlOf,
  readDir,
  scrape,
  served,
  startReader,
  startSidecar,
  startTlsApp,
  stopAllChildren,
  type TlsApp,
  uniqueProcessName,
} from './fixtures/sidecar-process.ts';

const ns = useNamespace(import.meta.url);
const SECRET = 'app-tls';
const MIN = 60_000;

let core: k8s.CoreV1Api;
let rbac: k8s.RbacAuthorizationV1Api;
let work: string;
let saDir: string;
let ca: Pair;
let inClusterEnv: Record<string, string>;
let sidecar: Child;
let base: string;
let hupApp: TlsApp;
let postApp: TlsApp;
const figures: Record<string, number[]> = {
  secretUpdateToSwapMs: [],
  secretToSwapMs: [],
  swapToSighupServedMs: [],
  swapToPostServedMs: [],
};

const noZero = (hex: string) => hex.replace(/^0+/, '');
const serialOf = (pair: Pair) =>
  noZero(readCertificateSummary(certificatesFromPem(pair.certPem)[0]!).serialHex);

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? Number.NaN;
}

async function putPair(
  pair: { certPem: string; keyPem: string },
  extra: Record<string, string> = {},
): Promise<void> {
  const s = await core.readNamespacedSecret({ namespace: ns(), name: SECRET });
  s.data = {
    ...s.data,
    'tls.crt': Buffer.from(pair.certPem).toString('base64'),
    'tls.key': Buffer.from(pair.keyPem).toString('base64'),
    ...extra,
  };
  await core.replaceNamespacedSecret({ namespace: ns(), name: SECRET, body: s });
}

function swappedTo(serial: string) {
  return (l: Record<string, unknown>) => l.msg === 'files swapped' && noZero(String(l.serial)) === serial;
}

beforeAll(async () => {
  const env = testEnv();
  const admin = adminKubeConfig();
  core = admin.makeApiClient(k8s.CoreV1Api);
  rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
  work = await mkdtemp(join(tmpdir(), 'cert-rotator-sidecar-secret-'));

  // The sidecar's identity: a ServiceAccount whose Role names one Secret.
  await core.createNamespacedServiceAccount({ namespace: ns(), body: { metadata: { name: 'app' } } });
  await rbac.createNamespacedRole({
    namespace: ns(),
    body: {
      metadata: { name: 'cert-rotator-sidecar' },
      rules: [
        { apiGroups: [''], resources: ['secrets'], resourceNames: [SECRET], verbs: ['get', 'list', 'watch'] },
      ],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: ns(),
    body: {
      metadata: { name: 'cert-rotator-sidecar' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cert-rotator-sidecar' },
      subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: ns() }],
    },
  });
  const tr = await core.createNamespacedServiceAccountToken({
    namespace: ns(),
    name: 'app',
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  // What the kubelet mounts: token, ca.crt, namespace.
  saDir = join(work, 'serviceaccount');
  await mkdir(saDir);
  await writeFile(join(saDir, 'token'), tr.status?.token ?? '');
  await writeFile(join(saDir, 'ca.crt'), env.clusterCaPem);
  await writeFile(join(saDir, 'namespace'), ns());
  const api = new URL(env.apiServerUrl);
  inClusterEnv = {
    CERT_ROTATOR_SERVICEACCOUNT_DIR: saDir,
    KUBERNETES_SERVICE_HOST: api.hostname,
    KUBERNETES_SERVICE_PORT: api.port,
    POD_NAMESPACE: ns(),
    POD_NAME: 'app-0',
    POD_SERVICE_ACCOUNT: 'app',
  };

  ca = await makeTestCA('sidecar-secret CA');
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
  const first = await makeLeaf({ dnsNames: ['app.example.com'], fromMs: -MIN, toMs: 60 * MIN, ca });
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret(SECRET, first) });
});

afterAll(async () => {
  await stopAllChildren();
  await killAllControllers();
  if (Object.values(figures).some((f) => f.length > 0)) {
    const summary = Object.fromEntries(
      Object.entries(figures).map(([k, v]) => [
        k,
        { n: v.length, p50: percentile(v, 50), p90: percentile(v, 90) },
      ]),
    );
    console.log(`sidecar --secret latency figures: ${JSON.stringify(summary)}`);
  }
});

describe('sidecar --secret with a ServiceAccount limited to the Secret name', () => {
  it('writes the Secret to files, ready; the apps start from them', async () => {
    const dir = join(work, 'certs');
    sidecar = startSidecar(
      [
        '--secret',
        SECRET,
        '--dir',
        dir,
        '--dns-names',
        'app.example.com',
        '--metrics-address',
        '127.0.0.1:0',
      ],
      { env: inClusterEnv },
    );
    base = await metricsUrlOf(sidecar);
    await sidecar.waitForLog('the first swap', (l) => l.msg === 'files swapped');
    expect((await readDir(dir))?.matched).toBe(true);
    expect((await scrape(base, '/readyz')).status).toBe(200);
    // The sidecar must not log key material.
    expect(sidecar.output()).not.toContain('PRIVATE KEY');
    await sidecar.stop();
    // Again, now with two applications to tell: one reloads on SIGHUP, one on POST.
    const hupName = uniqueProcessName('app-hup');
    hupApp = await startTlsApp(dir, hupName);
    postApp = await startTlsApp(dir, 'app-post');
    sidecar = startSidecar(
      [
        '--secret',
        SECRET,
        '--dir',
        dir,
        '--metrics-address',
        '127.0.0.1:0',
        '--process',
        hupName,
        '--http-post',
        `http://127.0.0.1:${postApp.adminPort}/reload`,
      ],
      { env: inClusterEnv },
    );
    base = await metricsUrlOf(sidecar);
    await sidecar.waitForLog('adoption', (l) => l.msg === 'kept the valid certificate already on disk');
  });

  it('a request for another Secret is denied and the sidecar says so (and --once exits 1 with it)', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret(
        'other-tls',
        await makeLeaf({ dnsNames: ['o.example.com'], fromMs: -MIN, toMs: 60 * MIN }),
      ),
    });
    const other = startSidecar(
      ['--secret', 'other-tls', '--dir', join(work, 'other'), '--metrics-address', '127.0.0.1:0'],
      { env: inClusterEnv },
    );
    const otherBase = await metricsUrlOf(other);
    const denied = await other.waitForLog('the denial', (l) => l.code === 403);
    expect(String(denied.msg)).toContain(`the API server denied access to Secret ${ns()}/other-tls`);
    expect(String(denied.msg)).toContain('resourceNames: [other-tls]');
    const ready = await scrape(otherBase, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.text).toContain('denied access');
    await other.stop();
    const once = startSidecar(
      ['--secret', 'other-tls', '--dir', join(work, 'other'), '--once', '--timeout', '3s'],
      {
        env: inClusterEnv,
      },
    );
    expect(await once.exited).toBe(1);
    expect(once.output()).toMatch(/no certificate within 3s: the API server denied access to Secret/);
    expect(await readdir(join(work, 'other')).catch(() => [])).toEqual([]);
  });

  it('--kubeconfig (outside a cluster) with the same token: --once writes the files and exits 0', async () => {
    const env = testEnv();
    const token = (await readFile(join(saDir, 'token'), 'utf8')).trim();
    const kubeconfig = join(work, 'sa.kubeconfig');
    await writeFile(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: test\n  cluster:\n    server: ${env.apiServerUrl}\n    certificate-authority-data: ${Buffer.from(env.clusterCaPem).toString('base64')}`,
        'users:',
        `- name: app\n  user:\n    token: ${token}`,
        'contexts:',
        `- name: app\n  context:\n    cluster: test\n    user: app\n    namespace: ${ns()}`,
        'current-context: app',
        '',
      ].join('\n'),
    );
    const dir = join(work, 'via-kubeconfig');
    // No in-cluster environment at all: the namespace comes from the kubeconfig context.
    const s = startSidecar(['--secret', SECRET, '--kubeconfig', kubeconfig, '--dir', dir, '--once'], {
      env: { KUBERNETES_SERVICE_HOST: '', KUBERNETES_SERVICE_PORT: '', POD_NAMESPACE: '' },
    });
    expect(await s.exited).toBe(0);
    expect((await readDir(dir))?.matched).toBe(true);
  });

  it('a reader resolving ..data once never sees a mismatched pair during 50 swaps; the apps end on the last serial, same PIDs', async () => {
    const dir = join(work, 'certs');
    const pairs = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        makeLeaf({ dnsNames: [`s${i}.example.com`], fromMs: -MIN, toMs: 60 * MIN, ca }),
      ),
    );
    const reader = startReader(dir);
    const written = new Map<string, number>();
    let last = '';
    for (let i = 0; i < 50; i++) {
      const pair =
        i % 5 === 4
          ? await makeLeaf({ dnsNames: ['x.example.com'], fromMs: -MIN, toMs: 60 * MIN, ca })
          : pairs[i % 5]!;
      await putPair(pair);
      last = serialOf(pair);
      if (!written.has(last)) written.set(last, Date.now());
      await sidecar.waitForLog(
        `swap ${i + 1}`,
        (l) =>
          l.msg === 'files swapped' &&
          noZero(String(l.serial)) === last &&
          sidecar.logs.filter((x) => x.msg === 'files swapped').length >= i + 1,
      );
    }
    const seen = await reader.stop();
    expect(seen.mismatched).toBe(0);
    expect(seen.reads).toBeGreaterThan(50);
    // Secret written (the replace call answered) → files swapped, as the sidecar's log times it.
    for (const [serial, at] of written) {
      const swap = sidecar.logs.find(swappedTo(serial));
      if (swap) figures.secretUpdateToSwapMs!.push(Date.parse(String(swap.time)) - at);
    }
    console.log(
      `reader during 50 Secret swaps: ${seen.reads} reads, ${seen.serials.length} serials seen, 0 mismatched`,
    );
    for (const app of [hupApp, postApp]) {
      const s = await waitFor(`${app.proc.pid} to serve ${last}`, async () => {
        const x = await served(app.tlsPort);
        return x.serial === last ? x : undefined;
      });
      expect(s.pid).toBe(app.pid);
    }
  }, 180_000);

  it('malformed certificate or mismatched key in the Secret: old files kept, warning logged, still ready', async () => {
    const dir = join(work, 'certs');
    const before = await readDir(dir);
    await putPair({ certPem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', keyPem: 'x' });
    await sidecar.waitForLog(
      'the malformed refusal',
      (l) =>
        l.level === 'warn' &&
        String(l.msg).startsWith('refused a certificate') &&
        JSON.stringify(l.err).includes('DER'),
    );
    const good = await makeLeaf({ dnsNames: ['k.example.com'], fromMs: -MIN, toMs: 60 * MIN, ca });
    const stranger = await makeLeaf({ dnsNames: ['k.example.com'], fromMs: -MIN, toMs: 60 * MIN, ca });
    await putPair({ certPem: good.certPem, keyPem: stranger.keyPem });
    const refused = await sidecar.waitForLog('the key mismatch refusal', (l) =>
      JSON.stringify(l.err ?? '').includes('KEY_MISMATCH'),
    );
    expect(refused.msg).toBe('refused a certificate that does not verify; the files on disk are kept');
    expect(await readDir(dir)).toEqual(before);
    expect((await scrape(base, '/readyz')).status).toBe(200);
  });

  it('the real controller renews the Secret: files swap, the SIGHUP app and the POST app serve the new serial from the same PID', async () => {
    const config = await writeConfig(work, {
      namespaces: [ns()],
      defaults: { issuer: 'internal-ca' },
      issuers: [{ name: 'internal-ca', ca: { secret: { namespace: ns(), name: 'internal-ca' } } }],
    });
    const controller = startControllerProcess({
      configPath: config,
      kubeconfigPath: testEnv().kubeconfigPath,
    });
    await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
    // A certificate close to expiry: opting in makes the controller renew it at once.
    const expiring = await makeLeaf({ dnsNames: ['app.example.com'], fromMs: -10 * MIN, toMs: 2 * MIN, ca });
    await putPair(expiring);
    await sidecar.waitForLog('the expiring swap', swappedTo(serialOf(expiring)));
    await core.patchNamespacedSecret(
      {
        namespace: ns(),
        name: SECRET,
        body: {
          metadata: {
            annotations: {
              'cert-rotator.io/enabled': 'true',
              'cert-rotator.io/dns-names': 'app.example.com',
              // 1 h certificates renewed when 98 % of the lifetime remains: one renewal every ~15 s.
              'cert-rotator.io/duration': '1h',
              'cert-rotator.io/renew-before': '98%',
            },
          },
        },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    // Watch the Secret as the test (admin) to time each change the controller makes.
    const seenAt = new Map<string, number>();
    const watcher = await new k8s.Watch(adminKubeConfig()).watch(
      `/api/v1/namespaces/${ns()}/secrets`,
      { fieldSelector: `metadata.name=${SECRET}` },
      (_type: string, obj: k8s.V1Secret) => {
        const crt = Buffer.from(obj.data?.['tls.crt'] ?? '', 'base64').toString('utf8');
        try {
          const serial = noZero(readCertificateSummary(certificatesFromPem(crt)[0]!).serialHex);
          if (!seenAt.has(serial)) seenAt.set(serial, Date.now());
        } catch {
          // not a certificate (the malformed version)
        }
      },
      () => undefined,
    );
    try {
      for (let revision = 1; revision <= 6; revision++) {
        const renewed = await waitForRevision(core, ns(), SECRET, String(revision), 60_000);
        const serial = noZero(
          readCertificateSummary(
            certificatesFromPem(Buffer.from(renewed.data?.['tls.crt'] ?? '', 'base64').toString())[0]!,
          ).serialHex,
        );
        const swap = await sidecar.waitForLog(`the swap to revision ${revision}`, swappedTo(serial));
        const swapAt = Date.parse(String(swap.time));
        const changedAt = await waitFor('the test watch to see it', () => seenAt.get(serial));
        figures.secretToSwapMs!.push(swapAt - changedAt);
        for (const [app, key] of [
          [hupApp, 'swapToSighupServedMs'],
          [postApp, 'swapToPostServedMs'],
        ] as const) {
          const s = await waitFor(`the ${key} app to serve ${serial}`, async () => {
            const x = await served(app.tlsPort);
            return x.serial === serial ? x : undefined;
          });
          expect(s.pid).toBe(app.pid);
          const reloaded = app.logs
            .filter((l) => typeof l.reloaded === 'number' && typeof l.at === 'number')
            .at(-1);
          figures[key]!.push(Number(reloaded?.at) - swapAt);
        }
      }
    } catch (err) {
      console.log(controller.output().slice(-4000));
      throw err;
    } finally {
      watcher.abort();
      await controller.stop();
    }
    const metrics = (await scrape(base)).text;
    expect(metrics).toMatch(/cert_rotator_sidecar_reloads_total\{method="signal",result="success"\} \d+/);
    expect(metrics).toMatch(/cert_rotator_sidecar_reloads_total\{method="http-post",result="success"\} \d+/);
  }, 240_000);

  it('the Secret deleted: files kept and ready until the certificate on disk expires, then not ready', async () => {
    const dir = join(work, 'certs');
    const shortLived = await makeLeaf({ dnsNames: ['app.example.com'], fromMs: -MIN, toMs: 15_000, ca });
    await putPair(shortLived);
    await sidecar.waitForLog('the short-lived swap', swappedTo(serialOf(shortLived)));
    await core.deleteNamespacedSecret({ namespace: ns(), name: SECRET });
    await sidecar.waitForLog('the deletion', (l) =>
      String(l.msg).includes('was deleted; the files on disk are kept'),
    );
    expect((await readDir(dir))?.serial).toBe(serialOf(shortLived));
    const notAfter = readCertificateSummary(certificatesFromPem(shortLived.certPem)[0]!).notAfter;
    if (Date.now() < notAfter - 1_000) expect((await scrape(base, '/readyz')).status).toBe(200);
    const r = await waitFor(
      'readiness to turn false at expiry',
      async () => {
        const x = await scrape(base, '/readyz');
        return x.status === 503 ? x : undefined;
      },
      { timeoutMs: 40_000 },
    );
    expect(Date.now()).toBeGreaterThanOrEqual(notAfter);
    expect(r.text).toContain('the certificate on disk expired');
    expect((await readDir(dir))?.serial).toBe(serialOf(shortLived));
  }, 90_000);
});
