import type { Config } from '../config/schema.ts';
import { CAIssuer } from './ca.ts';
import { SelfSignedIssuer } from './self-signed.ts';
import type { Issuer, SecretReader } from './types.ts';

export { CAIssuer } from './ca.ts';
export { SelfSignedIssuer } from './self-signed.ts';
export * from './types.ts';

export interface IssuerDeps {
  readSecret: SecretReader;
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
      default:
        unsupported.set(
          ic.name,
          `issuer kind "${ic.kind}" is not implemented in this version of cert-rotator`,
        );
    }
  }
  return { issuers, unsupported };
}
