/**
 * The PodCertificateRequest reconciler: cert-rotator as the signer of pod certificates
 * (KEP-4317) for `ca` issuers with a `podCertificates` block. It watches PCRs of those signer
 * names only (field selector spec.signerName); on the leader, it issues or denies each open one
 * once, through /status, guarded by the resourceVersion it decided on — so a second replica, a
 * restart or a re-queued key never writes twice (the loser gets a 409 and leaves the request).
 *
 * Never Failed: the kubelet treats Failed like Denied and never asks again for the pod's volume,
 * so a transient error (CA Secret unreadable, API hiccup) is retried, and a CA with less than an
 * hour left leaves the request pending (the API server's cleaner deletes it and the kubelet asks
 * again).
 */
import type { IssuerConfig, PodCertificatesConfig } from '../config/schema.ts';
import type { CAIssuer } from '../issuers/ca.ts';
import { Backoff } from '../kube/backoff.ts';
import { describeApiError, type KubeTransport } from '../kube/client.ts';
import { type KubeObject, ListWatch } from '../kube/list-watch.ts';
import {
  isFinal,
  type KubePcrApi,
  PCR_PATH,
  type PcrOutcome,
  type PcrView,
  pcrView,
  type RawPcr,
} from '../kube/pcr-api.ts';
import { type Result, WorkQueue } from '../kube/workqueue.ts';
import { PodCertificateReason, PodCertificateResult } from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import type { IssuedLedger } from './issued-ledger.ts';
import {
  type Denial,
  planValidity,
  podCertificateUsages,
  podIdentity,
  requestKey,
} from './pod-certificate-rules.ts';

export interface PodCertificateEntry {
  issuer: IssuerConfig & { kind: 'ca' };
  config: PodCertificatesConfig;
  ca: Pick<CAIssuer, 'caCertificate' | 'signPublicKey'>;
}

/** What the reconciler calls of the API (kube/pcr-api.ts provides it). */
export type PcrPort = Pick<KubePcrApi, 'getRaw' | 'writeStatus' | 'pod' | 'serviceAccountUid'>;

export type PodCertificateResultValue = (typeof PodCertificateResult)[keyof typeof PodCertificateResult];

export interface PodCertificateSignerDeps {
  transport: KubeTransport;
  api: PcrPort;
  entries: PodCertificateEntry[];
  log: Logger;
  /** With leader election: only the leader signs. Absent = always. */
  isLeader?: () => boolean;
  /** One per PCR looked at to its end (and per pending/conflict/error pass). */
  onResult?: (signer: string, result: PodCertificateResultValue) => void;
  /** Seconds from the PCR's creation to its chain being written. */
  onIssued?: (signer: string, seconds: number) => void;
  /** Where each CA's last leaf is recorded before the leaf is published (issued-ledger.ts). */
  ledger?: Pick<IssuedLedger, 'cover'>;
  now?: () => number;
}

/** How long a request whose CA is about to expire waits before it is looked at again. */
const PENDING_RECHECK_MS = 60_000;

export class PodCertificateSigner {
  private readonly deps: PodCertificateSignerDeps;
  private readonly bySigner = new Map<string, PodCertificateEntry>();
  /** Open requests seen by the watch ("namespace/name" → the object), until reconciled. */
  private readonly open = new Map<string, RawPcr>();
  private readonly watch: ListWatch<KubeObject, string>;
  private readonly queue: WorkQueue<string>;
  private readonly now: () => number;
  private running: Promise<void> | undefined;

