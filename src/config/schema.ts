/**
 * The shape of a loaded configuration: every default applied, every duration in ms.
 * The YAML file uses the same key names (durations as strings such as "10h").
 */

import type { KeyAlgorithmName } from '../names.ts';
import type { RenewBefore } from '../policy/renewal.ts';
import type { Window } from '../policy/windows.ts';
import type { LabelSelectorConfig } from './label-selector.ts';
import type { MonitoringConfig } from './monitoring.ts';

export interface SecretRef {
  namespace: string;
  name: string;
}

export interface SecretKeyRef extends SecretRef {
  key: string;
}

export interface DefaultsConfig {
  /** Issuer for Secrets without an `issuer` annotation. Absent: that annotation is required. */
  issuer?: string;
  renewBefore: RenewBefore;
  keyAlgorithm: KeyAlgorithmName;
  restart: 'auto' | 'none';
  /** Requested lifetime for Secrets without a `duration` annotation; absent: the issuer's default. */
  durationMs?: number;
}

export interface CAIssuerConfig {
  /** A kubernetes.io/tls Secret holding the CA certificate and key. */
  secret: SecretRef;
  /** How a staged next CA replaces this one (docs/ca-rollover.md). */
  rollover: CARolloverConfig;
}

/** Timings of a CA rollover: Trust → Propagate → Reissue → Retire. */
export interface CARolloverConfig {
  /** false: no rollover for this issuer (a staged or overwritten CA is not acted on). */
  enabled: boolean;
  /** Least time in Propagate, for readers the controller cannot see (sidecars, outside the cluster). */
  trustPropagationMs: number;
  /** Longest wait in Propagate for the workloads to roll out. */
  maxWaitMs: number;
  /** After maxWait: `continue` with a Warning event, or `hold` until the workloads have rolled. */
  onMaxWait: 'continue' | 'hold';
  /** Leaves asked to be re-issued per minute in Reissue. */
  reissuePerMinute: number;
  /** Reissue asks for renewals only inside one of these (empty: any time). */
  reissueWindows: Window[];
  /** How long the old CA stays trusted after the last leaf moved to the new one. */
  retireAfterMs: number;
  /** How often the rollover looks at the CA Secret (a staged CA is noticed within this). */
  checkIntervalMs: number;
}

export interface Rfc2136Config {
  /** `host:port` (port defaults to 53); an IPv6 host is bracketed: `[fd00::53]:53`. */
  nameserver: string;
  /** TSIG is optional as a whole: either both key name and secret, or neither. */
  tsig?: { keyName: string; algorithm: 'hmac-sha256' | 'hmac-sha512'; secret: SecretKeyRef };
}

export interface SolverSelector {
  dnsZones?: string[];
  dnsNames?: string[];
}

/** HTTP-01 answered by the controller's own listener; every field optional (defaults at use). */
export interface Http01SolverConfig {
  /** `[host]:port` of the solver listener; default ":8089". */
  address?: string;
  /** IP the challenge Service's EndpointSlice points at; default: the POD_IP environment variable. */
  podIP?: string;
  /** Create the short-lived Service + EndpointSlice + Ingress per issuance; default true. */
  ingress?: boolean;
  ingressClassName?: string;
  ingressAnnotations?: Record<string, string>;
}

export type AcmeSolverConfig =
  | ({ kind: 'http01'; selector?: SolverSelector } & Http01SolverConfig)
  | { kind: 'dns01'; rfc2136: Rfc2136Config; selector?: SolverSelector };

export interface AcmeIssuerConfig {
  /** Directory URL (https). */
  server: string;
  email?: string;
  /** Holds the ACME account key; created if absent. */
  accountKeySecret: SecretRef;
  externalAccountBinding?: { keyId: string; hmacKeySecret: SecretKeyRef };
  solvers: AcmeSolverConfig[];
  /** PEM bundle to trust for the ACME server instead of the system roots. */
  caBundle?: string;
  /** New orders per managed Secret in any sliding hour; more wait (IssuerError with retryAfterMs). */
  maxOrdersPerHour: number;
  /** Ask the CA's renewalInfo (ARI, RFC 9773) when its directory offers it; default true. */
  ari: boolean;
}

