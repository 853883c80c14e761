/**
 * The pod certificate signer's rules (pure but for verifying signatures): which key a
 * PodCertificateRequest certifies, which identity the issuer's templates give the pod, whether
 * the issuer's allow-lists allow it, and the validity and refresh times the API accepts.
 *
 * Everything in a PCR is untrusted input. The identity is built only from fields the API server
 * fills and checks for the kubelet (namespace, pod name and UID, ServiceAccount name and UID,
 * node name) and from an unverifiedUserAnnotations key that a template names explicitly; the
 * stub PKCS#10 request's own subject and extensions are never read.
 */
import { createPublicKey, constants as cryptoConstants, verify } from 'node:crypto';
import {
  ANNOTATION_PLACEHOLDER_PREFIX,
  annotationKeysOf,
  TEMPLATE_PLACEHOLDER,
} from '../config/pod-certificates.ts';
import type { IssuerConfig, PodCertificatesConfig } from '../config/schema.ts';
import type { PcrView } from '../kube/pcr-api.ts';
import { PodCertificateReason } from '../names.ts';
import type { Identity } from '../pki/index.ts';
import { isPkiError, keyAlgorithmOfSpki, parseCsr } from '../pki/index.ts';
import { checkIdentity, dnsGlobMatch } from '../policy/identity.ts';
import { formatDuration } from '../policy/renewal.ts';

/** The API's rules for an issued PCR (pkg/apis/certificates/validation, 1.36). */
export const PCR_MIN_LIFETIME_S = 3_600;
export const PCR_REFRESH_MARGIN_S = 600;
/** How far notBefore is backdated: the API wants it within 5 minutes of its own clock. */
export const PCR_BACKDATE_S = 240;

export type Denial = { reason: string; message: string };

export type KeyResult = { ok: true; spki: Uint8Array; keyType: string } | { ok: false; denial: Denial };

const KEY_TYPE_OF: Record<string, string> = {
  'ecdsa-p256': 'ECDSAP256',
  'ecdsa-p384': 'ECDSAP384',
  'rsa-3072': 'RSA3072',
  'rsa-4096': 'RSA4096',
  ed25519: 'ED25519',
};

function where(issuer: IssuerConfig, cfg: PodCertificatesConfig): string {
  return `cert-rotator issuer "${issuer.name}" (signer ${cfg.signerName})`;
}

/**
 * The public key to certify: from spec.stubPKCS10Request (its signature verified here again),
 * or from the deprecated spec.pkixPublicKey with its proof of possession over the pod UID.
 */
export async function requestKey(
  issuer: IssuerConfig,
  cfg: PodCertificatesConfig,
  pcr: PcrView,
): Promise<KeyResult> {
  const deny = (reason: string, message: string): KeyResult => ({
    ok: false,
    denial: { reason, message: `${where(issuer, cfg)}: ${message}` },
  });
  const supported = `supported key types: ${cfg.keyTypes.join(', ')}`;
  let spki: Uint8Array;
  let proven: () => Promise<boolean>;
  if (pcr.stubPKCS10Request) {
    let parsed: Awaited<ReturnType<typeof parseCsr>>;
    try {
      parsed = await parseCsr(pcr.stubPKCS10Request);
    } catch (err) {
      return deny(
        PodCertificateReason.invalidRequest,
        `spec.stubPKCS10Request cannot be read (${isPkiError(err) ? err.message : 'malformed'})`,
      );
    }
    spki = parsed.spki;
    proven = async () => parsed.signatureValid;
  } else if (pcr.pkixPublicKey && pcr.proofOfPossession) {
    spki = pcr.pkixPublicKey;
    const pop = pcr.proofOfPossession;
    proven = async () => proofOfPossessionValid(spki, pcr.podUID, pop);
  } else {
    return deny(PodCertificateReason.invalidRequest, 'the request carries no public key');
  }
  let algorithm: string;
  try {
    algorithm = keyAlgorithmOfSpki(spki);
  } catch {
    algorithm = 'unknown';
  }
  const keyType = KEY_TYPE_OF[algorithm];
  if (keyType === undefined || !cfg.keyTypes.includes(keyType)) {
    const what = keyType ?? describeUnknownKey(spki);
    return deny(
      PodCertificateReason.unsupportedKeyType,
      `key type ${what} is not signed here (${supported})`,
    );
  }
  if (!(await proven())) {
    return deny(
      PodCertificateReason.invalidRequest,
      'the request is not signed by the key it names (no proof of possession)',
    );
  }
  return { ok: true, spki, keyType };
}

