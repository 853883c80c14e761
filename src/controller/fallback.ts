import { issuerAllows } from '../config/glob.ts';
import { CONFIG_DEFAULTS, type Config, findIssuer, type IssuerConfig } from '../config/schema.ts';
import type { RequestedIdentity } from '../policy/identity.ts';

export interface IssuerChoice {
  /** The issuer to issue from now. */
  name: string;
  /** Set when `name` is the fallback of this (failing) issuer. */
  fallbackFrom?: string;
  /** Consecutive failures that led to the fallback. */
  failures?: number;
}

/**
 * The Secret's issuer, or its `fallback` once the Secret has failed `fallbackAfter` times in a
 * row (default 3). A fallback whose policy does not allow the Secret's namespace and whole
 * identity (CN, DNS, IP, URI) is not used.
 */
export function chooseIssuer(
  issuer: IssuerConfig,
  failures: number,
  config: Pick<Config, 'issuers'>,
  namespace: string,
  identity: RequestedIdentity | readonly string[],
): IssuerChoice {
  const threshold = issuer.fallbackAfter ?? CONFIG_DEFAULTS.fallbackAfter;
  if (!issuer.fallback || failures < threshold) return { name: issuer.name };
  const fallback = findIssuer(config, issuer.fallback);
  if (!fallback || !issuerAllows(fallback, namespace, identity).allowed) return { name: issuer.name };
  return { name: fallback.name, fallbackFrom: issuer.name, failures };
}
