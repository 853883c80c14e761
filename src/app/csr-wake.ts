/**
 * Wakes a Secret whose renewal is waiting on a CSR (a person has not approved it yet) as soon as
 * that CSR is issued, denied or failed, instead of at the controller's next look: one list+watch
 * of cert-rotator's own CSRs (label `cert-rotator.io/secret-namespace`), for the whole process.
 */
import type * as k8s from '@kubernetes/client-node';
import type { Config } from '../config/schema.ts';
import { labelValue } from '../issuers/kubernetes-csr/issuer.ts';
import { describeApiError } from '../kube/client.ts';
import { CSR_PATH } from '../kube/csr-api.ts';
import type { KubeTransport } from '../kube/http/transport.ts';
import { ListWatch } from '../kube/list-watch.ts';
import { CsrLink } from '../names.ts';
import type { Logger } from '../observability/logger.ts';

export interface PendingWaker {
  wakePending(namespace: string, matches: (name: string) => boolean): void;
}

/** Issued (a certificate) or refused (Denied / Failed): what a pending attempt waits for. */
function settled(csr: k8s.V1CertificateSigningRequest): boolean {
  if (csr.status?.certificate) return true;
  return (csr.status?.conditions ?? []).some(
    (c) => (c.type === 'Denied' || c.type === 'Failed') && c.status === 'True',
  );
}

/** The watch, when a kubernetesCSR issuer is configured; undefined otherwise. */
export function csrWaker(
  config: Config,
  transport: KubeTransport,
  controller: PendingWaker,
  log: Logger,
): ListWatch<k8s.V1CertificateSigningRequest, undefined> | undefined {
  if (!config.issuers.some((i) => i.kind === 'kubernetesCSR')) return undefined;
  return new ListWatch<k8s.V1CertificateSigningRequest, undefined>(
    transport,
    [{ path: CSR_PATH, labelSelector: CsrLink.secretNamespace, tag: undefined }],
    {
      upsert: (csr) => {
        const labels = csr.metadata?.labels ?? {};
        const namespace = labels[CsrLink.secretNamespace];
        const name = labels[CsrLink.secretName];
        if (!namespace || !name || !settled(csr)) return;
        controller.wakePending(namespace, (secret) => labelValue(secret) === name);
      },
      remove: () => {},
      error: (err, retryInMs) =>
        log.warn({ retryInMs, error: describeApiError(err) }, 'CSR list/watch failed; retrying'),
    },
  );
}
