/**
 * Certificate material on its way to disk, and the check it must pass first: a source's output
 * is untrusted until it parses, the key belongs to the leaf, the leaf is valid now and carries
 * every name the sidecar was asked for. Only node:crypto and the fast DER path are used here,
 * so the `--secret` sidecar never loads an X.509 library.
 */
import { type CertSummary, readCertificateSummary } from '../pki/der.ts';
import { PkiError } from '../pki/errors.ts';
import { certificatesFromPem, splitPem, toPem } from '../pki/pem.ts';
import type { Identity } from '../pki/sign.ts';
import { verifyIssued } from '../pki/verify.ts';

export interface Material {
  /** Leaf first, then any intermediates. */
  chainPem: string;
  keyPem: string;
  /** The CA to trust for this certificate, when the source knows it. */
  caPem?: string | undefined;
}

/** Material that passed verifyMaterial, normalised: PEM re-encoded from DER, junk text dropped. */
export interface VerifiedMaterial {
  chainPem: string;
  keyPem: string;
  caPem?: string | undefined;
  leaf: CertSummary;
}

const KEY_LABELS = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']);

export const NO_NAMES: Identity = { dnsNames: [], ipAddresses: [], uris: [] };

/**
 * Throws PkiError (code says which check) unless `m` is usable for `required` at `now`.
 * Never includes key bytes in a message.
 */
export function verifyMaterial(m: Material, required: Identity, now: number): VerifiedMaterial {
  const chain = certificatesFromPem(m.chainPem);
  // Every certificate of the chain must decode, not just the leaf.
  chain.forEach((der, i) => {
    try {
      readCertificateSummary(der);
    } catch (err) {
      throw new PkiError('DER_MALFORMED', `certificate ${i + 1} of the chain: ${(err as Error).message}`);
    }
  });
  const leaf = verifyIssued({ certPem: m.chainPem, keyPem: m.keyPem, identity: required, now });
  let caPem: string | undefined;
  if (m.caPem !== undefined && m.caPem.trim() !== '') {
    let ca: Uint8Array[];
    try {
      ca = certificatesFromPem(m.caPem);
      for (const der of ca) readCertificateSummary(der);
    } catch (err) {
      throw new PkiError(
        err instanceof PkiError ? err.code : 'PEM_MALFORMED',
        `ca.crt: ${(err as Error).message}`,
      );
    }
    caPem = ca.map((d) => toPem('CERTIFICATE', d)).join('');
  }
  const keyBlock = splitPem(m.keyPem).find((b) => KEY_LABELS.has(b.label))!;
  return {
    chainPem: chain.map((d) => toPem('CERTIFICATE', d)).join(''),
    keyPem: toPem(keyBlock.label, keyBlock.der),
    caPem,
    leaf,
  };
}

/** A short, key-free description of a certificate for logs. */
export function describeLeaf(leaf: CertSummary): Record<string, unknown> {
  return {
    serial: leaf.serialHex,
    notBefore: new Date(leaf.notBefore).toISOString(),
    notAfter: new Date(leaf.notAfter).toISOString(),
    ...(leaf.dnsNames.length > 0 ? { dnsNames: leaf.dnsNames } : {}),
    ...(leaf.uris.length > 0 ? { uris: leaf.uris } : {}),
  };
}
