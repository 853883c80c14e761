export { type AppliedAuth, type Auth, TokenFileAuth } from './auth.ts';
export { KubeApiError } from './errors.ts';
export {
  type InClusterOptions,
  inClusterAvailable,
  inClusterEndpoint,
  inClusterTransport,
} from './in-cluster.ts';
export {
  defaultTransport,
  type KubeconfigOptions,
  kubeconfigEndpoint,
  kubeconfigPaths,
  transportFromKubeconfig,
} from './kubeconfig.ts';
export { TokenBucket } from './rate-limit.ts';
export {
  DEFAULT_BURST,
  DEFAULT_QPS,
  type Endpoint,
  HttpTransport,
  type KubeTransport,
  kubeVerb,
  type RequestObserver,
  type RequestOptions,
  type TransportOptions,
  type TransportStats,
} from './transport.ts';
