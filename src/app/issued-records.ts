/**
 * The records of what cert-rotator's signers issued (signer/issued-ledger.ts): one ConfigMap per
 * signer kind in cert-rotator's namespace, written by the signers and read by a CA rollover's
 * Retire and by `cert-rotator ca status`.
 */
import type { IssuerConfig } from '../config/schema.ts';
import type { KubeTransport } from '../kube/client.ts';
import { ConfigMapStore } from '../kube/configmap-store.ts';
import { CSR_ISSUED_RECORD, ISSUED_RECORD } from '../names.ts';
import type { IssuedRecord } from '../rollover/signed-leaves.ts';
import { recordedUntil } from '../signer/issued-ledger.ts';

export interface IssuedRecordStores {
  csr: ConfigMapStore;
  pods: ConfigMapStore;
}

export function issuedRecordStores(kc: KubeTransport, namespace: string): IssuedRecordStores {
  const store = (name: string, description: string) =>
    new ConfigMapStore(kc, namespace, name, {
      labels: { 'app.kubernetes.io/managed-by': 'cert-rotator' },
      annotations: { [ISSUED_RECORD.descriptionAnnotation]: description },
    });
  return {
    csr: store(CSR_ISSUED_RECORD.name, CSR_ISSUED_RECORD.description),
    pods: store(ISSUED_RECORD.name, ISSUED_RECORD.description),
  };
}

/** The records a rollover of this issuer waits for: those of the signers it configures. */
export function recordsFor(issuer: IssuerConfig, stores: IssuedRecordStores): IssuedRecord[] {
  if (issuer.kind !== 'ca') return [];
  const record = (signer: string, store: ConfigMapStore): IssuedRecord => ({
    signer,
    name: store.name,
    lastLeafNotAfter: (sha, now) => recordedUntil(store, sha, now),
  });
  return [
    ...(issuer.signer ? [record('the CSR signer', stores.csr)] : []),
    ...(issuer.podCertificates ? [record('the Pod Certificates signer', stores.pods)] : []),
  ];
}
