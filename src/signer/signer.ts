/**
 * The CSR reconciler: cert-rotator as a signer for `ca` issuers with a `signer` key. It watches
 * CertificateSigningRequests of those signerNames; on the leader only, it approves or denies
 * pending ones by the issuer's `approve` policy, and signs approved ones that have no
 * certificate yet, after the rules in rules.ts. Idempotent: a CSR that has a certificate (or a
 * Denied/Failed condition) is never touched, and every write is guarded by the resourceVersion
 * read just before it, so two replicas or a restart never sign one request twice.
 */
import type * as k8s from '@kubernetes/client-node';
import type { CsrApproveConfig, CsrSignerConfig, IssuerConfig } from '../config/schema.ts';
import type { CAIssuer } from '../issuers/ca.ts';
import { Backoff } from '../kube/backoff.ts';
import { describeApiError, type KubeTransport } from '../kube/client.ts';
import { CSR_PATH, type CsrView, csrView, type KubeCsrApi } from '../kube/csr-api.ts';
import { ListWatch } from '../kube/list-watch.ts';
import { type Result, WorkQueue } from '../kube/workqueue.ts';
import { CsrLink } from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import { isPkiError, type ParsedCsr, parseCsr } from '../pki/index.ts';
import { APPROVED_REASON, DENIED_REASON, decideApproval } from './approver.ts';
import type { IssuedLedger } from './issued-ledger.ts';
import { checkSigningRequest, SignerFailure } from './rules.ts';

export interface SignerEntry {
  issuer: IssuerConfig & { kind: 'ca' };
  signer: CsrSignerConfig;
  approve?: CsrApproveConfig;
  ca: CAIssuer;
}

export interface CsrSignerDeps {
  kubeConfig: KubeTransport;
  api: KubeCsrApi;
  entries: SignerEntry[];
  log: Logger;
  /** With leader election: only the leader approves and signs. Absent = always. */
  isLeader?: () => boolean;
  /**
   * Where each CA's last leaf is recorded before the certificate is published (issued-ledger.ts):
   * a CA rollover's Retire keeps the old CA until the last leaf it signed here has expired.
   */
  ledger?: Pick<IssuedLedger, 'cover'>;
}

function condition(csr: CsrView, type: string): boolean {
  return csr.conditions.some((c) => c.type === type && c.status === 'True');
}

export class CsrSigner {
  private readonly deps: CsrSignerDeps;
  private readonly bySigner = new Map<string, SignerEntry>();
  private readonly known = new Set<string>();
  private readonly watch: ListWatch<k8s.V1CertificateSigningRequest, string>;
  private readonly queue: WorkQueue<string>;
  private running: Promise<void> | undefined;
  /** cert-rotator's own user name: its kubernetesCSR issuer's requests are its own to approve. */
  private self: Promise<string | undefined> | undefined;

  constructor(deps: CsrSignerDeps) {
    this.deps = deps;
    for (const e of deps.entries) this.bySigner.set(e.signer.signerName, e);
    this.queue = new WorkQueue<string>({
      backoff: new Backoff<string>({ baseMs: 1_000, capMs: 5 * 60_000, factor: 2, jitter: 'full' }),
      onError: (err, key, retryInMs) =>
        deps.log.warn(
          { csr: key, retryInMs, error: describeApiError(err) },
          'CSR signer: reconcile failed; will retry',
        ),
    });
    this.watch = new ListWatch<k8s.V1CertificateSigningRequest, string>(
      deps.kubeConfig,
      deps.entries.map((e) => ({
        path: CSR_PATH,
        fieldSelector: `spec.signerName=${e.signer.signerName}`,
        tag: e.signer.signerName,
      })),
      {
        upsert: (csr) => {
          const name = csr.metadata?.name ?? '';
          this.known.add(name);
          // Settled requests need nothing: do not even queue them.
          const view = csrView(csr as Parameters<typeof csrView>[0]);
          const entry = this.bySigner.get(view.signerName);
          const open =
            view.certificatePem === undefined && !condition(view, 'Denied') && !condition(view, 'Failed');
          // Unapproved requests matter only to a signer that approves.
          if (open && (condition(view, 'Approved') || entry?.approve)) this.queue.add(name);
        },
        remove: (_ns, name) => {
          this.known.delete(name);
          this.queue.forget(name);
        },
        error: (err, retryInMs) =>
          deps.log.warn({ retryInMs, error: describeApiError(err) }, 'CSR list/watch failed; retrying'),
      },
    );
  }

