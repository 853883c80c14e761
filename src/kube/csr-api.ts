/**
 * The Kubernetes side of the CSR pieces: certificates.k8s.io/v1 CertificateSigningRequests as
 * plain values (PEM text, ms timestamps). It satisfies the `kubernetesCSR` issuer's port and
 * the signer's port structurally: kube/ never imports an issuer or a reconciler.
 */
import type * as k8s from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../names.ts';
import {
  type CertificatesV1Api,
  type CoreV1Api,
  describeApiError,
  httpStatus,
  type KubeTransport,
  makeClients,
} from './client.ts';

export const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
/** Consecutive watch failures (API server unreachable) before a wait gives up. */
const MAX_WATCH_ERRORS = 6;

export interface CsrCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

/** A CertificateSigningRequest, decoded. */
export interface CsrView {
  name: string;
  uid: string;
  resourceVersion: string;
  /** ms since the epoch. */
  created: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  signerName: string;
  /** PEM "CERTIFICATE REQUEST". */
  requestPem: string;
  usages: string[];
  expirationSeconds?: number;
  username: string;
  groups: string[];
  extra: Record<string, string[]>;
  conditions: CsrCondition[];
  /** PEM of status.certificate, when issued. */
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

/** How a CSR made with requestCertificate ended. */
export type CsrRequestOutcome =
  | { kind: 'issued'; name: string; certificatePem: string }
  | { kind: 'denied' | 'failed'; name: string; reason: string; message: string }
  | { kind: 'timeout' | 'deleted'; name: string };

/** What ends a wait on one CSR. */
export type CsrWaitOutcome = { kind: 'changed'; csr: CsrView } | { kind: 'deleted' } | { kind: 'timeout' };

function b64decode(v: string | undefined): string | undefined {
  return v ? Buffer.from(v, 'base64').toString('utf8') : undefined;
}

/** JSON as the API sends it (watch events are plain JSON, the generated client gives models). */
interface RawCsr {
  metadata?: {
    name?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string | Date;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: {
    signerName?: string;
    request?: string;
    usages?: string[];
    expirationSeconds?: number;
    username?: string;
    groups?: string[];
    extra?: Record<string, string[]>;
  };
  status?: { conditions?: Array<CsrCondition>; certificate?: string };
}

export function csrView(raw: RawCsr): CsrView {
  const m = raw.metadata ?? {};
  const s = raw.spec ?? {};
  const created =
    m.creationTimestamp instanceof Date
      ? m.creationTimestamp.getTime()
      : Date.parse(m.creationTimestamp ?? '');
  const certificatePem = b64decode(raw.status?.certificate);
  return {
    name: m.name ?? '',
    uid: m.uid ?? '',
    resourceVersion: m.resourceVersion ?? '',
    created: Number.isFinite(created) ? created : 0,
    labels: { ...(m.labels ?? {}) },
    annotations: { ...(m.annotations ?? {}) },
    signerName: s.signerName ?? '',
    requestPem: b64decode(s.request) ?? '',
    usages: [...(s.usages ?? [])],
    ...(s.expirationSeconds !== undefined ? { expirationSeconds: s.expirationSeconds } : {}),
    username: s.username ?? '',
    groups: [...(s.groups ?? [])],
    extra: { ...(s.extra ?? {}) },
    conditions: (raw.status?.conditions ?? []).map((c) => ({
      type: c.type,
      status: c.status,
      ...(c.reason ? { reason: c.reason } : {}),
      ...(c.message ? { message: c.message } : {}),
    })),
    ...(certificatePem ? { certificatePem } : {}),
  };
}

export class KubeCsrApi {
  private readonly transport: KubeTransport;
  private readonly api: CertificatesV1Api;
  private readonly core: CoreV1Api;
  /** Counts every API request made (for the "requests per renewal" figure and debugging). */
  requests = 0;
  /**
   * The last object read or created, by name: a write right after (approval, status) starts from
   * it instead of reading again. The write is guarded by its resourceVersion either way.
   */
  private readonly lastSeen = new Map<string, k8s.V1CertificateSigningRequest>();

