import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeApiError, httpStatus, loadKubeConfig } from '../../src/kube/client.ts';
import {
  HttpTransport,
  inClusterTransport,
  KubeApiError,
  type KubeTransport,
  transportFromKubeconfig,
} from '../../src/kube/http/index.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';

const ns = useNamespace(import.meta.url);

interface Review {
  status?: { userInfo?: { username?: string } };
}

/** Who the API server says the caller is (SelfSubjectReview: allowed for every authenticated user). */
async function whoAmI(t: KubeTransport): Promise<string> {
  const r = await t.request<Review>('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  return r.status?.userInfo?.username ?? '';
}

async function saToken(name: string): Promise<string> {
  const core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  await core
    .createNamespacedServiceAccount({ namespace: ns(), body: { metadata: { name } } })
    .catch((err) => {
      if (httpStatus(err) !== 409) throw err;
    });
  const tr = await core.createNamespacedServiceAccountToken({
    namespace: ns(),
    name,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const token = tr.status?.token;
  if (!token) throw new Error('TokenRequest returned no token');
  return token;
}

/** The kubelet's way of replacing a projected token: write aside, rename over. */
async function rotate(file: string, token: string): Promise<void> {
  await writeFile(`${file}.tmp`, token);
  await rename(`${file}.tmp`, file);
}

interface AdminKubeconfig {
  clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
  users: { user: { 'client-certificate-data': string; 'client-key-data': string } }[];
}

describe('light Kubernetes transport against the real API server', () => {
  let dir = '';
  let admin: AdminKubeconfig;
  let server = '';
  let caFile = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kube-transport-'));
    admin = JSON.parse(await readFile(testEnv().kubeconfigPath, 'utf8')) as AdminKubeconfig;
    server = admin.clusters[0]?.cluster.server ?? '';
    caFile = join(dir, 'ca.crt');
    await writeFile(caFile, testEnv().clusterCaPem);
  });

  it('in-cluster: service host/port, CA file and a token file that is read again after it rotates', async () => {
    const [tokenA, tokenB] = [await saToken('sa-a'), await saToken('sa-b')];
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, tokenA);
    const url = new URL(server);
    const t = inClusterTransport({
      host: url.hostname,
      port: url.port,
      tokenFile,
      caFile,
      tokenRefreshMs: 200,
    });
    try {
      expect(await whoAmI(t)).toBe(`system:serviceaccount:${ns()}:sa-a`);
      await rotate(tokenFile, tokenB);
      await waitFor('the rotated token to be used', async () =>
        (await whoAmI(t)) === `system:serviceaccount:${ns()}:sa-b` ? true : undefined,
      );
    } finally {
      t.close();
    }
  });

  it('in-cluster: a 401 makes it read the token file at once, before its refresh interval', async () => {
    const tokenFile = join(dir, 'token-401');
    await writeFile(tokenFile, 'not-a-valid-token');
    const url = new URL(server);
    // The default refresh interval (a minute) is far longer than this test.
    const t = inClusterTransport({ host: url.hostname, port: url.port, tokenFile, caFile });
    try {
      const refused = await whoAmI(t).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(KubeApiError);
      expect(httpStatus(refused)).toBe(401);
      await rotate(tokenFile, await saToken('sa-c'));
      expect(await whoAmI(t)).toBe(`system:serviceaccount:${ns()}:sa-c`);
    } finally {
      t.close();
    }
  });

  it('loadKubeConfig() with no kubeconfig anywhere takes the pod path: service env and CERT_ROTATOR_SERVICEACCOUNT_DIR', async () => {
    const saDir = join(dir, 'sa-dir');
    await mkdir(saDir, { recursive: true });
    await writeFile(join(saDir, 'token'), await saToken('sa-env'));
    await writeFile(join(saDir, 'ca.crt'), testEnv().clusterCaPem);
    const url = new URL(server);
    const keys = [
      'KUBERNETES_SERVICE_HOST',
      'KUBERNETES_SERVICE_PORT',
      'CERT_ROTATOR_SERVICEACCOUNT_DIR',
      'KUBECONFIG',
      'HOME',
    ];
    const saved = Object.fromEntries(keys.map((k) => [k, process.env[k]]));
    Object.assign(process.env, {
      KUBERNETES_SERVICE_HOST: url.hostname,
      KUBERNETES_SERVICE_PORT: url.port,
      CERT_ROTATOR_SERVICEACCOUNT_DIR: saDir,
      HOME: join(dir, 'no-home'),
    });
    delete process.env.KUBECONFIG;
    try {
      const t = loadKubeConfig();
      expect(t.endpoint.source).toBe('in-cluster service account');
      expect(await whoAmI(t)).toBe(`system:serviceaccount:${ns()}:sa-env`);
      t.close();
      delete process.env.KUBERNETES_SERVICE_HOST;
      expect(() => loadKubeConfig()).toThrow(/no Kubernetes cluster configured/);
    } finally {
      for (const k of keys) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });

  it('in-cluster: a missing CA or token file is a clear error', async () => {
    const url = new URL(server);
    expect(() =>
      inClusterTransport({ host: url.hostname, port: url.port, caFile: join(dir, 'nope.crt') }),
    ).toThrow(/cannot read the cluster CA file .*nope\.crt: ENOENT/);
    const t = inClusterTransport({
      host: url.hostname,
      port: url.port,
      caFile,
      tokenFile: join(dir, 'none'),
    });
    await expect(whoAmI(t)).rejects.toThrow(/cannot read the API token file .*none: ENOENT/);
    expect(() => inClusterTransport({ host: '', port: '' })).toThrow(/KUBERNETES_SERVICE_HOST/);
  });

  it('kubeconfig with client certificate data, and with certificate files relative to the kubeconfig', async () => {
    const t1 = transportFromKubeconfig(testEnv().kubeconfigPath);
    expect(await whoAmI(t1)).toBe('admin');
    t1.close();
    const user = admin.users[0]?.user;
    if (!user) throw new Error('admin kubeconfig has no user');
    await writeFile(join(dir, 'admin.crt'), Buffer.from(user['client-certificate-data'], 'base64'));
    await writeFile(join(dir, 'admin.key'), Buffer.from(user['client-key-data'], 'base64'));
    const yaml = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: c\n  cluster:\n    server: ${server}\n    certificate-authority: ca.crt`,
      'users:',
      '- name: u\n  user:\n    client-certificate: admin.crt\n    client-key: admin.key',
      'contexts:',
      '- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: team-a',
      'current-context: x',
      '',
    ].join('\n');
    await writeFile(join(dir, 'files.kubeconfig'), yaml);
    const t2 = transportFromKubeconfig(join(dir, 'files.kubeconfig'));
    expect(t2.endpoint.namespace).toBe('team-a');
    expect(await whoAmI(t2)).toBe('admin');
    t2.close();
  });

  it('kubeconfig with a bearer token, and with a tokenFile', async () => {
    const token = await saToken('sa-token');
    const caData = admin.clusters[0]?.cluster['certificate-authority-data'];
    const kubeconfig = (user: Record<string, string>) =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': caData } }],
        users: [{ name: 'u', user }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      });
    await writeFile(join(dir, 'token.kubeconfig'), kubeconfig({ token }));
    const t1 = transportFromKubeconfig(join(dir, 'token.kubeconfig'));
    expect(await whoAmI(t1)).toBe(`system:serviceaccount:${ns()}:sa-token`);
    t1.close();
    await writeFile(join(dir, 'sa.token'), token);
    await writeFile(join(dir, 'tokenfile.kubeconfig'), kubeconfig({ tokenFile: 'sa.token' }));
    const t2 = transportFromKubeconfig(join(dir, 'tokenfile.kubeconfig'));
    expect(await whoAmI(t2)).toBe(`system:serviceaccount:${ns()}:sa-token`);
    t2.close();
  });

  it('kubeconfig with an exec credential plugin (token, and client certificate from the plugin)', async () => {
    const token = await saToken('sa-exec');
    const user = admin.users[0]?.user;
    if (!user) throw new Error('admin kubeconfig has no user');
    const plugin = join(dir, 'plugin.mjs');
    await writeFile(
      plugin,
      `const mode = process.argv[2];
const status = mode === 'cert'
  ? { clientCertificateData: ${JSON.stringify(Buffer.from(user['client-certificate-data'], 'base64').toString())},
      clientKeyData: ${JSON.stringify(Buffer.from(user['client-key-data'], 'base64').toString())} }
  : { token: ${JSON.stringify(token)} };
process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status }));
`,
    );
    const caData = admin.clusters[0]?.cluster['certificate-authority-data'];
    for (const [mode, expected] of [
      ['token', `system:serviceaccount:${ns()}:sa-exec`],
      ['cert', 'admin'],
    ] as const) {
      const path = join(dir, `exec-${mode}.kubeconfig`);
      await writeFile(
        path,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'c', cluster: { server, 'certificate-authority-data': caData } }],
          users: [
            {
              name: 'u',
              user: {
                exec: {
                  apiVersion: 'client.authentication.k8s.io/v1',
                  command: process.execPath,
                  args: [plugin, mode],
                  interactiveMode: 'Never',
                },
              },
            },
          ],
          contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
          'current-context': 'x',
        }),
      );
      const t = transportFromKubeconfig(path);
      expect(await whoAmI(t)).toBe(expected);
      t.close();
    }
  });

  it('errors carry code and body like client-node; watches stream events until aborted', async () => {
    const t = transportFromKubeconfig(testEnv().kubeconfigPath);
    try {
      const missing = await t
        .request('GET', `/api/v1/namespaces/${ns()}/secrets/absent`)
        .catch((err: unknown) => err);
      expect(httpStatus(missing)).toBe(404);
      expect(describeApiError(missing)).toBe('HTTP 404: secrets "absent" not found');

      const events: string[] = [];
      const abort = new AbortController();
      const watching = t.watch(
        `/api/v1/namespaces/${ns()}/secrets`,
        { fieldSelector: 'type=kubernetes.io/tls' },
        (type, obj) => events.push(`${type} ${(obj as k8s.V1Secret).metadata?.name}`),
        abort.signal,
      );
      const body = {
        metadata: { name: 'w' },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': '', 'tls.key': '' },
      };
      const created = await t.request<k8s.V1Secret>('POST', `/api/v1/namespaces/${ns()}/secrets`, { body });
      await t.request('POST', `/api/v1/namespaces/${ns()}/secrets`, {
        body: { metadata: { name: 'opaque' }, type: 'Opaque' },
      });
      await waitFor('the watch to deliver ADDED w', () => (events.includes('ADDED w') ? true : undefined));
      const conflict = await t
        .request('PUT', `/api/v1/namespaces/${ns()}/secrets/w`, {
          body: { ...created, metadata: { ...created.metadata, resourceVersion: '1' } },
        })
        .catch((err: unknown) => err);
      expect(httpStatus(conflict)).toBe(409);
      abort.abort();
      await watching; // resolves, does not reject, on abort
      expect(events).not.toContain('ADDED opaque');
    } finally {
      t.close();
    }
  });

  it('the in-cluster path loads no module of @kubernetes/client-node', async () => {
    const tokenFile = join(dir, 'token-modules');
    await writeFile(tokenFile, await saToken('sa-modules'));
    const url = new URL(server);
    const script = `
import { registerHooks } from 'node:module';
const loaded = [];
registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); loaded.push(r.url); return r; } });
const { inClusterTransport } = await import(${JSON.stringify(new URL('../../src/kube/http/index.ts', import.meta.url).href)});
const t = inClusterTransport({ host: ${JSON.stringify(url.hostname)}, port: ${JSON.stringify(url.port)},
  tokenFile: ${JSON.stringify(tokenFile)}, caFile: ${JSON.stringify(caFile)} });
