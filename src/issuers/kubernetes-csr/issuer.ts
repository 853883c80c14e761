/**
 * The `kubernetesCSR` issuer: one certificates.k8s.io/v1 CertificateSigningRequest per renewal,
 * optionally approved by cert-rotator itself, waited for by watching it (never by sleeping),
 * copied out as soon as it is issued and deleted once the Secret holds the certificate.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { KubernetesCSRIssuerConfig } from '../../config/schema.ts';
import { CsrLink, CsrResult } from '../../names.ts';
import {
  canonicalIp,
  certificatesFromPem,
  createCsrPem,
  inspectPrivateKey,
  isPkiError,
  parseCsr,
  readCertificateSummary,
  toPem,
  verifyIssued,
} from '../../pki/index.ts';
import { formatDuration } from '../../policy/renewal.ts';
import { type IssueInput, type IssueResult, type Issuer, IssuerError } from '../types.ts';
import { PendingCsrKeys } from './pending.ts';
import type { CompanionSecrets, CsrRequesterKube, CsrView, CsrWaitOutcome } from './ports.ts';

export type CsrResultValue = (typeof CsrResult)[keyof typeof CsrResult];

export interface KubernetesCsrIssuerDeps {
  kube: CsrRequesterKube;
  secrets: CompanionSecrets;
  /** Counts csr_requests_total{issuer,result}. */
  onResult?: (result: CsrResultValue) => void;
  /** Observes csr_approval_wait_seconds{issuer}: creation of the CSR to its certificate. */
  onApprovalWait?: (seconds: number) => void;
  log?: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
}

/** Reason of the Approved condition cert-rotator adds with `autoApprove`. */
export const AUTO_APPROVE_REASON = 'CertRotatorAutoApprove';

const MAX_LABEL = 63;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** A label value for a Secret name: the name when it fits, else a hash of it (uid decides anyway). */
export function labelValue(value: string): string {
  return value.length <= MAX_LABEL && LABEL_VALUE.test(value)
    ? value
    : createHash('sha256').update(value).digest('hex').slice(0, 40);
}

function condition(csr: CsrView, type: string) {
  return csr.conditions.find((c) => c.type === type && c.status === 'True');
}

/** Shortest and longest wait before looking again at a CSR that is still pending. */
export const RELOOK_MIN_MS = 5_000;
export const RELOOK_MAX_MS = 60_000;

/**
 * When to look again at a CSR that is `ageMs` old and still pending: a quarter of its age, from
 * 5 s up to 1 min (a person who approves at once is seen within seconds, one who takes an hour
 * costs one look a minute), never past the approvalTimeout deadline.
 */
export function relookAfterMs(ageMs: number, untilDeadlineMs: number): number {
  const hint = Math.min(RELOOK_MAX_MS, Math.max(RELOOK_MIN_MS, Math.round(ageMs / 4)));
  return Math.max(0, Math.min(hint, untilDeadlineMs));
}

/** The CSR has reached an outcome: a certificate, or Denied / Failed. */
function settled(csr: CsrView): boolean {
  return csr.certificatePem !== undefined || !!condition(csr, 'Denied') || !!condition(csr, 'Failed');
}

export class KubernetesCsrIssuer implements Issuer {
  readonly kind = 'kubernetesCSR' as const;
  readonly name: string;
  private readonly config: KubernetesCSRIssuerConfig;
  private readonly deps: KubernetesCsrIssuerDeps;
  private readonly pending: PendingCsrKeys;

  constructor(name: string, config: KubernetesCSRIssuerConfig, deps: KubernetesCsrIssuerDeps) {
    this.name = name;
    this.config = config;
    this.deps = deps;
    this.pending = new PendingCsrKeys(deps.secrets);
  }

