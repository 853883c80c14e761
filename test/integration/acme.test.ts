import { X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ControllerProcess,
  killAllControllers,
  metricValue,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import {
  decoded,
  eventsFor,
  makeLeaf,
  tlsSecret,
  waitForRevision as waitForSecretRevision,
} from '../testenv/tls-fixtures.ts';

const ns = useNamespace(import.meta.url);
const A = 'cert-rotator.io/';
const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const POD_IP = '10.9.8.7';

let core: k8s.CoreV1Api;
let configPath: string;
let controller: ControllerProcess;

function config() {
  const env = testEnv();
  return {
    namespaces: [ns()],
    defaults: { issuer: 'pebble' },
    issuers: [
      {
        name: 'pebble',
        acme: {
          server: env.acme.directoryUrl,
          email: 'ops@example.test',
          caBundle: env.acme.tlsCaPem,
          accountKeySecret: { namespace: ns(), name: 'pebble-account' },
          solvers: [
            {
              http01: { address: `127.0.0.1:${env.acme.httpPort}`, podIP: POD_IP, ingressClassName: 'nginx' },
            },
          ],
        },
      },
    ],
  };
}

async function read(name: string): Promise<k8s.V1Secret> {
  return await core.readNamespacedSecret({ namespace: ns(), name });
}

const waitForRevision = (name: string, revision = '1', timeoutMs = 30_000) =>
  waitForSecretRevision(core, ns(), name, revision, timeoutMs);

function leaf(secret: k8s.V1Secret): X509Certificate {
  return new X509Certificate(decoded(secret, 'tls.crt'));
}

/** Records every object of a kind created in the namespace while it runs. */
function recordCreated<T>(path: string): { added: T[]; deleted: T[]; stop(): void } {
  const added: T[] = [];
  const deleted: T[] = [];
  let abort: AbortController | undefined;
  void new k8s.Watch(adminKubeConfig())
    .watch(
      path,
      {},
      (type, obj: T) => {
        if (type === 'ADDED') added.push(obj);
        if (type === 'DELETED') deleted.push(obj);
      },
      () => undefined,
    )
    .then((a) => {
      abort = a;
    });
  return { added, deleted, stop: () => abort?.abort() };
}

beforeAll(async () => {
  core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-acme-'));
  configPath = await writeConfig(dir, config());
  controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed');
});

afterAll(async () => {
  if (process.env.ACME_TEST_DEBUG) process.stderr.write(controller.output().slice(-6000));
  await killAllControllers();
});

describe('ACME issuer against Pebble (real) with HTTP-01 answered by the controller', () => {
  it('issues for two names end to end: Pebble-signed chain, key matches, routing objects created and removed', async () => {
    const ingresses = recordCreated<k8s.V1Ingress>(`/apis/networking.k8s.io/v1/namespaces/${ns()}/ingresses`);
    const services = recordCreated<k8s.V1Service>(`/api/v1/namespaces/${ns()}/services`);
    const slices = recordCreated<k8s.V1EndpointSlice>(
      `/apis/discovery.k8s.io/v1/namespaces/${ns()}/endpointslices`,
    );
    try {
      const old = await makeLeaf({
        dnsNames: ['web-a.example.test', 'web-b.example.test'],
        fromMs: -DAY,
        toMs: 2 * MIN,
      });
      const created = await core.createNamespacedSecret({
        namespace: ns(),
        body: tlsSecret('web', old, { [`${A}enabled`]: 'true' }),
      });
      const renewed = await waitForRevision('web');
      const x = leaf(renewed);
      expect(x.subjectAltName).toBe('DNS:web-a.example.test, DNS:web-b.example.test');
      expect(x.issuer).toMatch(/Pebble Intermediate/);
      expect(
        x.checkPrivateKey(
          await import('node:crypto').then((c) => c.createPrivateKey(decoded(renewed, 'tls.key'))),
        ),
      ).toBe(true);
      // The chain carries the intermediate that signed the leaf; ca.crt is that intermediate.
      const pems =
        decoded(renewed, 'tls.crt').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ??
        [];
      expect(pems.length).toBeGreaterThanOrEqual(2);
      expect(x.verify(new X509Certificate(pems[1] ?? '').publicKey)).toBe(true);
      expect(decoded(renewed, 'ca.crt')).toContain('BEGIN CERTIFICATE');
      const event = await waitFor('Renewed', async () =>
        (await eventsFor(core, ns(), 'web')).find((e) => e.reason === 'Renewed'),
      );
      expect(event.message).toContain('pebble');

      // Routing objects: one Service, EndpointSlice and Ingress, owned by the Secret, then removed.
      await waitFor('the routing objects to be deleted', () =>
        ingresses.deleted.length >= 1 && services.deleted.length >= 1 && slices.deleted.length >= 1
          ? true
          : undefined,
      );
      expect(ingresses.added).toHaveLength(1);
      const ing = ingresses.added[0] as k8s.V1Ingress;
      const svcName = ing.metadata?.name ?? '';
      expect(svcName).toMatch(/^cert-rotator-acme-web-[0-9a-f]{10}$/);
      expect(ing.metadata?.ownerReferences?.[0]).toMatchObject({
        kind: 'Secret',
        name: 'web',
        uid: created.metadata?.uid,
      });
      expect(ing.spec?.ingressClassName).toBe('nginx');
      const rules = (ing.spec?.rules ?? []).map((r) => ({
        host: r.host,
        paths: (r.http?.paths ?? []).map((p) => ({
          path: p.path,
          type: p.pathType,
          svc: p.backend.service?.name,
        })),
      }));
      expect(rules.map((r) => r.host).sort()).toEqual(['web-a.example.test', 'web-b.example.test']);
      for (const r of rules) {
        expect(r.paths).toHaveLength(1);
        expect(r.paths[0]?.path).toMatch(/^\/\.well-known\/acme-challenge\/[A-Za-z0-9_-]{20,}$/);
        expect(r.paths[0]?.type).toBe('Exact');
        expect(r.paths[0]?.svc).toBe(svcName);
      }
      const svc = services.added.find((s) => s.metadata?.name === svcName);
      expect(svc?.spec?.selector).toBeUndefined();
      expect(svc?.spec?.ports?.[0]).toMatchObject({
        name: 'http',
        port: 80,
        targetPort: testEnv().acme.httpPort,
      });
      const slice = slices.added.find((s) => s.metadata?.labels?.['kubernetes.io/service-name'] === svcName);
      expect(slice?.endpoints?.[0]?.addresses).toEqual([POD_IP]);
      expect(slice?.ports?.[0]?.port).toBe(testEnv().acme.httpPort);
      // Nothing is left behind.
      const left = await adminKubeConfig()
        .makeApiClient(k8s.NetworkingV1Api)
        .listNamespacedIngress({ namespace: ns() });
      expect(left.items).toHaveLength(0);

      // The account key Secret was created, and ACME requests are counted.
      const account = await read('pebble-account');
      expect(account.type).toBe('Opaque');
      expect(decoded(account, 'tls.key')).toContain('PRIVATE KEY');
      const url = await controller.metricsUrl();
      expect(
        await metricValue(url, 'cert_rotator_acme_requests_total', {
          issuer: 'pebble',
          action: 'newOrder',
          status: '201',
        }),
      ).toBe(1);
      expect(
        await metricValue(url, 'cert_rotator_acme_requests_total', {
          issuer: 'pebble',
          action: 'finalize',
          status: '200',
        }),
      ).toBe(1);
    } finally {
      ingresses.stop();
      services.stop();
      slices.stop();
    }
  });

  it('reuses the account Secret across restarts: same key, same account URL', async () => {
    const before = await read('pebble-account');
    const first = controller.logs.find((l) => l.msg === 'ACME account ready');
    expect(first?.accountKeyCreated).toBe(true);
    expect(await controller.stop()).toBe(0);

    controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
    const old = await makeLeaf({ dnsNames: ['restart.example.test'], fromMs: -DAY, toMs: 2 * MIN });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('after-restart', old, { [`${A}enabled`]: 'true' }),
    });
    await waitForRevision('after-restart');
    const second = await controller.waitForLog('the account', (l) => l.msg === 'ACME account ready');
    expect(second.accountKeyCreated).toBe(false);
    expect(second.account).toBe(first?.account);
    const after = await read('pebble-account');
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    expect(decoded(after, 'tls.key')).toBe(decoded(before, 'tls.key'));
  });
});
