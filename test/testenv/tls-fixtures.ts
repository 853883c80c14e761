import type * as k8s from '@kubernetes/client-node';
import { generateKey, issueCertificate, type KeyAlgorithm } from '../../src/pki/index.ts';
import { waitFor } from './net.ts';

export interface Pair {
  certPem: string;
  keyPem: string;
}

const MIN = 60_000;

/**
 * A CA for the `ca` issuer's Secret: self-signed, or an intermediate signed by `parent` (whose
 * `certPem` may carry its own chain). `chainPem` is the CA followed by its parent's chain.
 */
export async function makeTestCA(
  commonName = 'cert-rotator test CA',
  lifetimeMs = 365 * 86_400_000,
  parent?: Pair,
): Promise<Pair & { chainPem: string }> {
  const key = await generateKey('ecdsa-p256');
  const now = Date.now();
  const ca = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { commonName, dnsNames: [], ipAddresses: [], uris: [] },
    notBefore: now - MIN,
    notAfter: now + lifetimeMs,
    issuer: parent ?? 'self',
    isCA: true,
  });
  return { certPem: ca.certPem, keyPem: key.privateKeyPem, chainPem: ca.chainPem };
}

export async function makeLeaf(opts: {
  dnsNames: string[];
  fromMs: number;
  toMs: number;
  ca?: Pair;
  algorithm?: KeyAlgorithm;
}): Promise<Pair> {
  const key = await generateKey(opts.algorithm ?? 'ecdsa-p256');
  const now = Date.now();
  const issued = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { dnsNames: opts.dnsNames, ipAddresses: [], uris: [] },
    notBefore: now + opts.fromMs,
    notAfter: now + opts.toMs,
    issuer: opts.ca ? { certPem: opts.ca.certPem, keyPem: opts.ca.keyPem } : 'self',
  });
  return { certPem: issued.certPem, keyPem: key.privateKeyPem };
}

export function tlsSecret(
  name: string,
  pair: { certPem: string; keyPem: string },
  annotations: Record<string, string> = {},
  type = 'kubernetes.io/tls',
): k8s.V1Secret {
  return {
    metadata: { name, annotations },
    type,
    data: {
      'tls.crt': Buffer.from(pair.certPem).toString('base64'),
      'tls.key': Buffer.from(pair.keyPem).toString('base64'),
    },
  };
}

export function decoded(secret: k8s.V1Secret, key: string): string {
  return Buffer.from(secret.data?.[key] ?? '', 'base64').toString('utf8');
}

/** Events in `namespace` about the object `name`, newest last. */
export async function eventsFor(
  core: k8s.CoreV1Api,
  namespace: string,
  name: string,
): Promise<k8s.CoreV1Event[]> {
  const list = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
  return list.items;
}

/** Waits until the Secret's `cert-rotator.io/revision` annotation reads `revision`; returns the Secret. */
export async function waitForRevision(
  core: k8s.CoreV1Api,
  namespace: string,
  name: string,
  revision = '1',
  timeoutMs = 30_000,
): Promise<k8s.V1Secret> {
  return await waitFor(
    `${namespace}/${name} to reach revision ${revision}`,
    async () => {
      const s = await core.readNamespacedSecret({ namespace, name });
      return s.metadata?.annotations?.['cert-rotator.io/revision'] === revision ? s : undefined;
    },
    { timeoutMs },
  );
}