  async issue(input: IssueInput): Promise<IssueResult> {
    const where = `issuer "${this.name}" for Secret ${input.namespace}/${input.secretName}`;
    try {
      return await this.issueFor(input);
    } catch (err) {
      if (err instanceof IssuerError) {
        const e = new IssuerError(err.code, `${where}: ${err.message}`, err.retryable);
        if (err.retryAfterMs !== undefined) e.retryAfterMs = err.retryAfterMs;
        throw e;
      }
      throw new IssuerError(
        'CA_UNAVAILABLE',
        `${where}: ${err instanceof Error ? err.message : String(err)}`,
        true,
      );
    }
  }

  private async issueFor(input: IssueInput): Promise<IssueResult> {
    const { namespace, secretName } = input;
    const signer = this.config.signerName;
    const caPem = await this.caBundle();
    const secretUid = (await this.deps.kube.secretUid(namespace, secretName)) ?? '';
    const labels = {
      [CsrLink.secretNamespace]: namespace,
      [CsrLink.secretName]: labelValue(secretName),
    };

    let keyPem = input.keyPem;
    let csr = await this.resume(input, labels, secretUid);
    const resumed = csr !== undefined;
    if (csr) {
      keyPem = csr.keyPem;
    } else {
      // The key is persisted before the CSR exists: a crash from here on finds both again.
      await this.pending.save(namespace, secretName, {
        keyPem,
        issuer: this.name,
        signerName: signer,
        created: Date.now(),
      });
      const requestPem = await createCsrPem(keyPem, input.identity);
      const expirationSeconds =
        this.config.expirationSeconds ??
        (input.durationMs !== undefined ? Math.max(600, Math.round(input.durationMs / 1000)) : undefined);
      const created = await this.deps.kube.create({
        // Dots become dashes: a cut after a dot would start the random suffix's label with "-".
        generateName: `${labelValue(`${namespace}-${secretName}`).slice(0, 40).replaceAll('.', '-')}-`,
        labels,
        annotations: { [CsrLink.secretUid]: secretUid },
        signerName: signer,
        requestPem,
        usages: this.config.usages,
        ...(expirationSeconds !== undefined ? { expirationSeconds } : {}),
      });
      this.deps.log?.info(
        { issuer: this.name, secret: `${namespace}/${secretName}`, csr: created.name, signerName: signer },
        'CertificateSigningRequest created',
      );
      csr = { view: created, keyPem };
    }
    return await this.complete(input, csr.view, keyPem, caPem, !resumed);
  }

  /**
   * The CSR persisted before a restart, if it still fits: found by label, tied to this Secret's
   * uid, for this signer, certifying the persisted key. Anything else is cleaned up.
   */
  private async resume(
    input: IssueInput,
    labels: Record<string, string>,
    secretUid: string,
  ): Promise<{ view: CsrView; keyPem: string } | undefined> {
    const { namespace, secretName } = input;
    const saved = await this.pending.load(namespace, secretName);
    if (saved === undefined) return undefined;
    const candidates = await this.deps.kube.list(labels);
    let spki: string | undefined;
    if (saved !== 'unreadable' && saved.issuer === this.name && saved.signerName === this.config.signerName) {
      try {
        spki = inspectPrivateKey(saved.keyPem).spkiSha256;
      } catch {
        spki = undefined;
      }
    }
    let found: CsrView | undefined;
    for (const c of candidates) {
      if (
        !found &&
        spki !== undefined &&
        c.signerName === this.config.signerName &&
        c.annotations[CsrLink.secretUid] === secretUid &&
        (await requestMatches(c.requestPem, spki, input.identity))
      ) {
        found = c;
      } else if (
        c.annotations[CsrLink.secretUid] === secretUid &&
        c.certificatePem === undefined &&
        !settled(c)
      ) {
        // Pending, but not for the persisted key or not for the identity wanted now: unusable.
        await this.deps.kube.delete(c.name, c.uid);
      }
    }
    if (!found || saved === 'unreadable') {
      await this.pending.delete(namespace, secretName);
      return undefined;
    }
    this.deps.log?.info(
      { issuer: this.name, secret: `${namespace}/${secretName}`, csr: found.name },
      'resuming the CertificateSigningRequest created before a restart',
    );
    return { view: found, keyPem: saved.keyPem };
  }

