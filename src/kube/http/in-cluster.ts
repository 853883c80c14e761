import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EnvVar } from '../../names.ts';
import { TokenFileAuth } from './auth.ts';
import { type Endpoint, HttpTransport, type TransportOptions } from './transport.ts';

export const SERVICEACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface InClusterOptions extends TransportOptions {
  /** Default $KUBERNETES_SERVICE_HOST. */
  host?: string;
  /** Default $KUBERNETES_SERVICE_PORT. */
  port?: string;
  /** Default `token` in $CERT_ROTATOR_SERVICEACCOUNT_DIR or `/var/run/secrets/kubernetes.io/serviceaccount`. */
  tokenFile?: string;
  /** Default `ca.crt` in the same directory. */
  caFile?: string;
  /** Re-read the token file at most this long after the last read (and at once after a 401). */
  tokenRefreshMs?: number;
}

/** True when the process looks like it runs in a pod (client-go's rest.InClusterConfig test). */
export function inClusterAvailable(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT);
}

export function inClusterEndpoint(options: InClusterOptions = {}): Endpoint {
  const host = options.host ?? process.env.KUBERNETES_SERVICE_HOST;
  const port = options.port ?? process.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new Error(
      'not running in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (pass --kubeconfig or set KUBECONFIG)',
    );
  }
  const dir = process.env[EnvVar.serviceAccountDir] || SERVICEACCOUNT_DIR;
  const caFile = options.caFile ?? join(dir, 'ca.crt');
  const tokenFile = options.tokenFile ?? join(dir, 'token');
  let ca: Buffer;
  try {
    ca = readFileSync(caFile);
  } catch (err) {
    throw new Error(
      `cannot read the cluster CA file ${caFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return {
    server: `https://${hostPart}:${port}`,
    ca,
    auth: new TokenFileAuth(tokenFile, options.tokenRefreshMs),
    source: 'in-cluster service account',
  };
}

/** The pod's ServiceAccount: service host/port from the environment, CA and token from files. */
export function inClusterTransport(options: InClusterOptions = {}): HttpTransport {
  return new HttpTransport(inClusterEndpoint(options), options);
}
