import type { Config } from '../config/schema.ts';
import type { AcmeLog } from './acme/issuer.ts';
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
        issuers.set(ic.name, new SelfSignedIssuer(ic.name, ic.durationMs));
        break;
      case 'ca':
        issuers.set(ic.name, new CAIssuer(ic.name, ic.ca.secret, deps.readSecret, ic.durationMs));
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
      default:
        unsupported.set(
          ic.name,
          `issuer kind "${ic.kind}" is not implemented in this version of cert-rotator`,
        );
    }
  }
  return { issuers, unsupported };
}
