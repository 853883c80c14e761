import { readFileSync } from 'node:fs';
import type * as k8s from '@kubernetes/client-node';
import type { AppliedAuth, Auth } from './auth.ts';
import type { Endpoint } from './transport.ts';

/** Duck test for a client-node KubeConfig (tests build those; the product never needs to). */
export function isClientNodeConfig(x: unknown): x is k8s.KubeConfig {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as { getCurrentCluster?: unknown }).getCurrentCluster === 'function' &&
    typeof (x as { applyToHTTPSOptions?: unknown }).applyToHTTPSOptions === 'function'
  );
}

/**
 * The endpoint of a client-node KubeConfig's current context. Authentication goes through the
 * KubeConfig itself (token, exec, auth-provider, basic), TLS material from its cluster and user.
 */
export function endpointFromClientNode(kc: k8s.KubeConfig): Endpoint {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the KubeConfig has no current cluster');
  const user = kc.getCurrentUser();
  const bytes = (data: string | undefined, file: string | undefined) =>
    data ? Buffer.from(data, 'base64') : file ? readFileSync(file) : undefined;
  const ca = bytes(cluster.caData, cluster.caFile);
  const cert = bytes(user?.certData, user?.certFile);
  const key = bytes(user?.keyData, user?.keyFile);
  const auth: Auth = {
    kind: 'client-node',
    async apply(): Promise<AppliedAuth> {
      const opts: { headers?: Record<string, string>; cert?: string | Buffer; key?: string | Buffer } = {};
      await kc.applyToHTTPSOptions(opts);
      const authorization = opts.headers?.Authorization ?? opts.headers?.authorization;
      const out: AppliedAuth = authorization ? { authorization } : {};
      if (opts.cert && !cert) {
        out.cert = opts.cert;
        if (opts.key) out.key = opts.key;
      }
      return out;
    },
  };
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(cluster.skipTLSVerify ? { insecureSkipTLSVerify: true } : {}),
    ...(cluster.tlsServerName ? { tlsServerName: cluster.tlsServerName } : {}),
    auth,
    source: `client-node KubeConfig (context ${kc.getCurrentContext()})`,
  };
}
