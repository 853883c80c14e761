/**
 * End to end: `cert-rotator sidecar --csr-signer` gets its SPIFFE certificate from
 * cert-rotator's OWN signer and approver (a `ca` issuer with `signer:` and `approve:`, run as
 * the controller), with nothing but its ServiceAccount token; it is issued, renewed (the
 * signer's maxDuration is 1m), and the key is in no Secret.
 *
 * The signer lives in src/signer/ (branch csr). Where this checkout has none, the file is
 * skipped; CERT_ROTATOR_TEST_SIGNER_CLI=/path/to/src/cli.ts runs the controller from another
 * checkout that has it (how it was run before the branches were merged).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCertificateSummary } from '../../src/pki/der.ts';
import { keyMatchesCertificate } from '../../src/pki/keys.ts';
import { certificatesFromPem, splitPem } from '../../src/pki/pem.ts';
import { writeConfig } from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { makeTestCA, tlsSecret } from '../testenv/tls-fixtures.ts';
import {
  type Child,
  readDir,
  startCli,
  startReader,
  startSidecar,
  stopAllChildren,
} from './fixtures/sidecar-process.ts';

const SIGNER_CLI =
  process.env.CERT_ROTATOR_TEST_SIGNER_CLI ?? new URL('../../src/cli.ts', import.meta.url).pathname;
const HAS_SIGNER = existsSync(join(dirname(SIGNER_CLI), 'signer', 'signer.ts'));

const ns = useNamespace(import.meta.url);
let core: k8s.CoreV1Api;
let rbac: k8s.RbacAuthorizationV1Api;
let work: string;
let signerName: string;
let clusterRole: string;
let controller: Child;

beforeAll(async () => {
  if (!HAS_SIGNER) return;
  const env = testEnv();
  const admin = adminKubeConfig();
  core = admin.makeApiClient(k8s.CoreV1Api);
  rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
  work = await mkdtemp(join(tmpdir(), 'cert-rotator-sidecar-csr-signer-'));
  signerName = `cert-rotator.io/${ns()}`;
  const ca = await makeTestCA('workload CA');
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('workload-ca', ca) });
  const config = await writeConfig(work, {
    namespaces: [ns()],
    issuers: [
      {
        name: 'workload-ca',
        ca: { secret: { namespace: ns(), name: 'workload-ca' } },
        signer: { signerName, maxDuration: '1m' },
        allowedURIs: ['spiffe://cluster.local/ns/*/sa/*'],
        approve: {
          serviceAccounts: {
            namespaces: [ns()],
            uris: ['spiffe://cluster.local/ns/{namespace}/sa/{serviceaccount}'],
          },
        },
      },
    ],
  });
  controller = startCli(
    SIGNER_CLI,
    [
      'controller',
      '--config',
      config,
      '--kubeconfig',
      env.kubeconfigPath,
      '--metrics-address',
      '127.0.0.1:0',
    ],
    'controller',
  );
  await controller.waitForLog('the signer', (l) => l.msg === 'CSR signer started', 60_000);
  clusterRole = `${ns()}-csr-requester`;
  await rbac.createClusterRole({
    body: {
      metadata: { name: clusterRole },
      rules: [
        {
          apiGroups: ['certificates.k8s.io'],
          resources: ['certificatesigningrequests'],
          verbs: ['create', 'get', 'list', 'watch'],
        },
      ],
    },
  });
});

afterAll(async () => {
  await stopAllChildren();
  if (!HAS_SIGNER) return;
  await rbac.deleteClusterRoleBinding({ name: clusterRole }).catch(() => undefined);
  await rbac.deleteClusterRole({ name: clusterRole }).catch(() => undefined);
});

describe.skipIf(!HAS_SIGNER)("sidecar --csr-signer with cert-rotator's own signer and approver", () => {
  it('issued and renewed with the pod token only; files consistent; the key in no Secret', async () => {
    const env = testEnv();
    await core.createNamespacedServiceAccount({ namespace: ns(), body: { metadata: { name: 'api' } } });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: clusterRole },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole },
        subjects: [{ kind: 'ServiceAccount', name: 'api', namespace: ns() }],
      },
    });
    const tr = await core.createNamespacedServiceAccountToken({
      namespace: ns(),
      name: 'api',
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    const saDir = join(work, 'sa');
    await mkdir(saDir);
    await writeFile(join(saDir, 'token'), tr.status?.token ?? '');
    await writeFile(join(saDir, 'ca.crt'), env.clusterCaPem);
    const api = new URL(env.apiServerUrl);
    const dir = join(work, 'certs');
    const sidecar = startSidecar(['--csr-signer', signerName, '--dir', dir, '--metrics-address', 'off'], {
      env: {
        CERT_ROTATOR_SERVICEACCOUNT_DIR: saDir,
        KUBERNETES_SERVICE_HOST: api.hostname,
        KUBERNETES_SERVICE_PORT: api.port,
        POD_NAMESPACE: ns(),
        POD_NAME: 'api-0',
        POD_SERVICE_ACCOUNT: 'api',
      },
    });
    const first = await sidecar.waitForLog('the first certificate', (l) => l.msg === 'files swapped', 60_000);
    const reader = startReader(dir);
    const renewed = await sidecar.waitForLog(
      'the renewal',
      (l) => l.msg === 'files swapped' && l.serial !== first.serial,
      90_000,
    );
    const seen = await reader.stop();
    expect(seen.mismatched).toBe(0);
    expect(renewed.previousSerial).toBe(first.serial);

    const crt = await readFile(join(dir, 'tls.crt'), 'utf8');
    const key = await readFile(join(dir, 'tls.key'), 'utf8');
    const chain = certificatesFromPem(crt);
    const leaf = readCertificateSummary(chain[0]!);
    expect(leaf.uris).toEqual([`spiffe://cluster.local/ns/${ns()}/sa/api`]);
    expect(leaf.issuerCommonName).toBe('workload CA');
    expect(leaf.notAfter - leaf.notBefore).toBeLessThanOrEqual(2 * 60_000); // maxDuration 1m (+ backdate)
    expect(keyMatchesCertificate(key, chain[0]!)).toBe(true);
    // cert-rotator's signer returns leaf + CA: the sidecar writes ca.crt from it.
    expect(
      readCertificateSummary(certificatesFromPem(await readFile(join(dir, 'ca.crt'), 'utf8'))[0]!)
        .subjectCommonName,
    ).toBe('workload CA');
    expect((await readDir(dir))?.matched).toBe(true);

    // The key is in no Secret of any namespace (control: a planted key is found the same way).
    const planted = 'cGxhbnRlZC1rZXktbWF0ZXJpYWwtZm9yLXRoZS1jb250cm9s';
    await core.createNamespacedSecret({
      namespace: ns(),
      body: { metadata: { name: 'planted' }, type: 'Opaque', data: { k: planted } },
    });
    const hay = JSON.stringify((await core.listSecretForAllNamespaces()).items);
    expect(hay.includes(planted)).toBe(true);
    const der = Buffer.from(splitPem(key)[0]!.der).toString('base64');
    expect(hay.includes(der.slice(48, 88))).toBe(false);
    expect(hay.includes(Buffer.from(key).toString('base64').slice(64, 104))).toBe(false);
    await sidecar.stop();
  }, 180_000);
});
