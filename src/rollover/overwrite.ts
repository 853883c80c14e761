/**
 * Was a CA overwritten in place? (pure: no I/O) Asked only when the active CA is not the one
 * recorded in `ca-fingerprint`: an issued leaf that the active CA did not sign, whose own chain
 * (tls.crt after the leaf) or ca.crt holds the CA that did, names the old CA. That CA counts as
 * replaced when the record named another CA or, the record gone with a replace of the whole
 * Secret, when it has the active CA's subject or the leaf is one cert-rotator renewed (its
 * `last-renewed`): this issuer signed it with the old CA. Leaves from a CA cert-rotator never
 * used (a first install) are left to their renewals.
 */
import { X509Certificate } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { decodeData } from '../controller/secret-body.ts';
import { SecretKey, StatusAnnotation } from '../names.ts';
import { certificatesFromPem, toPem } from '../pki/index.ts';
import { signedBy } from './cluster.ts';

export interface OverwriteFinding {
  /** The CA that signed issued leaves before the active one, if any leaf names one. */
  old: X509Certificate | undefined;
  /** `old` was replaced in place (not, say, a CA a person chose to switch from long ago). */
  overwritten: boolean;
  /**
   * `old` as PEM, followed by the certificates of that leaf's ca.crt (what it was trusted
   * through: an old intermediate's root), so the trust set can still anchor it.
   */
  oldChainPem: string;
}

export function findOverwrite(
  active: X509Certificate,
  recorded: string | undefined,
  secrets: readonly k8s.V1Secret[],
): OverwriteFinding {
  const activePem = active.toString();
  let old: X509Certificate | undefined;
  let trusted = '';
  let renewedHere = false;
  for (const s of secrets) {
    const leaf = decodeData(s.data?.[SecretKey.certificate]);
    if (!leaf || signedBy(leaf, activePem)) continue;
    trusted = decodeData(s.data?.[SecretKey.caCertificate]);
    for (const der of [...certsOf(leaf).slice(1), ...certsOf(trusted)]) {
      const candidate = new X509Certificate(Buffer.from(der));
      if (
        candidate.fingerprint256 !== active.fingerprint256 &&
        candidate.ca &&
        signedBy(leaf, candidate.toString())
      ) {
        old = candidate;
        renewedHere = s.metadata?.annotations?.[StatusAnnotation.lastRenewed] !== undefined;
        break;
      }
    }
    if (old) break;
  }
  const overwritten =
    old !== undefined && (recorded !== undefined || old.subject === active.subject || renewedHere);
  const oldPem = old?.toString() ?? '';
  const through = certsOf(trusted)
    .map((der) => toPem('CERTIFICATE', der))
    .filter((pem) => pem !== oldPem);
  return { old, overwritten, oldChainPem: oldPem + through.join('') };
}

function certsOf(pem: string): Uint8Array[] {
  try {
    return pem ? certificatesFromPem(pem) : [];
  } catch {
    return [];
  }
}
