/**
 * Which certificate a verifier must trust for a CA: the root its chain leads to. Trusting an
 * intermediate alone verifies nothing for OpenSSL-based clients (Node, curl, nginx) unless they
 * opt into partial chains: they fail with "unable to get issuer certificate". So a trust set
 * holds roots, found by following each CA's issuer through the certificates the CA Secret
 * carries (its chain in tls.crt, its ca.crt, the staged or replaced CA). Without a root among
 * them, the topmost certificate found is the best anchor there is (what was trusted before).
 */
import { X509Certificate } from 'node:crypto';
import { certificatesFromPem, toPem } from './pem.ts';

/** How many issuers are followed at most (a CA hierarchy deeper than this is not one we walk). */
const MAX_DEPTH = 8;

function parse(pem: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  let ders: Uint8Array[] = [];
  try {
    ders = certificatesFromPem(pem);
  } catch {
    return out;
  }
  for (const der of ders) {
    try {
      out.push(new X509Certificate(Buffer.from(der)));
    } catch {
      // Not readable by node:crypto: it cannot be an issuer we verify against.
    }
  }
  return out;
}

/** `parent` names `child`'s issuer and its key verifies `child` (issuedBy(x, x): a root). */
export const issuedBy = (child: X509Certificate, parent: X509Certificate): boolean =>
  child.checkIssued(parent) && child.verify(parent.publicKey);

/** The root `ca` leads to among `pool` (by issuer name and signature), else the topmost found. */
export function anchorOf(ca: X509Certificate, pool: readonly X509Certificate[]): X509Certificate {
  let current = ca;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (issuedBy(current, current)) return current;
    const at = current;
    const parent = pool.find((p) => p.fingerprint256 !== at.fingerprint256 && issuedBy(at, p));
    if (parent === undefined) return current;
    current = parent;
  }
  return current;
}

/**
 * The trust set for these CAs (each the first certificate of its PEM text; empty texts are
 * skipped), as concatenated PEM without repeats, in the order given: each CA's anchor, looked
 * for among every certificate of `cas` and `pool`.
 */
export function trustAnchors(
  cas: readonly (string | undefined)[],
  pool: readonly (string | undefined)[],
): string {
  const everything = [...cas, ...pool].flatMap((text) => (text ? parse(text) : []));
  const pems: string[] = [];
  for (const text of cas) {
    const first = text ? parse(text)[0] : undefined;
    if (first === undefined) continue;
    const pem = toPem('CERTIFICATE', new Uint8Array(anchorOf(first, everything).raw));
    if (!pems.includes(pem)) pems.push(pem);
  }
  return pems.join('');
}