  private async complete(
    input: IssueInput,
    created: CsrView,
    keyPem: string,
    caPem: string | undefined,
    createdNow: boolean,
  ): Promise<IssueResult> {
    const { namespace, secretName } = input;
    const kube = this.deps.kube;
    const signer = this.config.signerName;
    const label = `CSR ${created.name} for signer ${signer}`;
    const cleanUp = async () => {
      await kube.delete(created.name, created.uid);
      await this.pending.delete(namespace, secretName);
    };
    let csr = created;
    // Only an attempt that has just created (or approved) the CSR holds its worker for a signer
    // to answer; a later look checks the CSR as listed and frees the worker at once.
    let holdFrom = createdNow ? Date.now() : undefined;
    if (this.config.autoApprove && !condition(csr, 'Approved') && !settled(csr)) {
      holdFrom = Date.now();
      try {
        await kube.decide(
          csr.name,
          csr.uid,
          'Approved',
          AUTO_APPROVE_REASON,
          `approved by cert-rotator (issuer "${this.name}", autoApprove) for Secret ${namespace}/${secretName}`,
        );
      } catch (err) {
        throw new IssuerError(
          'ISSUE_FAILED',
          `cannot approve ${label}: ${err instanceof Error ? err.message : String(err)} (autoApprove needs "approve" on signers ${signer} and "update" on certificatesigningrequests/approval; the chart grants them when the issuer is configured)`,
          true,
        );
      }
    }
    if (!settled(csr)) {
      // approvalTimeout counts from the CSR's creation, however many attempts looked at it.
      const deadline = csr.created + this.config.approvalTimeoutMs;
      const holdUntil = Math.min(deadline, (holdFrom ?? 0) + this.config.approvalHoldMs);
      const outcome: CsrWaitOutcome =
        holdUntil > Date.now()
          ? await kube.waitFor(csr.name, csr.uid, csr.resourceVersion, holdUntil, settled)
          : { kind: 'timeout' };
      const now = Date.now();
      if (outcome.kind === 'timeout' && now < deadline) {
        // Still pending: free the worker; the next attempt resumes this CSR from the companion.
        const approved = this.config.autoApprove || !!condition(csr, 'Approved');
        const after = relookAfterMs(now - csr.created, deadline - now);
        const e = new IssuerError(
          'PENDING',
          `${label} is ${approved ? 'approved but not signed yet' : 'not approved yet'}; looking again in ${Math.ceil(after / 1000)}s (approvalTimeout ${formatDuration(this.config.approvalTimeoutMs)} from its creation)`,
          true,
        );
        e.retryAfterMs = after;
        throw e;
      }
      if (outcome.kind === 'timeout') {
        await cleanUp();
        this.deps.onResult?.(CsrResult.timeout);
        const approved = this.config.autoApprove || !!condition(csr, 'Approved');
        throw new IssuerError(
          'ISSUE_FAILED',
          `${label} still not ${approved ? 'signed (it is approved)' : 'approved'} after ${formatDuration(this.config.approvalTimeoutMs)} (approvalTimeout); the CSR was deleted`,
          true,
        );
      }
      if (outcome.kind === 'deleted') {
        await this.pending.delete(namespace, secretName);
        this.deps.onResult?.(CsrResult.failed);
        throw new IssuerError(
          'ISSUE_FAILED',
          `${label} was deleted (or replaced) before it was issued`,
          true,
        );
      }
      csr = outcome.csr;
    }
    const refused = condition(csr, 'Denied') ?? condition(csr, 'Failed');
    if (refused && csr.certificatePem === undefined) {
      await this.pending.delete(namespace, secretName);
      this.deps.onResult?.(refused.type === 'Denied' ? CsrResult.denied : CsrResult.failed);
      throw new IssuerError(
        'ISSUE_FAILED',
        `${label} was ${refused.type === 'Denied' ? 'denied' : 'failed by the signer'}: ${refused.reason ?? '(no reason)'}: ${refused.message ?? '(no message)'}`,
        true,
      );
    }
    // Copied out at once: the API server's cleaner deletes issued CSRs an hour after approval.
    const certificatePem = csr.certificatePem ?? '';
    const issuedAt = Date.now();
    try {
      verifyIssued({ certPem: certificatePem, keyPem, identity: input.identity, now: issuedAt + 60_000 });
      if (caPem !== undefined) caPem = chainIssuer(certificatePem, caPem);
    } catch (err) {
      await cleanUp();
      this.deps.onResult?.(CsrResult.failed);
      throw new IssuerError(
        'CA_INVALID',
        `${label} returned a certificate that fails verification: ${isPkiError(err) || err instanceof Error ? err.message : String(err)}`,
        true,
      );
    }
    this.deps.onResult?.(CsrResult.issued);
    this.deps.onApprovalWait?.(Math.max(0, (issuedAt - csr.created) / 1000));
    return {
      chainPem: certificatePem,
      ...(caPem !== undefined ? { caPem } : {}),
      ...(keyPem !== input.keyPem ? { keyPem } : {}),
      issuedAt,
      afterWrite: cleanUp,
    };
  }

