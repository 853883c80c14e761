import type { SecretRef } from '../config/schema.ts';
import {
  assertSigningCa,
  certificatesFromPem,
  isPkiError,
  issueCertificate,
  keyMatchesCertificate,
  readCertificateSummary,
} from '../pki/index.ts';
import {
  type IssueInput,
  type IssueResult,
  type Issuer,
  IssuerError,
  type SecretReader,
  validityWindow,
} from './types.ts';

const DEFAULT_DURATION_MS = 90 * 86_400_000;
/** How long a validated CA is reused before its Secret is read again. */
const CA_CACHE_MS = 5_000;

interface LoadedCA {
  resourceVersion: string;
  certPem: string;
  keyPem: string;
  notAfter: number;
  loadedAt: number;
}

/** Signs with a CA certificate and key kept in a Secret (`tls.crt` may carry the CA's own chain). */
export class CAIssuer implements Issuer {
  readonly kind = 'ca' as const;
  readonly name: string;
  private readonly ref: SecretRef;
  private readonly readSecret: SecretReader;
  private readonly defaultDurationMs: number;
  private cached: LoadedCA | undefined;

  constructor(
    name: string,
    ref: SecretRef,
    readSecret: SecretReader,
    defaultDurationMs = DEFAULT_DURATION_MS,
  ) {
    this.name = name;
    this.ref = ref;
    this.readSecret = readSecret;
    this.defaultDurationMs = defaultDurationMs;
  }

  private where(): string {
    return `CA Secret ${this.ref.namespace}/${this.ref.name} of issuer "${this.name}"`;
  }

  private async load(now: number): Promise<LoadedCA> {
    if (this.cached && now - this.cached.loadedAt < CA_CACHE_MS) return this.cached;
    let secret: Awaited<ReturnType<SecretReader>>;
    try {
      secret = await this.readSecret(this.ref.namespace, this.ref.name);
    } catch (err) {
      throw new IssuerError(
        'CA_UNAVAILABLE',
        `cannot read ${this.where()}: ${err instanceof Error ? err.message : String(err)}`,
        true,
      );
    }
    if (!secret) throw new IssuerError('CA_UNAVAILABLE', `${this.where()} does not exist`, true);
    const certPem = secret.data['tls.crt'];
    const keyPem = secret.data['tls.key'];
    if (!certPem || !keyPem) {
      throw new IssuerError('CA_INVALID', `${this.where()} lacks tls.crt or tls.key`, true);
    }
    let der: Uint8Array;
    let summary: ReturnType<typeof readCertificateSummary>;
    try {
      der = certificatesFromPem(certPem)[0] as Uint8Array;
      summary = readCertificateSummary(der);
    } catch (err) {
      const what = isPkiError(err) ? err.message : String(err);
      throw new IssuerError('CA_INVALID', `${this.where()}: tls.crt is not a certificate (${what})`, true);
    }
    try {
      assertSigningCa(der, summary);
    } catch (err) {
      const what = isPkiError(err) ? err.message : String(err);
      throw new IssuerError(
        'CA_INVALID',
        `${this.where()}: tls.crt is not a usable CA certificate (${what})`,
        true,
      );
    }
    let matches = false;
    try {
      matches = keyMatchesCertificate(keyPem, der);
    } catch (err) {
      const what = isPkiError(err) ? err.message : 'unreadable key';
      throw new IssuerError(
        'CA_INVALID',
        `${this.where()}: tls.key is not a usable private key (${what})`,
        true,
      );
    }
    if (!matches)
      throw new IssuerError('CA_INVALID', `${this.where()}: tls.key does not match tls.crt`, true);
    if (summary.notAfter <= now)
      throw new IssuerError('CA_INVALID', `${this.where()}: the CA certificate has expired`, true);
    this.cached = {
      resourceVersion: secret.resourceVersion,
      certPem,
      keyPem,
      notAfter: summary.notAfter,
      loadedAt: now,
    };
    return this.cached;
  }

  /**
   * Signs a public key (from a CSR the signer has checked) for `identity` with exactly `usages`;
   * the leaf never outlives the CA. Used by the CSR signer (src/signer/).
   */
  async signPublicKey(input: {
    spki: Uint8Array;
    identity: IssueInput['identity'];
    organizations: readonly string[];
    usages: readonly string[];
    durationMs: number;
    now: number;
  }): Promise<{ chainPem: string; notAfter: number }> {
    const ca = await this.load(input.now);
    const window = validityWindow(input.now, input.durationMs);
    const notAfter = Math.min(window.notAfter, ca.notAfter);
    try {
      const issued = await issueCertificate({
        subjectSpki: input.spki,
        identity: input.identity,
        organizations: input.organizations,
        usages: input.usages,
        notBefore: window.notBefore,
        notAfter,
        issuer: { certPem: ca.certPem, keyPem: ca.keyPem },
      });
      // Leaf and the CA's chain, as the CA issuer writes to tls.crt (kcm returns the leaf alone).
      return { chainPem: issued.chainPem, notAfter };
    } catch (err) {
      this.cached = undefined;
      const what = err instanceof Error ? err.message : String(err);
      throw new IssuerError('ISSUE_FAILED', `${this.where()} could not sign: ${what}`, true);
    }
  }

  async issue(input: IssueInput): Promise<IssueResult> {
    const ca = await this.load(input.now);
    const window = validityWindow(input.now, input.durationMs ?? this.defaultDurationMs);
    // A leaf never outlives its CA: a verifier would reject it after the CA expires anyway.
    const notAfter = Math.min(window.notAfter, ca.notAfter);
    try {
      const issued = await issueCertificate({
        subjectKeyPem: input.keyPem,
        identity: input.identity,
        notBefore: window.notBefore,
        notAfter,
        issuer: { certPem: ca.certPem, keyPem: ca.keyPem },
      });
      return { chainPem: issued.chainPem, caPem: issued.caPem };
    } catch (err) {
      this.cached = undefined;
      const what = err instanceof Error ? err.message : String(err);
      throw new IssuerError('ISSUE_FAILED', `${this.where()} could not sign: ${what}`, true);
    }
  }
}