  private remember(csr: k8s.V1CertificateSigningRequest): void {
    const name = csr.metadata?.name;
    if (!name) return;
    if (this.lastSeen.size >= 256) this.lastSeen.delete(this.lastSeen.keys().next().value as string);
    this.lastSeen.set(name, csr);
  }

  /** The remembered object if it is still `uid` at `resourceVersion`, else a fresh read. */
  private async current(name: string, expect?: { uid: string; resourceVersion?: string }) {
    const seen = this.lastSeen.get(name);
    this.lastSeen.delete(name);
    if (
      seen &&
      expect &&
      seen.metadata?.uid === expect.uid &&
      (expect.resourceVersion === undefined || seen.metadata?.resourceVersion === expect.resourceVersion)
    ) {
      return seen;
    }
    return await this.call(`read CSR ${name}`, () => this.api.readCertificateSigningRequest({ name }));
  }

  constructor(config: KubeTransport | k8s.KubeConfig) {
    const clients = makeClients(config);
    this.transport = clients.transport;
    this.api = clients.certificates;
    this.core = clients.core;
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

  async create(csr: NewCsr): Promise<CsrView> {
    const created = await this.call('create CertificateSigningRequest', () =>
      this.api.createCertificateSigningRequest({
        fieldManager: FIELD_MANAGER,
        body: {
          apiVersion: 'certificates.k8s.io/v1',
          kind: 'CertificateSigningRequest',
          metadata: { generateName: csr.generateName, labels: csr.labels, annotations: csr.annotations },
          spec: {
            signerName: csr.signerName,
            request: Buffer.from(csr.requestPem, 'utf8').toString('base64'),
            usages: csr.usages,
            ...(csr.expirationSeconds !== undefined ? { expirationSeconds: csr.expirationSeconds } : {}),
          },
        },
      }),
    );
    this.remember(created);
    return csrView(created as RawCsr);
  }

  async get(name: string): Promise<CsrView | undefined> {
    try {
      return csrView(
        (await this.call(`read CSR ${name}`, () =>
          this.api.readCertificateSigningRequest({ name }),
        )) as RawCsr,
      );
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async list(labels: Record<string, string>): Promise<CsrView[]> {
    const labelSelector = Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const list = await this.call('list CertificateSigningRequests', () =>
      this.api.listCertificateSigningRequest({ labelSelector }),
    );
    return list.items.map((i) => csrView(i as RawCsr));
  }

  /** Deletes the CSR if it still has `uid`; absent (or replaced by another of the name) is fine. */
  async delete(name: string, uid: string): Promise<void> {
    try {
      await this.call(`delete CSR ${name}`, () =>
        this.api.deleteCertificateSigningRequest({ name, body: { preconditions: { uid } } }),
      );
    } catch (err) {
      if (httpStatus(err) === 404 || httpStatus(err) === 409) return;
      throw err;
    }
  }

  /**
   * Adds an Approved or Denied condition through the `approval` subresource (guarded by the
   * resourceVersion read; re-read on a conflict). False if the CSR is gone or its uid changed.
   */
  async decide(
    name: string,
    uid: string,
    decision: 'Approved' | 'Denied',
    reason: string,
    message: string,
  ): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      let current: k8s.V1CertificateSigningRequest;
      try {
        // First attempt: the object just created or read; after a conflict, a fresh read.
        current = attempt === 0 ? await this.current(name, { uid }) : await this.current(name);
      } catch (err) {
        if (httpStatus(err) === 404) return false;
        throw err;
      }
      if (current.metadata?.uid !== uid) return false;
      const conditions = current.status?.conditions ?? [];
      if (conditions.some((c) => c.type === 'Approved' || c.type === 'Denied')) return true;
      const now = new Date();
      current.status = {
        ...(current.status ?? {}),
        conditions: [
          ...conditions,
          { type: decision, status: 'True', reason, message, lastUpdateTime: now, lastTransitionTime: now },
        ],
      };
      try {
        await this.call(`${decision === 'Approved' ? 'approve' : 'deny'} CSR ${name}`, () =>
          this.api.replaceCertificateSigningRequestApproval({
            name,
            body: current,
            fieldManager: FIELD_MANAGER,
          }),
        );
        return true;
      } catch (err) {
        if (httpStatus(err) === 409) continue;
        if (httpStatus(err) === 404) return false;
        throw err;
      }
    }
    throw new Error(`could not record the decision on CSR ${name}: it kept changing`);
  }

  /**
   * Writes status.certificate, or a Failed condition, through the `status` subresource, guarded
   * by `resourceVersion`: false on a conflict (someone else wrote first: never sign twice).
   */
  async writeStatus(
    csr: CsrView,
    update: { certificatePem: string } | { failed: { reason: string; message: string } },
  ): Promise<boolean> {
    let current: k8s.V1CertificateSigningRequest;
    try {
      current = await this.call(`read CSR ${csr.name}`, () =>
        this.api.readCertificateSigningRequest({ name: csr.name }),
      );
    } catch (err) {
      if (httpStatus(err) === 404) return false;
      throw err;
    }
    if (current.metadata?.uid !== csr.uid || current.metadata?.resourceVersion !== csr.resourceVersion)
      return false;
    const now = new Date();
    const status: k8s.V1CertificateSigningRequestStatus = { ...(current.status ?? {}) };
    if ('certificatePem' in update) {
      status.certificate = Buffer.from(update.certificatePem, 'utf8').toString('base64');
    } else {
      status.conditions = [
        ...(status.conditions ?? []),
        {
          type: 'Failed',
          status: 'True',
          reason: update.failed.reason,
          message: update.failed.message,
          lastUpdateTime: now,
          lastTransitionTime: now,
        },
      ];
    }
    current.status = status;
    try {
      await this.call(`write status of CSR ${csr.name}`, () =>
        this.api.replaceCertificateSigningRequestStatus({
          name: csr.name,
          body: current,
          fieldManager: FIELD_MANAGER,
        }),
      );
      return true;
    } catch (err) {
      if (httpStatus(err) === 409 || httpStatus(err) === 404) return false;
      throw err;
    }
  }

  /**
   * Watches one CSR (by name, from `fromResourceVersion`) until `done` accepts a version of it,
   * it is deleted or replaced (uid changed), or `deadline` (ms since the epoch) passes. A watch
   * the server closes is re-opened; a 410 re-reads the object. Never polls on a timer.
   */
  async waitFor(
    name: string,
    uid: string,
    fromResourceVersion: string,
    deadline: number,
    done: (csr: CsrView) => boolean,
  ): Promise<CsrWaitOutcome> {
    let rv = fromResourceVersion;
    let errors = 0;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return { kind: 'timeout' };
      const outcome = await new Promise<CsrWaitOutcome | 'reopen' | 'relist' | Error>((resolve) => {
        let settled = false;
        const abort = new AbortController();
        const finish = (v: CsrWaitOutcome | 'reopen' | 'relist' | Error) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          abort.abort();
          resolve(v);
        };
        const timer = setTimeout(() => finish({ kind: 'timeout' }), left);
        this.requests++;
        this.transport
          .watch(
            CSR_PATH,
            {
              fieldSelector: `metadata.name=${name}`,
              resourceVersion: rv,
              allowWatchBookmarks: 'true',
              timeoutSeconds: String(Math.max(1, Math.min(300, Math.ceil(left / 1000)))),
            },
            (phase, raw) => {
              const obj = raw as RawCsr & { code?: number; message?: string };
              if (phase === 'ERROR') {
                finish(
                  obj.code === 410 ? 'relist' : new Error(`watch of CSR ${name}: ${obj.message ?? obj.code}`),
                );
                return;
              }
              if (obj.metadata?.resourceVersion) rv = obj.metadata.resourceVersion;
              if (phase === 'BOOKMARK') return;
              if (phase === 'DELETED' || obj.metadata?.uid !== uid) {
                finish({ kind: 'deleted' });
                return;
              }
              const view = csrView(obj);
              if (done(view)) finish({ kind: 'changed', csr: view });
            },
            abort.signal,
          )
          // Resolves when the server ends the watch (or it was aborted after finishing).
          .then(
            () => finish('reopen'),
            (err: unknown) => finish(httpStatus(err) === 410 ? 'relist' : asError(err)),
          );
      });
      if (outcome === 'reopen') continue;
      if (outcome instanceof Error) {
        // The API server went away or the connection broke: back off (never past the deadline)
        // and read the CSR again; give up after a few tries in a row.
        if (++errors > MAX_WATCH_ERRORS) throw outcome;
        const pause = Math.min(250 * 2 ** errors, deadline - Date.now());
        if (pause > 0) await new Promise((r) => setTimeout(r, pause));
      }
      if (outcome === 'relist' || outcome instanceof Error) {
        let fresh: CsrView | undefined;
        try {
          fresh = await this.get(name);
        } catch (err) {
          if (outcome instanceof Error && errors <= MAX_WATCH_ERRORS) continue;
          throw err;
        }
        errors = 0;
        if (!fresh || fresh.uid !== uid) return { kind: 'deleted' };
        if (done(fresh)) return { kind: 'changed', csr: fresh };
        rv = fresh.resourceVersion;
        continue;
      }
      return outcome;
    }
  }

