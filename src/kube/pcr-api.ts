/**
 * The Kubernetes side of the pod certificate signer: certificates.k8s.io/v1beta1
 * PodCertificateRequests as plain values, their /status writes, and the Pod (and
 * ServiceAccount) a request names, read to cross-check it. Plain JSON over the transport.
 */
import { FIELD_MANAGER } from '../names.ts';
import { describeApiError, httpStatus, type KubeTransport } from './client.ts';

export const PCR_PATH = '/apis/certificates.k8s.io/v1beta1/podcertificaterequests';

export interface PcrCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

/** A PodCertificateRequest, decoded. Every field is what the requester wrote: untrusted. */
export interface PcrView {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  /** ms since the epoch. */
  created: number;
  signerName: string;
  podName: string;
  podUID: string;
  serviceAccountName: string;
  serviceAccountUID: string;
  nodeName: string;
  nodeUID: string;
  maxExpirationSeconds: number;
  /** DER PKCS#10 (the 1.36 kubelet's way to send the key). */
  stubPKCS10Request?: Uint8Array;
  /** DER SubjectPublicKeyInfo + signature over the pod UID (the deprecated way). */
  pkixPublicKey?: Uint8Array;
  proofOfPossession?: Uint8Array;
  unverifiedUserAnnotations: Record<string, string>;
  conditions: PcrCondition[];
  certificateChain?: string;
}

/** JSON as the API sends it. */
export interface RawPcr {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    namespace?: string;
    name?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
  };
  spec?: {
    signerName?: string;
    podName?: string;
    podUID?: string;
    serviceAccountName?: string;
    serviceAccountUID?: string;
    nodeName?: string;
    nodeUID?: string;
    maxExpirationSeconds?: number;
    stubPKCS10Request?: string;
    pkixPublicKey?: string;
    proofOfPossession?: string;
    unverifiedUserAnnotations?: Record<string, string>;
  };
  status?: {
    conditions?: Array<PcrCondition & { lastTransitionTime?: string }>;
    certificateChain?: string;
    notBefore?: string;
    notAfter?: string;
    beginRefreshAt?: string;
  };
}

function bytes(b64: string | undefined): Uint8Array | undefined {
  return b64 ? new Uint8Array(Buffer.from(b64, 'base64')) : undefined;
}

export function pcrView(raw: RawPcr): PcrView {
  const m = raw.metadata ?? {};
  const s = raw.spec ?? {};
  const created = Date.parse(m.creationTimestamp ?? '');
  const stub = bytes(s.stubPKCS10Request);
  const pkix = bytes(s.pkixPublicKey);
  const pop = bytes(s.proofOfPossession);
  return {
    namespace: m.namespace ?? '',
    name: m.name ?? '',
    uid: m.uid ?? '',
    resourceVersion: m.resourceVersion ?? '',
    created: Number.isFinite(created) ? created : 0,
    signerName: s.signerName ?? '',
    podName: s.podName ?? '',
    podUID: s.podUID ?? '',
    serviceAccountName: s.serviceAccountName ?? '',
    serviceAccountUID: s.serviceAccountUID ?? '',
    nodeName: s.nodeName ?? '',
    nodeUID: s.nodeUID ?? '',
    // The API server defaults it to 86400 and refuses less than 3600.
    maxExpirationSeconds: s.maxExpirationSeconds ?? 86_400,
    ...(stub ? { stubPKCS10Request: stub } : {}),
    ...(pkix ? { pkixPublicKey: pkix } : {}),
    ...(pop ? { proofOfPossession: pop } : {}),
    unverifiedUserAnnotations: { ...(s.unverifiedUserAnnotations ?? {}) },
    conditions: (raw.status?.conditions ?? []).map((c) => ({
      type: c.type,
      status: c.status,
      ...(c.reason ? { reason: c.reason } : {}),
      ...(c.message ? { message: c.message } : {}),
    })),
    ...(raw.status?.certificateChain ? { certificateChain: raw.status.certificateChain } : {}),
  };
}

/** Issued, Denied or Failed (the API allows one, once): nothing may change after it. */
export function isFinal(pcr: Pick<PcrView, 'conditions' | 'certificateChain'>): boolean {
  return (
    pcr.certificateChain !== undefined ||
    pcr.conditions.some(
      (c) => (c.type === 'Issued' || c.type === 'Denied' || c.type === 'Failed') && c.status === 'True',
    )
  );
}

/** What the signer writes, once. */
export type PcrOutcome =
  | {
      issued: {
        certificateChain: string;
        notBefore: number;
        notAfter: number;
        beginRefreshAt: number;
        reason: string;
        message: string;
      };
    }
  | { denied: { reason: string; message: string } };

