/**
 * `cert-rotator sidecar --secret ... --ca-bundle-configmap` against the real kube-apiserver, as a
 * ServiceAccount whose Role names the Secret and the ConfigMap only (the documented get + watch):
 * ca.crt is the bundle from the first files on, follows each change with one SIGHUP to a real
 * application, and keeps the old file when the bundle is missing or is not CA certificates.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { makeLeaf, makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';
import {
  type Child,
  metricsUrlOf,
  scrape,
  startSidecar,
  startTlsApp,
  stopAllChildren,
  uniqueProcessName,
} from './fixtures/sidecar-process.ts';

const ns = useNamespace(import.meta.url);
const MIN = 60_000;
const SECRET = 'app-tls';
const BUNDLE = 'internal-ca-trust';

let core: k8s.CoreV1Api;
let work: string;
let env: Record<string, string>;
let ca1: Pair;
let ca2: Pair;

async function putBundle(text: string | undefined): Promise<void> {
  const data: Record<string, string> = text === undefined ? {} : { 'ca.crt': text };
  const body: k8s.V1ConfigMap = { metadata: { name: BUNDLE }, data };
  try {
    await core.replaceNamespacedConfigMap({ namespace: ns(), name: BUNDLE, body });
  } catch {
    await core.createNamespacedConfigMap({ namespace: ns(), body });
  }
}

const caFile = (dir: string) => readFile(join(dir, 'ca.crt'), 'utf8');
const reloads = (app: Child) => app.count((l) => typeof l.reloaded === 'number');

beforeAll(async () => {
  const test = testEnv();
  const admin = adminKubeConfig();
  core = admin.makeApiClient(k8s.CoreV1Api);
  const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
  work = await mkdtemp(join(tmpdir(), 'cert-rotator-sidecar-bundle-'));
  await core.createNamespacedServiceAccount({ namespace: ns(), body: { metadata: { name: 'app' } } });
  await rbac.createNamespacedRole({
    namespace: ns(),
    body: {
      metadata: { name: 'app-sidecar' },
      rules: [
        { apiGroups: [''], resources: ['secrets'], resourceNames: [SECRET], verbs: ['get', 'list', 'watch'] },
        // What docs/sidecar.md documents for --ca-bundle-configmap, nothing more.
        { apiGroups: [''], resources: ['configmaps'], resourceNames: [BUNDLE], verbs: ['get', 'watch'] },
      ],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: ns(),
    body: {
      metadata: { name: 'app-sidecar' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'app-sidecar' },
      subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: ns() }],
    },
  });
  const tr = await core.createNamespacedServiceAccountToken({
    namespace: ns(),
    name: 'app',
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const saDir = join(work, 'serviceaccount');
  await mkdir(saDir);
  await writeFile(join(saDir, 'token'), tr.status?.token ?? '');
  await writeFile(join(saDir, 'ca.crt'), test.clusterCaPem);
  await writeFile(join(saDir, 'namespace'), ns());
  const api = new URL(test.apiServerUrl);
  env = {
    CERT_ROTATOR_SERVICEACCOUNT_DIR: saDir,
    KUBERNETES_SERVICE_HOST: api.hostname,
    KUBERNETES_SERVICE_PORT: api.port,
    POD_NAMESPACE: ns(),
  };
  ca1 = await makeTestCA('bundle CA 1');
  ca2 = await makeTestCA('bundle CA 2');
  const leaf = await makeLeaf({ dnsNames: ['app.example.com'], fromMs: -MIN, toMs: 60 * MIN, ca: ca1 });
  const secret = tlsSecret(SECRET, leaf);
  // The Secret's own ca.crt is CA 1 alone; the bundle replaces it.
  secret.data = { ...secret.data, 'ca.crt': Buffer.from(ca1.certPem).toString('base64') };
  await core.createNamespacedSecret({ namespace: ns(), body: secret });
});

afterAll(async () => {
  await stopAllChildren();
});

describe('sidecar --ca-bundle-configmap (real API server, Role limited to get + watch by name)', () => {
  it('ca.crt is the bundle from the first files, follows its changes with one signal each, and keeps the old file on bad input', async () => {
    await putBundle(ca1.certPem);
    const dir = join(work, 'certs');
    const name = uniqueProcessName('bundle-app');
    const args = ['--secret', SECRET, '--ca-bundle-configmap', BUNDLE, '--dir', dir, '--process', name];
    const sidecar = startSidecar([...args, '--metrics-address', '127.0.0.1:0'], { env });
    const base = await metricsUrlOf(sidecar);
    await sidecar.waitForLog('the first files', (l) => l.msg === 'files swapped');
    expect(await caFile(dir)).toBe(ca1.certPem);
    // The bundle was read before the certificate: one generation, nobody told.
    expect(sidecar.count((l) => l.msg === 'ca.crt swapped to the trust bundle')).toBe(0);
    const app = await startTlsApp(dir, name);

    // The rollover's Trust phase: old + new. One new generation, one SIGHUP.
    await putBundle(ca1.certPem + ca2.certPem);
    await waitFor('ca.crt with both CAs', async () =>
      (await caFile(dir)) === ca1.certPem + ca2.certPem ? true : undefined,
    );
    await app.waitForLog('the reload', (l) => l.reloaded === 1);

    // Not CA certificates: refused, the file and the application left alone.
    const leaf = await makeLeaf({ dnsNames: ['x.example.com'], fromMs: -MIN, toMs: MIN, ca: ca2 });
    await putBundle(ca2.certPem + leaf.certPem);
    const refused = await sidecar.waitForLog('the refusal', (l) => String(l.msg).includes(' refused: '));
    expect(refused.msg).toMatch(
      new RegExp(
        `ConfigMap ${ns()}/${BUNDLE} key ca.crt \\(resourceVersion \\d+\\) refused: certificate 2 is not a CA`,
      ),
    );
    expect(refused.level).toBe('warn');
    // Missing key, then the same bundle again: nothing written, nobody told.
    await putBundle(undefined);
    await sidecar.waitForLog('the missing key', (l) => String(l.msg).includes('the key is missing or empty'));
    await putBundle(ca1.certPem + ca2.certPem);
    // Retire: the new CA alone.
    await putBundle(ca2.certPem);
    await waitFor('ca.crt with the new CA alone', async () =>
      (await caFile(dir)) === ca2.certPem ? true : undefined,
    );
    await app.waitForLog('the second reload', (l) => l.reloaded === 2);
    expect(reloads(app)).toBe(2);
    expect(sidecar.count((l) => l.msg === 'ca.crt swapped to the trust bundle')).toBe(2);
    expect((await scrape(base, '/readyz')).status).toBe(200);

    // Deleted: kept as it is, the sidecar keeps running.
    await core.deleteNamespacedConfigMap({ namespace: ns(), name: BUNDLE });
    await sidecar.waitForLog('the deletion', (l) => String(l.msg).includes('does not exist; ca.crt is kept'));
    expect(await caFile(dir)).toBe(ca2.certPem);
    expect(sidecar.proc.exitCode).toBeNull();
    await sidecar.stop();
  });

  it('a bundle the Role does not name: the sidecar says which Role to add and keeps serving its certificate', async () => {
    await core.createNamespacedConfigMap({
      namespace: ns(),
      body: { metadata: { name: 'other-trust' }, data: { 'ca.crt': ca1.certPem } },
    });
    const dir = join(work, 'other');
    const sidecar = startSidecar(
      [
        '--secret',
        SECRET,
        '--ca-bundle-configmap',
        'other-trust',
        '--dir',
        dir,
        '--metrics-address',
        '127.0.0.1:0',
      ],
      { env },
    );
    const denied = await sidecar.waitForLog('the denial', (l) =>
      String(l.msg).includes('the API server denied access to ConfigMap'),
    );
    expect(denied.msg).toContain(
      `give the pod's ServiceAccount a Role with resources: [configmaps], resourceNames: [other-trust], verbs: [get, watch] in namespace ${ns()}`,
    );
    await sidecar.waitForLog('the certificate', (l) => l.msg === 'files swapped');
    // Until a bundle is read, ca.crt is the source's.
    expect(await caFile(dir)).toBe(ca1.certPem);
    expect(sidecar.proc.exitCode).toBeNull();
    await sidecar.stop();
  });
});
