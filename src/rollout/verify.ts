import { certificatesFromPem, keyMatchesCertificate, readCertificateSummary } from '../pki/index.ts';

/**
 * Why the certificate now in a Secret must not restart anything (undefined: it may): a
 * certificate replaced by hand is checked the way cert-rotator checks its own before writing —
 * it parses, matches tls.key, and is valid now.
 */
export async function verifyTlsPair(
  api: {
    readTlsPair(namespace: string, name: string): Promise<{ certPem: string; keyPem: string } | undefined>;
  },
  namespace: string,
  name: string,
  now: number,
): Promise<string | undefined> {
  let pair: { certPem: string; keyPem: string } | undefined;
  try {
    pair = await api.readTlsPair(namespace, name);
  } catch (err) {
    return `the Secret could not be read (${err instanceof Error ? err.message : String(err)})`;
  }
  if (!pair) return 'the Secret is gone';
  try {
    const leaf = certificatesFromPem(pair.certPem)[0];
    if (!leaf) return 'tls.crt holds no certificate';
    if (!keyMatchesCertificate(pair.keyPem, leaf)) return 'tls.key does not match tls.crt';
    const summary = readCertificateSummary(leaf);
    if (now < summary.notBefore)
      return `the certificate is not valid before ${new Date(summary.notBefore).toISOString()}`;
    if (now >= summary.notAfter)
      return `the certificate expired at ${new Date(summary.notAfter).toISOString()}`;
    return undefined;
  } catch (err) {
    return `tls.crt or tls.key cannot be read (${err instanceof Error ? err.message : String(err)})`;
  }
}