  constructor(deps: PodCertificateSignerDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    for (const e of deps.entries) this.bySigner.set(e.config.signerName, e);
    this.queue = new WorkQueue<string>({
      backoff: new Backoff<string>({ baseMs: 1_000, capMs: 2 * 60_000, factor: 2, jitter: 'full' }),
      onError: (err, key, retryInMs) => {
        const signer = this.open.get(key)?.spec?.signerName ?? '';
        deps.onResult?.(signer, PodCertificateResult.error);
        deps.log.warn(
          { podCertificateRequest: key, retryInMs, error: describeApiError(err) },
          'pod certificate signer: reconcile failed; will retry (never written as Failed)',
        );
      },
    });
    // Watch events are plain JSON (ListWatch types them as the client's models).
    this.watch = new ListWatch<KubeObject, string>(
      deps.transport,
      deps.entries.map((e) => ({
        path: PCR_PATH,
        fieldSelector: `spec.signerName=${e.config.signerName}`,
        tag: e.config.signerName,
      })),
      {
        upsert: (object) => {
          const raw = object as RawPcr;
          const key = `${raw.metadata?.namespace ?? ''}/${raw.metadata?.name ?? ''}`;
          // Settled requests need nothing: never even queued.
          if (isFinal(pcrView(raw))) {
            this.open.delete(key);
            return;
          }
          this.open.set(key, raw);
          this.queue.add(key);
        },
        remove: (namespace, name) => {
          const key = `${namespace}/${name}`;
          this.open.delete(key);
          this.queue.forget(key);
        },
        error: (err, retryInMs) =>
          deps.log.warn(
            { retryInMs, error: describeApiError(err) },
            'PodCertificateRequest list/watch failed; retrying',
          ),
      },
    );
  }

  start(): void {
    this.watch.start();
    this.running = this.queue.run((key) => this.reconcile(key), 2);
    this.deps.log.info({ signers: [...this.bySigner.keys()] }, 'pod certificate signer started');
  }

  /** On gaining leadership: look at every open request again. */
  replanAll(): void {
    for (const key of this.open.keys()) this.queue.add(key);
  }

  async stop(): Promise<void> {
    this.watch.stop();
    await this.queue.shutDown();
    await this.running;
  }

  async reconcile(key: string): Promise<Result> {
    if (this.deps.isLeader && !this.deps.isLeader()) return undefined;
    const slash = key.indexOf('/');
    const [namespace, name] = [key.slice(0, slash), key.slice(slash + 1)];
    // The watched object saves a read; the write is guarded by its resourceVersion either way.
    const raw = this.open.get(key) ?? (await this.deps.api.getRaw(namespace, name));
    if (!raw) return undefined;
    const pcr = pcrView(raw);
    const entry = this.bySigner.get(pcr.signerName);
    // Never twice: an issued, denied or failed request is final.
    if (!entry || isFinal(pcr)) {
      this.open.delete(key);
      return undefined;
    }
    const signer = entry.config.signerName;
    const log = this.deps.log;
    const base = { podCertificateRequest: key, signerName: signer, pod: pcr.podName };

    // The kubelet's request was checked against the Pod by the API server (NodeRestriction); a
    // request from anyone else might name a pod it is not. Such a request is left alone.
    const mismatch = await this.podMismatch(pcr, entry);
    if (mismatch) {
      log.warn({ ...base }, `PodCertificateRequest left pending: ${mismatch}`);
      this.open.delete(key);
      return undefined;
    }

    const keyResult = await requestKey(entry.issuer, entry.config, pcr);
    if (!keyResult.ok) return await this.deny(key, raw, pcr, signer, keyResult.denial);
    const identity = podIdentity(entry.issuer, entry.config, pcr);
    if (!identity.ok) return await this.deny(key, raw, pcr, signer, identity.denial);

    const now = this.now();
    const plan = planValidity({
      now,
      maxExpirationSeconds: pcr.maxExpirationSeconds,
      maxDurationMs: entry.config.maxDurationMs,
      caNotAfter: (await entry.ca.caCertificate(now)).notAfter,
      refreshAtFraction: entry.config.refreshAtFraction,
    });
    if (!plan.ok) {
      this.deps.onResult?.(signer, PodCertificateResult.pending);
      log.error(
        { ...base, outcome: PodCertificateResult.pending, issuer: entry.issuer.name },
        `PodCertificateRequest left pending: ${plan.message}; rotate the CA of issuer "${entry.issuer.name}" (a Failed condition would strand the pod)`,
      );
      return { requeueAfter: PENDING_RECHECK_MS };
    }
    const signed = await entry.ca.signPublicKey({
      spki: keyResult.spki,
      identity: identity.identity,
      organizations: [],
      usages: podCertificateUsages(keyResult.keyType),
      durationMs: plan.notAfter - plan.notBefore,
      now,
      validity: { notBefore: plan.notBefore, notAfter: plan.notAfter },
    });
    // Recorded before the chain is published: a crash in between over-states, never under-states.
    await this.deps.ledger?.cover(entry.issuer.name, signed.caSha256, signed.notAfter);
    const names = [...identity.identity.uris, ...identity.identity.dnsNames];
    const outcome: PcrOutcome = {
      issued: {
        certificateChain: signed.chainPem,
        notBefore: plan.notBefore,
        notAfter: signed.notAfter,
        beginRefreshAt: plan.beginRefreshAt,
        reason: PodCertificateReason.issued,
        message: `issued by cert-rotator issuer "${entry.issuer.name}" for ${names.join(', ')}`,
      },
    };
    const written = await this.write(key, raw, pcr, signer, outcome);
    if (written === 'written') {
      this.deps.onIssued?.(signer, Math.max(0, this.now() - pcr.created) / 1000);
      log.info(
        {
          ...base,
          outcome: PodCertificateResult.issued,
          keyType: keyResult.keyType,
          names,
          notAfter: new Date(signed.notAfter).toISOString(),
          beginRefreshAt: new Date(plan.beginRefreshAt).toISOString(),
          lifetimeLimitedBy: plan.limitedBy,
        },
        'pod certificate issued',
      );
    }
    return written === 'again' ? { requeueAfter: 0 } : undefined;
  }

