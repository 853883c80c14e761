import type { Config } from '../config/schema.ts';
import { AcmeIssuer, type AcmeLog } from './acme/issuer.ts';
import type { AcmeKube } from './acme/ports.ts';
import { CAIssuer } from './ca.ts';
import { SelfSignedIssuer } from './self-signed.ts';
import type { Issuer, SecretReader } from './types.ts';

export { closeHttp01Listeners } from './acme/http01.ts';
export type { AcmeKube, Http01Route, StoredSecret } from './acme/ports.ts';
export { CAIssuer } from './ca.ts';
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
}

/**
 * One Issuer per configured issuer that this build can run. Issuers of kinds not built yet are
 * reported in `unsupported` so the controller can refuse Secrets that name them with a clear event.
 */
export function buildIssuers(
  config: Config,
  deps: IssuerDeps,
): { issuers: Map<string, Issuer>; unsupported: Map<string, string> } {
  const issuers = new Map<string, Issuer>();
  const unsupported = new Map<string, string>();
  for (const ic of config.issuers) {
    switch (ic.kind) {
      case 'selfSigned':
        issuers.set(ic.name, new SelfSignedIssuer(ic.name, ic.durationMs));
        break;
      case 'ca':
        issuers.set(ic.name, new CAIssuer(ic.name, ic.ca.secret, deps.readSecret, ic.durationMs));
        break;
      case 'acme':
        if (!deps.acmeKube) {
          unsupported.set(ic.name, 'acme issuers need Kubernetes access for their account key Secret');
          break;
        }
        issuers.set(
          ic.name,
          new AcmeIssuer(ic.name, ic.acme, {
            kube: deps.acmeKube,
            ...(deps.onAcmeRequest ? { onRequest: deps.onAcmeRequest } : {}),
            ...(deps.log ? { log: deps.log } : {}),
            ...(deps.podIP ? { podIP: deps.podIP } : {}),
          }),
        );
        break;
      default:
        unsupported.set(
          ic.name,
          `issuer kind "${ic.kind}" is not implemented in this version of cert-rotator`,
        );
    }
  }
  return { issuers, unsupported };
}
