/**
 * What a CA rollover reads from the cluster: the Secrets an issuer signs for, the workloads of
 * their namespaces, and which CA signed a leaf. Reads only.
 */
import { X509Certificate } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import type { Config } from '../config/schema.ts';
import { recordFromSecret, type SecretRecord } from '../controller/record.ts';
import { decodeData } from '../controller/secret-body.ts';
import type { KubeClients } from '../kube/client.ts';
import { Annotation } from '../names.ts';
import { certificatesFromPem, toPem } from '../pki/index.ts';
import type { Workload } from './workloads.ts';

/** The first certificate of a PEM text, as PEM, or undefined. */
export function firstCertPem(text: string): string | undefined {
  try {
    const first = certificatesFromPem(text)[0];
    return first ? toPem('CERTIFICATE', first) : undefined;
  } catch {
    return undefined;
  }
}

/** Was the leaf (first certificate of tls.crt) signed by this CA certificate? */
export function signedBy(leafPem: string, caPem: string): boolean {
  try {
    const leaf = new X509Certificate(leafPem);
    const ca = new X509Certificate(caPem);
    return leaf.issuer === ca.subject && leaf.verify(ca.publicKey);
  } catch {
    return false;
  }
}

export interface IssuedSecrets {
  /** The managed Secrets the issuer signs for. */
  secrets: k8s.V1Secret[];
  /** Every managed Secret's record in the watched namespaces, keyed "namespace/name". */
  managed: Map<string, SecretRecord>;
}

/** The managed Secrets an issuer signs for (its name, or the default issuer), with their records. */
export async function issuedSecrets(
  clients: Pick<KubeClients, 'core'>,
  config: Pick<Config, 'namespaces' | 'defaults'>,
  issuer: string,
): Promise<IssuedSecrets> {
  const namespaces = config.namespaces;
  const lists =
    namespaces === 'all'
      ? [await clients.core.listSecretForAllNamespaces({})]
      : await Promise.all(namespaces.map((namespace) => clients.core.listNamespacedSecret({ namespace })));
  const managed = new Map<string, SecretRecord>();
  const secrets: k8s.V1Secret[] = [];
  for (const s of lists.flatMap((l) => l.items)) {
    const a = s.metadata?.annotations ?? {};
    if (a[Annotation.enabled] !== 'true') continue;
    const record = recordFromSecret(s);
    managed.set(`${record.namespace}/${record.name}`, record);
    if ((a[Annotation.issuer] ?? config.defaults.issuer) === issuer) secrets.push(s);
  }
  return { secrets, managed };
}

/** The Deployments, StatefulSets and DaemonSets of these namespaces. */
export async function listWorkloads(
  clients: Pick<KubeClients, 'apps'>,
  namespaces: Iterable<string>,
): Promise<Workload[]> {
  const out: Workload[] = [];
  for (const namespace of namespaces) {
    const [d, s, ds] = await Promise.all([
      clients.apps.listNamespacedDeployment({ namespace }),
      clients.apps.listNamespacedStatefulSet({ namespace }),
      clients.apps.listNamespacedDaemonSet({ namespace }),
    ]);
    for (const object of d.items) out.push({ kind: 'deployment', object });
    for (const object of s.items) out.push({ kind: 'statefulset', object });
    for (const object of ds.items) out.push({ kind: 'daemonset', object });
  }
  return out;
}

/** A Secret's data, each value decoded to text. */
export function decodedAll(data: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data ?? {})) out[k] = decodeData(v);
  return out;
}
