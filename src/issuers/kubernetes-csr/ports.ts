/**
 * What the `kubernetesCSR` issuer needs from Kubernetes, declared here and plugged in by app/
 * (src/kube/csr-api.ts and src/kube/acme-resources.ts satisfy it structurally).
 */

export interface CsrCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface CsrView {
  name: string;
  uid: string;
  resourceVersion: string;
  /** ms since the epoch (the API server's clock). */
  created: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  signerName: string;
  requestPem: string;
  usages: string[];
  expirationSeconds?: number;
  conditions: CsrCondition[];
  certificatePem?: string;
}

export interface NewCsr {
  generateName: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  signerName: string;
  requestPem: string;
  usages: string[];
  expirationSeconds?: number;
}

export type CsrWaitOutcome = { kind: 'changed'; csr: CsrView } | { kind: 'deleted' } | { kind: 'timeout' };

export interface CsrRequesterKube {
  create(csr: NewCsr): Promise<CsrView>;
  list(labels: Record<string, string>): Promise<CsrView[]>;
  delete(name: string, uid: string): Promise<void>;
  decide(
    name: string,
    uid: string,
    decision: 'Approved' | 'Denied',
    reason: string,
    message: string,
  ): Promise<boolean>;
  waitFor(
    name: string,
    uid: string,
    fromResourceVersion: string,
    deadline: number,
    done: (csr: CsrView) => boolean,
  ): Promise<CsrWaitOutcome>;
  readConfigMapKey(namespace: string, name: string, key: string): Promise<string | undefined>;
  secretUid(namespace: string, name: string): Promise<string | undefined>;
}

/** Opaque companion Secrets (the same shape the ACME issuer uses for its pending orders). */
export interface CompanionSecrets {
  readSecret(
    namespace: string,
    name: string,
  ): Promise<{ resourceVersion: string; data: Record<string, string> } | undefined>;
  createSecret(
    namespace: string,
    name: string,
    data: Record<string, string>,
    opts?: { owner?: string; labels?: Record<string, string>; annotations?: Record<string, string> },
  ): Promise<boolean>;
  updateSecret(
    namespace: string,
    name: string,
    resourceVersion: string,
    data: Record<string, string>,
    annotations?: Record<string, string>,
  ): Promise<boolean>;
  deleteSecret(namespace: string, name: string): Promise<void>;
}
