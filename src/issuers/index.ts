import type { Config } from '../config/schema.ts';
import type { AcmeLog } from './acme/issuer.ts';
import type { AcmeKube } from './acme/ports.ts';
import { CAIssuer } from './ca.ts';
import { KubernetesCsrIssuer } from './kubernetes-csr/issuer.ts';
import type { CompanionSecrets, CsrRequesterKube } from './kubernetes-csr/ports.ts';
import { SelfSignedIssuer } from './self-signed.ts';
import type { Issuer, SecretReader } from './types.ts';

export { closeHttp01Listeners } from './acme/http01.ts';
export type { AcmeKube, Http01Route, StoredSecret } from './acme/ports.ts';
export { CAIssuer } from './ca.ts';
export type { CompanionSecrets, CsrRequesterKube } from './kubernetes-csr/ports.ts';
export { SelfSignedIssuer } from './self-signed.ts';
export * from './types.ts';

export interface IssuerDeps {
  readSecret: SecretReader;
  /** What ACME issuers need from Kubernetes; without it acme issuers are reported unsupported. */
  acmeKube?: AcmeKube;
  /** Counts `acme_requests_total{issuer,action,status}`. */
  onAcmeRequest?: (labels: { issuer: string; action: string; status: string }) => void;
  log?: AcmeLog;
  /** This pod's IP (POD_IP), where HTTP-01 challenge Services point. */
  podIP?: string;
  /** What kubernetesCSR issuers need; without it they are reported unsupported. */
  csrKube?: { csrs: CsrRequesterKube; secrets: CompanionSecrets };
  /** csr_requests_total{issuer,result} and csr_approval_wait_seconds{issuer}. */
  onCsrResult?: (labels: { issuer: string; result: string }) => void;
  onCsrApprovalWait?: (labels: { issuer: string }, seconds: number) => void;
}

/**
 * One Issuer per configured issuer. An issuer that cannot run without a dependency the caller
 * did not give (Kubernetes access) is reported in `unsupported`, so the controller refuses
 * Secrets that name it with a clear event.
 * The ACME code (acme-client: ~170 ms and ~40 MiB to load) is loaded only when an acme issuer
 * is configured.
 */
export async function buildIssuers(
  config: Config,
  deps: IssuerDeps,
): Promise<{ issuers: Map<string, Issuer>; unsupported: Map<string, string> }> {
  const acmeModule = config.issuers.some((ic) => ic.kind === 'acme')
    ? await import('./acme/issuer.ts')
    : undefined;
  const issuers = new Map<string, Issuer>();
  const unsupported = new Map<string, string>();
  for (const ic of config.issuers) {
    switch (ic.kind) {
      case 'selfSigned':
        issuers.set(ic.name, new SelfSignedIssuer(ic.name, ic.durationMs, ic.allowCA === true));
        break;
      case 'ca':
        issuers.set(
          ic.name,
          new CAIssuer(ic.name, ic.ca.secret, deps.readSecret, ic.durationMs, ic.allowCA === true),
        );
        break;
      case 'acme':
        if (!deps.acmeKube || !acmeModule) {
          unsupported.set(ic.name, 'acme issuers need Kubernetes access for their account key Secret');
          break;
        }
        issuers.set(
          ic.name,
          new acmeModule.AcmeIssuer(ic.name, ic.acme, {
            kube: deps.acmeKube,
            ...(deps.onAcmeRequest ? { onRequest: deps.onAcmeRequest } : {}),
            ...(deps.log ? { log: deps.log } : {}),
            ...(deps.podIP ? { podIP: deps.podIP } : {}),
          }),
        );
        break;
      case 'kubernetesCSR': {
        const csrKube = deps.csrKube;
        if (!csrKube) {
          unsupported.set(ic.name, 'kubernetesCSR issuers need Kubernetes access for their CSRs');
          break;
        }
        const { onCsrResult, onCsrApprovalWait } = deps;
        issuers.set(
          ic.name,
          new KubernetesCsrIssuer(ic.name, ic.kubernetesCSR, {
            kube: csrKube.csrs,
            secrets: csrKube.secrets,
            ...(onCsrResult ? { onResult: (result) => onCsrResult({ issuer: ic.name, result }) } : {}),
            ...(onCsrApprovalWait
              ? { onApprovalWait: (s) => onCsrApprovalWait({ issuer: ic.name }, s) }
              : {}),
            ...(deps.log ? { log: deps.log } : {}),
          }),
        );
        break;
      }
    }
  }
  return { issuers, unsupported };
}
