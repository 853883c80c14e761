import { createPrivateKey } from 'node:crypto';
import * as acme from 'acme-client';

/**
 * A PKCS#10 request for `names` signed with the Secret's key (PEM in any form node:crypto reads).
 * ACME CAs take the names from the order; the first name is also the subject CN when it fits.
 */
export async function createCsrPem(keyPem: string, names: string[], commonName?: string): Promise<string> {
  const key = createPrivateKey(keyPem);
  if (key.asymmetricKeyType !== 'ec' && key.asymmetricKeyType !== 'rsa') {
    throw new Error(
      `ACME issuance needs an ECDSA or RSA key, not ${key.asymmetricKeyType ?? 'this key'}; set key-algorithm`,
    );
  }
  const pkcs8 = key.export({ type: 'pkcs8', format: 'pem' }).toString();
  const cn = commonName ?? names.find((n) => n.length <= 64);
  const [, csr] = await acme.crypto.createCsr(
    { altNames: [...names], ...(cn !== undefined ? { commonName: cn } : {}) },
    pkcs8,
  );
  return csr.toString();
}
