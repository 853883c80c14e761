import { basename } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, inject } from 'vitest';
import type { TestEnvInfo } from './env.ts';

export function testEnv(): TestEnvInfo {
  return inject('testEnv');
}

export function adminKubeConfig(env: TestEnvInfo = testEnv()): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(env.kubeconfigPath);
  return kc;
}

/** A KubeConfig that authenticates as a ServiceAccount with a token from the TokenRequest API. */
export async function serviceAccountKubeConfig(
  admin: k8s.KubeConfig,
  namespace: string,
  name: string,
  expirationSeconds = 3600,
): Promise<k8s.KubeConfig> {
  const core = admin.makeApiClient(k8s.CoreV1Api);
  const tr = await core.createNamespacedServiceAccountToken({
    namespace,
    name,
    body: { spec: { audiences: [], expirationSeconds } },
  });
  const token = tr.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('admin kubeconfig has no current cluster');
  const kc = new k8s.KubeConfig();
  kc.loadFromClusterAndUser(
    { name: cluster.name, server: cluster.server, caData: cluster.caData, skipTLSVerify: false },
    { name: `system:serviceaccount:${namespace}:${name}`, token },
  );
  return kc;
}

/** HTTP status of a failed client-node call (ApiException.code), or undefined. */
export function statusOf(err: unknown): number | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'number') return err.code;
  return undefined;
}

/**
 * Registers beforeAll/afterAll hooks that create a namespace unique to the calling test file and
 * delete it afterwards. Returns a getter (the name is known only once beforeAll ran).
 */
export function useNamespace(fileUrl: string): () => string {
  let ns = '';
  const stem = basename(new URL(fileUrl).pathname)
    .replace(/\.test\.ts$/, '')
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 40);
  beforeAll(async () => {
    ns = `t-${stem}-${Math.random().toString(36).slice(2, 8)}`;
    await adminKubeConfig()
      .makeApiClient(k8s.CoreV1Api)
      .createNamespace({ body: { metadata: { name: ns } } });
  });
  afterAll(async () => {
    if (!ns) return;
    await adminKubeConfig()
      .makeApiClient(k8s.CoreV1Api)
      .deleteNamespace({ name: ns })
      .catch(() => undefined);
  });
  return () => ns;
}