  /** Depth and oldest wait of the work queue, for the metrics. */
  queueStats(): { depth: number; oldestWaitMs: number } {
    return { depth: this.queue.depth, oldestWaitMs: this.queue.oldestWaitMs() };
  }

  start(): void {
    this.self = this.deps.api.selfUsername();
    this.watch.start();
    this.running = this.queue.run((name) => this.reconcile(name), 2);
    this.deps.log.info({ signers: [...this.bySigner.keys()] }, 'CSR signer started');
  }

  /** On gaining leadership: look at every known request again. */
  replanAll(): void {
    for (const name of this.known) this.queue.add(name);
  }

  async stop(): Promise<void> {
    this.watch.stop();
    await this.queue.shutDown();
    await this.running;
  }

  async reconcile(name: string): Promise<Result> {
    if (this.deps.isLeader && !this.deps.isLeader()) return undefined;
    const csr = await this.deps.api.get(name);
    if (!csr) return undefined;
    const entry = this.bySigner.get(csr.signerName);
    if (!entry) return undefined;
    // Never twice: an issued, denied or failed request is final.
    if (csr.certificatePem !== undefined || condition(csr, 'Denied') || condition(csr, 'Failed'))
      return undefined;
    const log = this.deps.log;
    const signerName = entry.signer.signerName;

    let parsed: ParsedCsr | undefined;
    let parseError = '';
    try {
      parsed = await parseCsr(csr.requestPem);
    } catch (err) {
      parseError = isPkiError(err) ? err.message : String(err);
    }

    if (!condition(csr, 'Approved')) {
      if (!entry.approve) return undefined; // someone else approves for this signer
      if (csr.labels[CsrLink.secretNamespace] !== undefined && csr.username === (await this.self)) {
        return undefined; // cert-rotator's own kubernetesCSR issuer approves (or not) its requests
      }
      const decision = parsed
        ? decideApproval(signerName, entry.approve, csr, parsed)
        : {
            approve: false,
            message: `denied by cert-rotator's approver for signer ${signerName}: ${parseError}`,
          };
      await this.deps.api.decide(
        csr.name,
        csr.uid,
        decision.approve ? 'Approved' : 'Denied',
        decision.approve ? APPROVED_REASON : DENIED_REASON,
        decision.message,
      );
      log.info(
        { csr: csr.name, signerName, requester: csr.username, approved: decision.approve },
        decision.message,
      );
      return undefined; // the watch brings the approved version back to be signed
    }

    if (!parsed) {
      await this.failed(
        csr,
        SignerFailure.badRequest,
        `rule "request" of signer ${signerName}: ${parseError}`,
      );
      return undefined;
    }
    const decision = checkSigningRequest(entry.issuer, entry.signer, csr, parsed);
    if (!decision.ok) {
      await this.failed(csr, decision.reason, decision.message);
      return undefined;
    }
    const signed = await entry.ca.signPublicKey({
      spki: parsed.spki,
      identity: decision.identity,
      organizations: decision.organizations,
      usages: decision.usages,
      durationMs: decision.durationMs,
      now: Date.now(),
    });
    // Recorded before the certificate is published: a crash in between over-states, never under-states.
    await this.deps.ledger?.cover(entry.issuer.name, signed.caSha256, signed.notAfter, decision.durationMs);
    const written = await this.deps.api.writeStatus(csr, { certificatePem: signed.chainPem });
    if (!written) return { requeueAfter: 0 }; // changed meanwhile: look again (it may be issued now)
    log.info(
      {
        csr: csr.name,
        signerName,
        requester: csr.username,
        notAfter: new Date(signed.notAfter).toISOString(),
        ...(decision.capped ? { capped: decision.capped } : {}),
      },
      'CSR signed',
    );
    return undefined;
  }

  /** Adds the Failed condition; a conflict (the CSR changed meanwhile) looks at it again. */
  private async failed(csr: CsrView, reason: string, message: string): Promise<Result> {
    const written = await this.deps.api.writeStatus(csr, { failed: { reason, message } });
    this.deps.log.warn({ csr: csr.name, signerName: csr.signerName, reason, written }, message);
    return written ? undefined : { requeueAfter: 0 };
  }
}
