/**
 * Was a CA overwritten in place? (pure: no I/O) Asked only when the active CA is not the one
 * recorded in `ca-fingerprint`: an issued leaf that the active CA did not sign, whose own ca.crt
 * holds the CA that did, names the old CA. That CA counts as overwritten when the record named
 * another CA, or (the record went with the overwrite) when it has the active CA's subject.
 */
import { X509Certificate } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { decodeData } from '../controller/secret-body.ts';
import { SecretKey } from '../names.ts';
import { certificatesFromPem } from '../pki/index.ts';
import { signedBy } from './cluster.ts';

export interface OverwriteFinding {
  /** The CA that signed issued leaves before the active one, if any leaf names one. */
  old: X509Certificate | undefined;
  /** `old` was replaced in place (not, say, a CA a person chose to switch from long ago). */
  overwritten: boolean;
}

export function findOverwrite(
  active: X509Certificate,
  recorded: string | undefined,
  secrets: readonly k8s.V1Secret[],
): OverwriteFinding {
  const activePem = active.toString();
  let old: X509Certificate | undefined;
  for (const s of secrets) {
    const leaf = decodeData(s.data?.[SecretKey.certificate]);
    if (!leaf || signedBy(leaf, activePem)) continue;
    for (const der of certificatesFromPem(decodeData(s.data?.[SecretKey.caCertificate]))) {
      const candidate = new X509Certificate(Buffer.from(der));
      if (
        candidate.fingerprint256 !== active.fingerprint256 &&
        candidate.ca &&
        signedBy(leaf, candidate.toString())
      ) {
        old = candidate;
        break;
      }
    }
    if (old) break;
  }
  const overwritten = old !== undefined && (recorded !== undefined || old.subject === active.subject);
  return { old, overwritten };
}