const ns = await t.request('GET', '/api/v1/namespaces/default');
t.close();
console.log(JSON.stringify({ name: ns.metadata.name, client: loaded.filter((u) => u.includes('@kubernetes/client-node')).length,
  yaml: loaded.filter((u) => u.includes('/node_modules/yaml/')).length }));
`;
    // `default` is readable by nobody but admins: give this account a namespaced read of its own namespace object instead.
    const rbac = adminKubeConfig().makeApiClient(k8s.RbacAuthorizationV1Api);
    await rbac.createClusterRole({
      body: {
        metadata: { name: `${ns()}-read-default` },
        rules: [{ apiGroups: [''], resources: ['namespaces'], resourceNames: ['default'], verbs: ['get'] }],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: `${ns()}-read-default` },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${ns()}-read-default` },
        subjects: [{ kind: 'ServiceAccount', name: 'sa-modules', namespace: ns() }],
      },
    });
    try {
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      expect(JSON.parse(out.trim())).toEqual({ name: 'default', client: 0, yaml: 0 });
    } finally {
      await rbac.deleteClusterRoleBinding({ name: `${ns()}-read-default` }).catch(() => undefined);
      await rbac.deleteClusterRole({ name: `${ns()}-read-default` }).catch(() => undefined);
    }
  });

  it('refuses a server URL that is not http(s)', () => {
    expect(
      () =>
        new HttpTransport({
          server: 'ftp://x',
          auth: { kind: 'none', apply: async () => ({}) },
          source: 'test',
        }),
    ).toThrow(/neither https nor http/);
  });
});