  /**
   * Creates a CSR and waits (by watch) for its outcome: what a workload asking cert-rotator's
   * signer with its own ServiceAccount needs (create + get/list/watch; nothing else). The CSR is
   * left in place on every outcome (the API server's cleaner removes it).
   */
  async requestCertificate(csr: NewCsr, timeoutMs: number): Promise<CsrRequestOutcome> {
    const created = await this.create(csr);
    const isSettled = (c: CsrView) =>
      c.certificatePem !== undefined ||
      c.conditions.some((x) => (x.type === 'Denied' || x.type === 'Failed') && x.status === 'True');
    const outcome = isSettled(created)
      ? ({ kind: 'changed', csr: created } as const)
      : await this.waitFor(
          created.name,
          created.uid,
          created.resourceVersion,
          Date.now() + timeoutMs,
          isSettled,
        );
    if (outcome.kind !== 'changed') return { kind: outcome.kind, name: created.name };
    const c = outcome.csr;
    if (c.certificatePem !== undefined)
      return { kind: 'issued', name: c.name, certificatePem: c.certificatePem };
    const refused = c.conditions.find(
      (x) => (x.type === 'Denied' || x.type === 'Failed') && x.status === 'True',
    );
    return {
      kind: refused?.type === 'Denied' ? 'denied' : 'failed',
      name: c.name,
      reason: refused?.reason ?? '',
      message: refused?.message ?? '',
    };
  }

  /** A value of a ConfigMap (e.g. kube-root-ca.crt's ca.crt); undefined when absent. */
  async readConfigMapKey(namespace: string, name: string, key: string): Promise<string | undefined> {
    try {
      const cm = await this.call(`read ConfigMap ${namespace}/${name}`, () =>
        this.core.readNamespacedConfigMap({ namespace, name }),
      );
      return cm.data?.[key];
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** The user name this client authenticates as (SelfSubjectReview); undefined if not allowed. */
  async selfUsername(): Promise<string | undefined> {
    try {
      const review = await this.call('SelfSubjectReview', () =>
        this.transport.request<k8s.V1SelfSubjectReview>(
          'POST',
          '/apis/authentication.k8s.io/v1/selfsubjectreviews',
          {
            body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
          },
        ),
      );
      return review.status?.userInfo?.username;
    } catch {
      return undefined;
    }
  }

  /** The uid of a Secret (the CSR is tied to it); undefined when absent. */
  async secretUid(namespace: string, name: string): Promise<string | undefined> {
    try {
      const s = await this.call(`read Secret ${namespace}/${name}`, () =>
        this.core.readNamespacedSecret({ namespace, name }),
      );
      return s.metadata?.uid;
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
