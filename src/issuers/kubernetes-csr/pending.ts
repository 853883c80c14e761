/**
 * Crash safety for CSRs: the private key a pending CSR certifies is persisted, before the CSR
 * is created, in a companion Secret owned by the managed Secret (garbage-collected with it).
 * After a restart the issuer finds its CSR again by label, checks that it certifies that key,
 * and keeps waiting on it instead of creating a second one. Deleted once the Secret is written.
 */
import { createHash } from 'node:crypto';
import type { CompanionSecrets } from './ports.ts';

export const CSR_PENDING_SUFFIX = '-cert-rotator-csr';
/** Label on companion Secrets, so they can be found (`kubectl get secret -l ...`). */
export const CSR_PENDING_LABEL = 'cert-rotator.io/csr-pending-key';

export interface PendingCsrKey {
  keyPem: string;
  issuer: string;
  signerName: string;
  /** ms since the epoch. */
  created: number;
}

export function pendingCsrSecretName(secretName: string): string {
  const name = `${secretName}${CSR_PENDING_SUFFIX}`;
  if (name.length <= 253) return name;
  const hash = createHash('sha256').update(secretName).digest('hex').slice(0, 10);
  return `${secretName.slice(0, 253 - CSR_PENDING_SUFFIX.length - 11)}-${hash}${CSR_PENDING_SUFFIX}`;
}

export class PendingCsrKeys {
  private readonly secrets: CompanionSecrets;

  constructor(secrets: CompanionSecrets) {
    this.secrets = secrets;
  }

  async load(namespace: string, secretName: string): Promise<PendingCsrKey | 'unreadable' | undefined> {
    const s = await this.secrets.readSecret(namespace, pendingCsrSecretName(secretName));
    if (!s) return undefined;
    const d = s.data;
    const created = Date.parse(d.created ?? '');
    if (!d['tls.key'] || !d.issuer || !d['signer-name'] || Number.isNaN(created)) return 'unreadable';
    return { keyPem: d['tls.key'], issuer: d.issuer, signerName: d['signer-name'], created };
  }

  async save(namespace: string, secretName: string, pending: PendingCsrKey): Promise<void> {
    const name = pendingCsrSecretName(secretName);
    const data = {
      'tls.key': pending.keyPem,
      issuer: pending.issuer,
      'signer-name': pending.signerName,
      created: new Date(pending.created).toISOString(),
    };
    const annotations = {
      'cert-rotator.io/description': `private key of the pending CertificateSigningRequest for Secret ${secretName}; deleted once that Secret is written`,
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      const created = await this.secrets.createSecret(namespace, name, data, {
        owner: secretName,
        labels: { [CSR_PENDING_LABEL]: 'true' },
        annotations,
      });
      if (created) return;
      const existing = await this.secrets.readSecret(namespace, name);
      if (
        existing &&
        (await this.secrets.updateSecret(namespace, name, existing.resourceVersion, data, annotations))
      )
        return;
    }
    throw new Error(`could not persist the pending CSR key in Secret ${namespace}/${name}`);
  }

  async delete(namespace: string, secretName: string): Promise<void> {
    await this.secrets.deleteSecret(namespace, pendingCsrSecretName(secretName));
  }
}
