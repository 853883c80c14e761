import { createRequire } from 'node:module';
import type * as X509 from '@peculiar/x509';

let loaded: typeof X509 | undefined;

/**
 * @peculiar/x509, loaded on first use: with tsyringe and the Reflect polyfill it needs, it costs
 * ~20 MiB of RSS, and a controller that only watches certificates never signs one. Loaded as
 * CommonJS so a synchronous caller (acmeCertId) and the signer share one copy.
 */
export function x509(): typeof X509 {
  if (!loaded) {
    const require = createRequire(import.meta.url);
    // @peculiar/x509 resolves its algorithm registry through tsyringe, which needs the Reflect polyfill.
    require('reflect-metadata');
    loaded = require('@peculiar/x509') as typeof X509;
  }
  return loaded;
}