  private async deny(
    key: string,
    raw: RawPcr,
    pcr: PcrView,
    signer: string,
    denial: Denial,
  ): Promise<Result> {
    const written = await this.write(key, raw, pcr, signer, { denied: denial });
    if (written === 'written') {
      this.deps.log.warn(
        {
          podCertificateRequest: key,
          signerName: signer,
          pod: pcr.podName,
          outcome: PodCertificateResult.denied,
          reason: denial.reason,
        },
        denial.message,
      );
    }
    return written === 'again' ? { requeueAfter: 0 } : undefined;
  }

  /**
   * Writes the outcome once. On a conflict, reads the request again: final (another replica
   * wrote) means leave it; still open means decide again on the fresh version.
   */
  private async write(
    key: string,
    raw: RawPcr,
    pcr: PcrView,
    signer: string,
    outcome: PcrOutcome,
  ): Promise<'written' | 'done' | 'again'> {
    const result = await this.deps.api.writeStatus(raw, outcome, this.now());
    this.open.delete(key);
    if (result === 'written') {
      this.deps.onResult?.(
        signer,
        'issued' in outcome ? PodCertificateResult.issued : PodCertificateResult.denied,
      );
      return 'written';
    }
    if (result === 'gone') return 'done';
    const fresh = await this.deps.api.getRaw(pcr.namespace, pcr.name);
    if (!fresh || fresh.metadata?.uid !== pcr.uid || isFinal(pcrView(fresh))) {
      this.deps.onResult?.(signer, PodCertificateResult.conflict);
      return 'done';
    }
    this.open.set(key, fresh);
    return 'again';
  }

  /** Why the request does not describe its Pod (undefined when it does). */
  private async podMismatch(pcr: PcrView, entry: PodCertificateEntry): Promise<string | undefined> {
    const pod = await this.deps.api.pod(pcr.namespace, pcr.podName);
    if (!pod) return `pod ${pcr.namespace}/${pcr.podName} does not exist`;
    if (pod.uid !== pcr.podUID) return `pod ${pcr.namespace}/${pcr.podName} has another UID`;
    if (pod.serviceAccountName !== pcr.serviceAccountName)
      return `pod ${pcr.namespace}/${pcr.podName} runs as ServiceAccount "${pod.serviceAccountName}", not "${pcr.serviceAccountName}"`;
    if (pod.nodeName !== pcr.nodeName)
      return `pod ${pcr.namespace}/${pcr.podName} is on node "${pod.nodeName}", not "${pcr.nodeName}"`;
    // The ServiceAccount UID is read only when a template puts it into the certificate.
    if ([...entry.config.uris, ...entry.config.dnsNames].some((t) => t.includes('{serviceaccountuid}'))) {
      const uid = await this.deps.api.serviceAccountUid(pcr.namespace, pcr.serviceAccountName);
      if (uid !== pcr.serviceAccountUID)
        return `ServiceAccount ${pcr.namespace}/${pcr.serviceAccountName} has another UID`;
    }
    return undefined;
  }
}