/** How a status write ended. */
export type PcrWriteResult = 'written' | 'conflict' | 'gone';

/** The facts of a Pod that a PCR names. */
export interface PodFacts {
  uid: string;
  serviceAccountName: string;
  nodeName: string;
}

/** RFC 3339 in whole seconds, as metav1.Time serializes. */
export function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export class KubePcrApi {
  private readonly transport: KubeTransport;
  /** Every API request made (the "requests per PCR" figure). */
  requests = 0;

  constructor(transport: KubeTransport) {
    this.transport = transport;
  }

  private async call<T>(what: string, p: () => Promise<T>): Promise<T> {
    this.requests++;
    try {
      return await p();
    } catch (err) {
      const e = new Error(`${what}: ${describeApiError(err)}`) as Error & { code?: number };
      const status = httpStatus(err);
      if (status !== undefined) e.code = status;
      throw e;
    }
  }

  private static path(namespace: string, name?: string): string {
    const base = `/apis/certificates.k8s.io/v1beta1/namespaces/${encodeURIComponent(namespace)}/podcertificaterequests`;
    return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
  }

  /** The PCR as stored now (raw, for a write); undefined when it is gone. */
  async getRaw(namespace: string, name: string): Promise<RawPcr | undefined> {
    try {
      return await this.call(`read PodCertificateRequest ${namespace}/${name}`, () =>
        this.transport.request<RawPcr>('GET', KubePcrApi.path(namespace, name)),
      );
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /**
   * Sets the status once, through /status, guarded by the resourceVersion of `raw` (the object
   * the decision was made on): 'conflict' when someone else wrote first or the object changed.
   */
  async writeStatus(raw: RawPcr, outcome: PcrOutcome, now: number): Promise<PcrWriteResult> {
    const m = raw.metadata ?? {};
    const at = rfc3339(now);
    const status: NonNullable<RawPcr['status']> =
      'issued' in outcome
        ? {
            conditions: [
              {
                type: 'Issued',
                status: 'True',
                reason: outcome.issued.reason,
                message: outcome.issued.message,
                lastTransitionTime: at,
              },
            ],
            certificateChain: outcome.issued.certificateChain,
            notBefore: rfc3339(outcome.issued.notBefore),
            notAfter: rfc3339(outcome.issued.notAfter),
            beginRefreshAt: rfc3339(outcome.issued.beginRefreshAt),
          }
        : {
            conditions: [
              {
                type: 'Denied',
                status: 'True',
                reason: outcome.denied.reason,
                message: outcome.denied.message,
                lastTransitionTime: at,
              },
            ],
          };
    const body: RawPcr = {
      apiVersion: 'certificates.k8s.io/v1beta1',
      kind: 'PodCertificateRequest',
      metadata: { ...m },
      ...(raw.spec ? { spec: raw.spec } : {}),
      status,
    };
    try {
      await this.call(`write status of PodCertificateRequest ${m.namespace}/${m.name}`, () =>
        this.transport.request('PUT', `${KubePcrApi.path(m.namespace ?? '', m.name ?? '')}/status`, {
          query: { fieldManager: FIELD_MANAGER },
          body,
        }),
      );
      return 'written';
    } catch (err) {
      if (httpStatus(err) === 409) return 'conflict';
      if (httpStatus(err) === 404) return 'gone';
      throw err;
    }
  }

  /** The Pod's uid, ServiceAccount and node; undefined when there is no such Pod. */
  async pod(namespace: string, name: string): Promise<PodFacts | undefined> {
    interface RawPod {
      metadata?: { uid?: string };
      spec?: { serviceAccountName?: string; nodeName?: string };
    }
    try {
      const pod = await this.call(`read Pod ${namespace}/${name}`, () =>
        this.transport.request<RawPod>(
          'GET',
          `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`,
        ),
      );
      return {
        uid: pod.metadata?.uid ?? '',
        serviceAccountName: pod.spec?.serviceAccountName ?? 'default',
        nodeName: pod.spec?.nodeName ?? '',
      };
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** A ServiceAccount's uid; undefined when there is none of that name. */
  async serviceAccountUid(namespace: string, name: string): Promise<string | undefined> {
    try {
      const sa = await this.call(`read ServiceAccount ${namespace}/${name}`, () =>
        this.transport.request<{ metadata?: { uid?: string } }>(
          'GET',
          `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}`,
        ),
      );
      return sa.metadata?.uid;
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }
}