export interface KubernetesCSRIssuerConfig {
  signerName: string;
  /** Approve the CSR through the `approval` subresource (needs `approve` on the signer). */
  autoApprove: boolean;
  /** Requested lifetime (spec.expirationSeconds); absent: the Secret's duration, else the signer's choice. */
  expirationSeconds?: number;
  /** spec.usages; the default depends on the signer (see config/csr.ts `defaultUsages`). */
  usages: string[];
  /** A CSR neither issued nor refused after this long is deleted and the renewal fails. */
  approvalTimeoutMs: number;
  /**
   * How long one attempt waits on a CSR it has just created (or approved) before it frees its
   * worker and the controller looks again later (the CSR is resumed, not created again).
   */
  approvalHoldMs: number;
  /** PEM written to ca.crt (and the chain verified against). */
  caBundle?: string;
  caBundleFrom?: { configMap: { namespace: string; name: string; key: string } };
}

/** A `ca` issuer that also signs CertificateSigningRequests for `signerName`. */
export interface CsrSignerConfig {
  signerName: string;
  /** Longest certificate it signs; a longer (or absent) expirationSeconds is capped to it. */
  maxDurationMs: number;
  /** Usages a request may ask for (a subset of digital signature, key encipherment, server auth, client auth). */
  allowedUsages: string[];
}

/**
 * PodCertificateRequests (KEP-4317) the issuer signs: the kubelet asks for a pod's key and
 * certificate with a `podCertificate` volume naming `signerName`.
 */
export interface PodCertificatesConfig {
  signerName: string;
  /** Longest leaf it issues; a PCR's maxExpirationSeconds may only shorten it. */
  maxDurationMs: number;
  /** When the kubelet should refresh, as a fraction of the lifetime after notBefore (0.7 = "70%"). */
  refreshAtFraction: number;
  /** Who may have a certificate: globs of namespaces, and of ServiceAccounts (`name` or `namespace/name`). */
  allow: { namespaces: string[]; serviceAccounts: string[] };
  /** URI SAN templates (placeholders: see POD_CERTIFICATE_PLACEHOLDERS in config/pod-certificates.ts). */
  uris: string[];
  /** DNS SAN templates, same placeholders. */
  dnsNames: string[];
  /** Key types it signs; any other is denied with UnsupportedKeyType. */
  keyTypes: string[];
}

/** Which requests the signer's approver approves (every other request for it is denied). */
export interface CsrApproveConfig {
  serviceAccounts: {
    /** Globs of the requesting ServiceAccount's namespace. */
    namespaces: string[];
    /** URI SAN templates with {namespace}, {serviceaccount}. */
    uris: string[];
    /** DNS SAN templates with {namespace}, {serviceaccount}, {podname}. */
    dnsNames: string[];
  };
}

interface IssuerCommon {
  name: string;
  /** Default requested lifetime; 90 days for ca and selfSigned, absent for acme (the server decides). */
  durationMs?: number;
  /** Globs; default ["*"]. */
  allowedNamespaces: string[];
  /**
   * Identity allow-lists (see policy/identity.ts). None set: any name. One or more set: each
   * kind of name only through its own list; a kind without a list is refused.
   */
  /** DNS globs. */
  allowedDomains?: string[];
  /** CIDRs for IP SANs. */
  allowedIPs?: string[];
  /** Globs over the whole URI (`*` stays within one path segment: never `/`, `?`, `#`, `%`). */
  allowedURIs?: string[];
  /** Globs over the whole common name (`:` allowed; `system:` only when listed explicitly). */
  allowedCommonNames?: string[];
  /** Same form, for subject organizations (only CSRs to cert-rotator's signer carry them). */
  allowedOrganizations?: string[];
  /** Name of another issuer to use when this one fails. */
  fallback?: string;
  /** Consecutive failures of a Secret after which `fallback` issues for it; default 3. */
  fallbackAfter?: number;
  /**
   * `true`: Secrets annotated `is-ca` get CA certificates from this issuer (selfSigned: a root,
   * ca: an intermediate). Absent: such a Secret is refused. Never set on acme or kubernetesCSR.
   */
  allowCA?: boolean;
}

export type IssuerKind = 'ca' | 'selfSigned' | 'acme' | 'kubernetesCSR';

export type IssuerConfig = IssuerCommon &
  (
    | {
        kind: 'ca';
        ca: CAIssuerConfig;
        signer?: CsrSignerConfig;
        approve?: CsrApproveConfig;
        podCertificates?: PodCertificatesConfig;
      }
    | { kind: 'selfSigned' }
    | { kind: 'acme'; acme: AcmeIssuerConfig }
    | { kind: 'kubernetesCSR'; kubernetesCSR: KubernetesCSRIssuerConfig }
  );