  /** ca.crt: the configured PEM, or the ConfigMap key; undefined when neither is configured. */
  private async caBundle(): Promise<string | undefined> {
    if (this.config.caBundle !== undefined) return this.config.caBundle;
    const from = this.config.caBundleFrom?.configMap;
    if (!from) return undefined;
    const pem = await this.deps.kube.readConfigMapKey(from.namespace, from.name, from.key);
    if (!pem) {
      throw new IssuerError(
        'CA_UNAVAILABLE',
        `caBundleFrom: ConfigMap ${from.namespace}/${from.name} has no key "${from.key}"`,
        true,
      );
    }
    try {
      if (certificatesFromPem(pem).length === 0) throw new Error('no certificate');
    } catch (err) {
      throw new IssuerError(
        'CA_INVALID',
        `caBundleFrom: ConfigMap ${from.namespace}/${from.name} key "${from.key}" is not PEM certificates (${err instanceof Error ? err.message : String(err)})`,
        true,
      );
    }
    return pem;
  }
}

/** The request carries the persisted key and asks for exactly the identity wanted now. */
async function requestMatches(
  requestPem: string,
  spki: string,
  identity: IssueInput['identity'],
): Promise<boolean> {
  try {
    const parsed = await parseCsr(requestPem);
    if (createHash('sha256').update(parsed.spki).digest('hex') !== spki) return false;
    const key = (id: IssueInput['identity']) =>
      JSON.stringify([
        id.commonName ?? null,
        [...id.dnsNames].map((n) => n.toLowerCase()).sort(),
        id.ipAddresses.map((ip) => canonicalIp(ip) ?? ip).sort(),
        [...id.uris].sort(),
      ]);
    return key(parsed.identity) === key(identity);
  } catch {
    return false;
  }
}

/**
 * Checks that the chain ends at a certificate of `bundlePem` (kube-controller-manager returns
 * the leaf alone) and returns the bundle with that CA first, so ca.crt starts with the issuer.
 */
function chainIssuer(chainPem: string, bundlePem: string): string {
  const chain = certificatesFromPem(chainPem);
  const top = new X509Certificate(chain[chain.length - 1] as Uint8Array);
  const bundle = certificatesFromPem(bundlePem);
  const index = bundle.findIndex((der) => {
    const ca = new X509Certificate(der);
    try {
      return top.checkIssued(ca) && top.verify(ca.publicKey);
    } catch {
      return false;
    }
  });
  if (index < 0) {
    const s = readCertificateSummary(chain[chain.length - 1] as Uint8Array);
    throw new Error(
      `it is not signed by a certificate of the configured CA bundle (its issuer is "${s.issuerCommonName ?? '(no CN)'}")`,
    );
  }
  const ordered = [bundle[index] as Uint8Array, ...bundle.filter((_, i) => i !== index)];
  return ordered.map((der) => toPem('CERTIFICATE', der)).join('');
}
