/**
 * The sidecar's Kubernetes sources, wired to the light REST transport (src/kube/http): in a pod
 * the ServiceAccount token (re-read as the kubelet rotates it), CA file and service host env;
 * with --kubeconfig a kubeconfig. Never @kubernetes/client-node on the in-cluster path.
 */
import type { HttpTransport } from '../kube/http/transport.ts';
import type { SidecarLogger } from '../sidecar/log.ts';
import type { SidecarOptions } from '../sidecar/options.ts';
import type { Source } from '../sidecar/source.ts';
import type { PodIdentity } from './sidecar.ts';
import { StartupError } from './startup-error.ts';

async function transportFor(o: SidecarOptions): Promise<{ transport: HttpTransport; namespace?: string }> {
  const userAgent = 'cert-rotator-sidecar';
  try {
    if (o.kubeconfig !== undefined) {
      const { transportFromKubeconfig } = await import('../kube/http/kubeconfig.ts');
      const transport = transportFromKubeconfig(o.kubeconfig, { userAgent, qps: 5, burst: 10 });
      return {
        transport,
        ...(transport.endpoint.namespace ? { namespace: transport.endpoint.namespace } : {}),
      };
    }
    const { inClusterTransport } = await import('../kube/http/in-cluster.ts');
    return { transport: inClusterTransport({ userAgent, qps: 5, burst: 10 }) };
  } catch (err) {
    throw new StartupError(`cannot set up the Kubernetes connection: ${(err as Error).message}`);
  }
}

export async function secretSource(
  o: SidecarOptions,
  pod: PodIdentity,
  name: string,
  _log: SidecarLogger,
): Promise<Source> {
  const { transport, namespace: fromKubeconfig } = await transportFor(o);
  const namespace = pod.namespace ?? fromKubeconfig;
  if (!namespace) {
    throw new StartupError(
      "--secret needs the pod's namespace: set $POD_NAMESPACE (downward API fieldRef metadata.namespace) or --namespace",
    );
  }
  const { SecretSource } = await import('../sidecar/secret-source.ts');
  return new SecretSource(transport, namespace, name);
}

export async function csrSource(
  o: SidecarOptions,
  pod: PodIdentity,
  signerName: string,
  _log: SidecarLogger,
): Promise<Source> {
  const { transport } = await transportFor(o);
  const { CsrSource } = await import('../sidecar/csr-source.ts');
  return new CsrSource(transport, {
    signerName,
    durationMs: o.durationMs,
    keyAlgorithm: o.keyAlgorithm,
    requester: pod.podName ?? pod.serviceAccount ?? 'cert-rotator-sidecar',
  });
}

/** `--ca-bundle-configmap`: the watch of the trust bundle ConfigMap, on the same connection settings. */
export async function trustBundleWatch(
  o: SidecarOptions,
  pod: PodIdentity,
  ref: { name: string; key: string },
): Promise<import('../sidecar/trust-bundle.ts').TrustBundleWatch> {
  const { transport, namespace: fromKubeconfig } = await transportFor(o);
  const namespace = pod.namespace ?? fromKubeconfig;
  if (!namespace) {
    throw new StartupError(
      "--ca-bundle-configmap needs the pod's namespace: set $POD_NAMESPACE (downward API fieldRef metadata.namespace) or --namespace",
    );
  }
  const { TrustBundleWatch } = await import('../sidecar/trust-bundle.ts');
  return new TrustBundleWatch(transport, namespace, ref);
}