/**
 * An issuer's trust set (its CA, both CAs during a rollover) published as a ConfigMap key in
 * namespaces (listed and/or selected by label) and/or as a ClusterTrustBundle.
 */
export interface TrustBundleConfig {
  /** A `ca` issuer. */
  issuer: string;
  /** `key` defaults to `ca.crt`. */
  configMap?: { name: string; key: string };
  namespaces: string[];
  namespaceSelector?: LabelSelectorConfig;
  /** `name` is complete (defaulted); with `signerName` it starts with the signer name, `/` → `:`, then `:`. */
  clusterTrustBundle?: { name: string; signerName?: string };
}

export interface LeaderElectionConfig {
  enabled: boolean;
  /** Absent: the namespace the controller runs in. */
  namespace?: string;
  leaseName: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface Config {
  defaults: DefaultsConfig;
  issuers: IssuerConfig[];
  /** Namespaces to watch, or 'all'. */
  namespaces: string[] | 'all';
  resyncIntervalMs: number;
  /** Secrets reconciled in parallel. */
  concurrency: number;
  /** `[host]:port` of the metrics and health server. */
  metrics: { address: string };
  leaderElection: LeaderElectionConfig;
  rollout: { debounceMs: number };
  /** Client-side rate limit of API requests, as client-go's QPS and Burst (qps 0 = unlimited). */
  kubeAPI: { qps: number; burst: number };
  /** Per-Secret backoff between failed renewals: first delay and cap (grows ×3, jittered). */
  renewalBackoff: { baseMs: number; capMs: number };
  /** The read-only status page at `/` on the metrics port (on by default). */
  ui: { enabled: boolean };
  /**
   * Warning Events when a certificate's time left crosses a threshold (the chart renders the
   * thresholds from its alert rules' days). Once per threshold per certificate; a managed
   * certificate only once its renewal is overdue.
   */
  notices: { enabled: boolean; thresholdsMs: number[]; checkIntervalMs: number; graceMs: number };
  /** Alerts to Alertmanager (v2 API) or plain JSON webhooks; none by default. */
  notifications: {
    webhooks: Array<{ name: string; url: string; format: 'alertmanager' | 'json'; timeoutMs: number }>;
    resendIntervalMs: number;
  };
  /** Certificates outside TLS Secrets (config/monitoring.ts); every source off by default. */
  monitoring: MonitoringConfig;
  /** Where `ca` issuers' trust sets are published (docs/ca-rollover.md). */
  trustBundles: TrustBundleConfig[];
}

export const CONFIG_DEFAULTS = {
  keyAlgorithm: 'ecdsa-p256',
  restart: 'auto',
  issuerDuration: '90d',
  allowedNamespaces: ['*'],
  resyncInterval: '10h',
  concurrency: 4,
  maxConcurrency: 64,
  metricsAddress: ':9402',
  leaseName: 'cert-rotator',
  leaseDuration: '15s',
  renewDeadline: '10s',
  retryPeriod: '2s',
  rolloutDebounce: '5s',
  rfc2136Port: 53,
  tsigAlgorithm: 'hmac-sha256',
  http01Address: ':8089',
  minExpirationSeconds: 600,
  csrApprovalTimeout: '15m',
  csrApprovalHold: '20s',
  signerMaxDuration: '24h',
  podCertificateMaxDuration: '24h',
  podCertificateRefreshAt: '70%',
  minCertificateDuration: '1h',
  fallbackAfter: 3,
  acmeMaxOrdersPerHour: 5,
  kubeApiQps: 300,
  kubeApiBurst: 600,
  renewalBackoffBase: '5m',
  renewalBackoffCap: '32h',
  /** The chart's expiringSoon and expiringCritical days, and expiry. */
  noticeThresholds: ['14d', '7d', '0'],
  noticeCheckInterval: '1m',
  /** The chart's alert rules' `for:`. */
  noticeGrace: '15m',
  rolloverTrustPropagation: '5m',
  rolloverMaxWait: '1h',
  rolloverReissuePerMinute: 60,
  rolloverRetireAfter: '24h',
  rolloverCheckInterval: '30s',
} as const;

export function findIssuer(config: Pick<Config, 'issuers'>, name: string): IssuerConfig | undefined {
  return config.issuers.find((issuer) => issuer.name === name);
}