function describeUnknownKey(spki: Uint8Array): string {
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    const details = key.asymmetricKeyDetails;
    if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'secp521r1') return 'ECDSAP521';
    if (key.asymmetricKeyType === 'rsa' && details?.modulusLength) return `RSA${details.modulusLength}`;
    return key.asymmetricKeyType?.toUpperCase() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The deprecated proof: a signature over the ASCII pod UID, as the API server checks it. */
function proofOfPossessionValid(spki: Uint8Array, podUID: string, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
    const data = Buffer.from(podUID, 'ascii');
    switch (key.asymmetricKeyType) {
      case 'ed25519':
        return verify(null, data, key, signature);
      case 'ec':
        return verify('sha256', data, { key, dsaEncoding: 'der' }, signature);
      case 'rsa':
        return verify(
          'sha256',
          data,
          {
            key,
            padding: cryptoConstants.RSA_PKCS1_PSS_PADDING,
            saltLength: cryptoConstants.RSA_PSS_SALTLEN_AUTO,
          },
          signature,
        );
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/** A value an annotation may put into a template: one DNS label, so it cannot add a path or label. */
const ANNOTATION_VALUE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export type IdentityResult = { ok: true; identity: Identity } | { ok: false; denial: Denial };

/**
 * The pod's identity from the templates, checked against the block's allow-lists and then the
 * issuer's (namespace and every name).
 */
export function podIdentity(issuer: IssuerConfig, cfg: PodCertificatesConfig, pcr: PcrView): IdentityResult {
  const deny = (reason: string, message: string): IdentityResult => ({
    ok: false,
    denial: { reason, message: `${where(issuer, cfg)}: ${message}` },
  });
  const known = annotationKeysOf([...cfg.uris, ...cfg.dnsNames]);
  const annotations = pcr.unverifiedUserAnnotations;
  const unknown = Object.keys(annotations)
    .filter((k) => !known.includes(k))
    .sort();
  if (unknown.length > 0) {
    return deny(
      PodCertificateReason.invalidUserAnnotations,
      `unverifiedUserAnnotations key ${unknown.map((k) => JSON.stringify(k)).join(', ')} is not understood (${known.length ? `known: ${known.join(', ')}` : 'this signer reads none'})`,
    );
  }
  for (const [k, v] of Object.entries(annotations)) {
    if (!ANNOTATION_VALUE.test(v)) {
      return deny(
        PodCertificateReason.invalidUserAnnotations,
        `unverifiedUserAnnotations ${JSON.stringify(k)} must be one DNS label (lowercase letters, digits, "-"), got ${JSON.stringify(v.slice(0, 80))}`,
      );
    }
  }
  const ns = pcr.namespace;
  const allow = cfg.allow;
  if (!allow.namespaces.some((p) => dnsGlobMatch(p, ns))) {
    return deny(
      PodCertificateReason.namespaceNotAllowed,
      `namespace "${ns}" is not allowed (podCertificates.allow.namespaces: ${allow.namespaces.join(', ')})`,
    );
  }
  const sa = pcr.serviceAccountName;
  const saAllowed = allow.serviceAccounts.some((p) => {
    const slash = p.indexOf('/');
    if (slash < 0) return wholeGlobMatch(p, sa);
    return dnsGlobMatch(p.slice(0, slash), ns) && wholeGlobMatch(p.slice(slash + 1), sa);
  });
  if (!saAllowed) {
    return deny(
      PodCertificateReason.serviceAccountNotAllowed,
      `ServiceAccount ${ns}/${sa} is not allowed (podCertificates.allow.serviceAccounts: ${allow.serviceAccounts.join(', ')})`,
    );
  }
  const values: Record<string, string> = {
    namespace: ns,
    podname: pcr.podName,
    poduid: pcr.podUID.toLowerCase(),
    serviceaccount: sa,
    serviceaccountuid: pcr.serviceAccountUID.toLowerCase(),
    nodename: pcr.nodeName,
  };
  const fill = (templates: readonly string[]): { names: string[]; missing?: string } => {
    const names: string[] = [];
    for (const t of templates) {
      let missing: string | undefined;
      const out = t.replace(TEMPLATE_PLACEHOLDER, (_, inner: string) => {
        const v = inner.startsWith(ANNOTATION_PLACEHOLDER_PREFIX)
          ? annotations[inner.slice(ANNOTATION_PLACEHOLDER_PREFIX.length)]
          : values[inner];
        if (v === undefined || v === '') missing ??= inner;
        return v ?? '';
      });
      // A template whose annotation the pod did not set is left out; any other gap is an error.
      if (missing === undefined) names.push(out);
      else if (!missing.startsWith(ANNOTATION_PLACEHOLDER_PREFIX)) return { names, missing };
    }
    return { names: [...new Set(names)] };
  };
  const uris = fill(cfg.uris);
  const dnsNames = fill(cfg.dnsNames);
  const gap = uris.missing ?? dnsNames.missing;
  if (gap !== undefined) {
    return deny(PodCertificateReason.identityNotAllowed, `the request has no value for {${gap}}`);
  }
  const badDns = dnsNames.names.find((n) => !isDnsName(n));
  if (badDns !== undefined) {
    return deny(PodCertificateReason.identityNotAllowed, `"${badDns}" is not a valid DNS name`);
  }
  if (uris.names.length + dnsNames.names.length === 0) {
    return deny(PodCertificateReason.identityNotAllowed, 'the templates give this pod no name at all');
  }
  const identity: Identity = { dnsNames: dnsNames.names, ipAddresses: [], uris: uris.names };
  const permission = checkIdentity(issuer, ns, identity);
  if (!permission.allowed) {
    const reason =
      permission.part === 'namespace'
        ? PodCertificateReason.namespaceNotAllowed
        : PodCertificateReason.identityNotAllowed;
    return deny(reason, permission.reason);
  }
  return { ok: true, identity };
}

/** A ServiceAccount-name glob over the whole name (names may contain dots). */
function wholeGlobMatch(pattern: string, value: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\-]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '[^/]')}$`,
  );
  return re.test(value);
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
function isDnsName(name: string): boolean {
  return name.length <= 253 && name.split('.').every((l) => DNS_LABEL.test(l));
}

export type ValidityPlan =
  | { ok: true; notBefore: number; notAfter: number; beginRefreshAt: number; limitedBy: string }
  | { ok: false; message: string };

/**
 * notBefore (backdated), notAfter and beginRefreshAt, in whole seconds (ms values): the
 * lifetime is the least of the request's maxExpirationSeconds, the block's maxDuration and what
 * is left of the CA; less than the API's hour is no certificate at all.
 */
export function planValidity(input: {
  now: number;
  maxExpirationSeconds: number;
  maxDurationMs: number;
  caNotAfter: number;
  refreshAtFraction: number;
}): ValidityPlan {
  const notBeforeS = Math.floor(input.now / 1000) - PCR_BACKDATE_S;
  const limits: Array<[number, string]> = [
    [input.maxExpirationSeconds, `spec.maxExpirationSeconds ${input.maxExpirationSeconds}`],
    [Math.floor(input.maxDurationMs / 1000), `maxDuration ${formatDuration(input.maxDurationMs)}`],
    [Math.floor(input.caNotAfter / 1000) - notBeforeS, 'the CA certificate expiry'],
  ];
  let [lifeS, limitedBy] = limits[0] as [number, string];
  for (const [s, why] of limits) if (s < lifeS) [lifeS, limitedBy] = [s, why];
  if (lifeS < PCR_MIN_LIFETIME_S) {
    return {
      ok: false,
      message: `a pod certificate must live at least 1h, but ${limitedBy} leaves ${Math.max(0, lifeS)}s`,
    };
  }
  const notAfterS = notBeforeS + lifeS;
  const wantedS = notBeforeS + Math.round(lifeS * input.refreshAtFraction);
  const refreshS = Math.min(
    Math.max(wantedS, notBeforeS + PCR_REFRESH_MARGIN_S),
    notAfterS - PCR_REFRESH_MARGIN_S,
  );
  return {
    ok: true,
    notBefore: notBeforeS * 1000,
    notAfter: notAfterS * 1000,
    beginRefreshAt: refreshS * 1000,
    limitedBy,
  };
}

/** Usages of a pod certificate: TLS server and client (key encipherment for RSA keys too). */
export function podCertificateUsages(keyType: string): string[] {
  return [
    'digital signature',
    ...(keyType.startsWith('RSA') ? ['key encipherment'] : []),
    'server auth',
    'client auth',
  ];
}
