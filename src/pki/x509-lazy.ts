import { createRequire } from 'node:module';
import type * as X509 from '@peculiar/x509';

let loaded: typeof X509 | undefined;

/**
 * @peculiar/x509, loaded on first use: with tsyringe and the Reflect polyfill it needs, it costs
 * ~20 MiB of RSS. Only CSRs (csr.ts) and ACME certificate ids (cert-id.ts) need it; certificates
 * are encoded by sign.ts itself. Loaded as CommonJS so a synchronous caller (acmeCertId) and
 * the CSR builder share one copy.
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
