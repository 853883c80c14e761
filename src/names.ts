/**
 * Every name a user types or sees — annotation keys, event reasons, metric names, Secret
 * keys — defined once. Code and docs refer to these constants, never to string literals.
 */

export const ANNOTATION_PREFIX = 'cert-rotator.io/';

/** Annotations a user sets on a Secret (and `restart` on a workload). Read as input. */
export const Annotation = {
  enabled: 'cert-rotator.io/enabled',
  issuer: 'cert-rotator.io/issuer',
  renewBefore: 'cert-rotator.io/renew-before',
  duration: 'cert-rotator.io/duration',
  dnsNames: 'cert-rotator.io/dns-names',
  ipAddresses: 'cert-rotator.io/ip-addresses',
  uris: 'cert-rotator.io/uris',
  commonName: 'cert-rotator.io/common-name',
  keyAlgorithm: 'cert-rotator.io/key-algorithm',
  rotateKey: 'cert-rotator.io/rotate-key',
  restart: 'cert-rotator.io/restart',
  window: 'cert-rotator.io/window',
  windowDuration: 'cert-rotator.io/window-duration',
  windowTimezone: 'cert-rotator.io/window-timezone',
  /** An opaque token (`cert-rotator renew` writes an RFC 3339 time): renew once per new value. */
  renewRequestedAt: 'cert-rotator.io/renew-requested-at',
  /** On a `ca` issuer's CA Secret: name of a Secret (same namespace) holding the next CA. */
  nextCa: 'cert-rotator.io/next-ca',
  /** On a CA Secret: `"true"` holds the CA rollover where it is; removing it resumes. */
  rolloverPaused: 'cert-rotator.io/rollover-paused',
  /** `"true"`: the Secret holds a CA, issued by an issuer with `allowCA` (docs/ca-rollover.md). */
  isCa: 'cert-rotator.io/is-ca',
  /** With `is-ca`: the CA's basicConstraints path length (0 to 8); absent: none (a root) or the parent's less one. */
  caPathLength: 'cert-rotator.io/ca-path-length',
} as const;

/** Values of `status.cert-rotator.io/ca-rollover-phase` on a CA Secret, in order. */
export const RolloverPhase = {
  trust: 'Trust',
  propagate: 'Propagate',
  reissue: 'Reissue',
  retire: 'Retire',
} as const;
export type RolloverPhaseValue = (typeof RolloverPhase)[keyof typeof RolloverPhase];

/** Keys a CA rollover adds to the CA Secret's data next to tls.crt and tls.key. */
export const CaSecretKey = {
  /** The staged CA's certificate (never its key) while it is trusted but not yet signing. */
  nextCertificate: 'next.crt',
  /** The replaced CA's certificate, trusted until the rollover retires it. */
  previousCertificate: 'previous.crt',
  /** The replaced CA's key, deleted when the rollover retires it. */
  previousKey: 'previous.key',
} as const;

/**
 * Prefix of every status annotation added from version 0.2 on. Keys under it are never read as
 * input by any version: a replica that does not know one of them ignores it (its input check
 * looks at `cert-rotator.io/` keys only), so a rolling upgrade never makes an older replica
 * refuse a Secret that a newer one annotated.
 */
export const STATUS_ANNOTATION_PREFIX = 'status.cert-rotator.io/';

/** Annotations the controller writes on a Secret. Never read as input. */
export const StatusAnnotation = {
  state: 'cert-rotator.io/state',
  notAfter: 'cert-rotator.io/not-after',
  renewalTime: 'cert-rotator.io/renewal-time',
  lastRenewed: 'cert-rotator.io/last-renewed',
  lastError: 'cert-rotator.io/last-error',
  failures: 'cert-rotator.io/failures',
  revision: 'cert-rotator.io/revision',
  /** RFC 3339 time of the last failed attempt; with `failures` it rebuilds the backoff after a restart. */
  lastFailureTime: 'status.cert-rotator.io/last-failure-time',
  /**
   * RFC 3339 time before which the next attempt is not made: the backoff, or an issuer's
   * Retry-After when that is longer. Rebuilt after a restart with `failures` and `last-failure-time`.
   */
  nextAttemptTime: 'status.cert-rotator.io/next-attempt-time',
  /** The `renew-requested-at` value the controller has acted on. */
  renewRequestHandled: 'status.cert-rotator.io/renew-request-handled',
  /** Certificate hash that workloads using the Secret must still be rolled to (debounce, pause, window). */
  restartOwed: 'status.cert-rotator.io/restart-owed',
  /** Times (epoch seconds, comma-separated) of the ACME orders of the last hour: `maxOrdersPerHour`. */
  acmeOrders: 'status.cert-rotator.io/acme-orders',
  /**
   * Digest of the `ca.crt` written together with the current leaf. A `ca.crt` that differs from it
   * (a CA rollover widened or narrowed the trust) rolls the workloads; without it `ca.crt` is not
   * part of the rollout hash (Secrets written before this existed keep their hash).
   */
  trustBaseline: 'status.cert-rotator.io/trust-baseline',
  /** On a CA Secret: the rollover's phase (RolloverPhase); absent when none is under way. */
  caRolloverPhase: 'status.cert-rotator.io/ca-rollover-phase',
  /** On a CA Secret: RFC 3339 time the current phase began. */
  caRolloverPhaseSince: 'status.cert-rotator.io/ca-rollover-phase-since',
  /** On a CA Secret: RFC 3339 time the rollover began (also the renew token of its Reissue). */
  caRolloverStarted: 'status.cert-rotator.io/ca-rollover-started',
  /** On a CA Secret in Retire: the old CA is out of the trust; Secrets' ca.crt are being narrowed. */
  caRolloverRetired: 'status.cert-rotator.io/ca-rollover-retired',
  /**
   * On a CA Secret: the rollover was started because the CA was overwritten in place (no staged
   * CA); renewals are held in Trust and Propagate unless a leaf is about to expire.
   */
  caRolloverUnsafe: 'status.cert-rotator.io/ca-rollover-unsafe',
  /** On a CA Secret: SHA-256 of the CA certificate the rollover last saw active. */
  caFingerprint: 'status.cert-rotator.io/ca-fingerprint',
  /**
   * On a staged next-CA Secret that cert-rotator wrote: the name of the CA Secret it renews. Only
   * a Secret carrying it is overwritten by a later renewal; any other Secret of that name is left alone.
   */
  stagedFor: 'status.cert-rotator.io/staged-for',
} as const;

/** Values of the `state` status annotation. */
export const CertState = {
  ready: 'Ready',
  issuing: 'Issuing',
  failed: 'Failed',
} as const;
export type CertStateValue = (typeof CertState)[keyof typeof CertState];

/** Kubernetes Event reasons, on the Secret and on restarted workloads. */
export const EventReason = {
  renewed: 'Renewed',
  renewalFailed: 'RenewalFailed',
  rolloutTriggered: 'RolloutTriggered',
  rolloutSkipped: 'RolloutSkipped',
  invalidAnnotation: 'InvalidAnnotation',
  issuerNotAllowed: 'IssuerNotAllowed',
  /** Warning: time left crossed a notice threshold (`notices.thresholds`). */
  certificateExpiring: 'CertificateExpiring',
  /** Warning: the certificate has expired (a threshold of 0). */
  certificateExpired: 'CertificateExpired',
  /** A monitored object (not a TLS Secret) holds a value that should be certificates and cannot be read. */
  certificateUnreadable: 'CertificateUnreadable',
  /** On a CA Secret: a rollover began, moved to the next phase, or finished. */
  caRolloverPhase: 'CARolloverPhase',
  /** On a CA Secret: the staged CA cannot be used (Warning); nothing changed. */
  caRolloverRefused: 'CARolloverRefused',
  /** On a CA Secret: a phase waits longer than it should, or a Reissue wave failed (Warning). */
  caRolloverStalled: 'CARolloverStalled',
  /** On a CA Secret: a phase waits as configured (Reissue for a maintenance window, Retire for signed leaves to expire). */
  caRolloverWaiting: 'CARolloverWaiting',
  /** On a CA Secret: its CA was replaced in place (Warning); a rollover keeps the old one trusted. */
  caOverwritten: 'CAOverwritten',
  /** On a CA Secret: a trust bundle output cannot be written (API not served, refused) (Warning). */
  trustBundleUnavailable: 'TrustBundleUnavailable',
} as const;
export type EventReasonValue = (typeof EventReason)[keyof typeof EventReason];

export const METRIC_PREFIX = 'cert_rotator_';

/** Prometheus metric names (full names, prefix included). */
export const Metric = {
  certificateNotAfter: 'cert_rotator_certificate_not_after_timestamp_seconds',
  certificateNotBefore: 'cert_rotator_certificate_not_before_timestamp_seconds',
  certificateRenewalTime: 'cert_rotator_certificate_renewal_timestamp_seconds',
  certificateReady: 'cert_rotator_certificate_ready',
  renewalsTotal: 'cert_rotator_renewals_total',
  renewalDuration: 'cert_rotator_renewal_duration_seconds',
  rolloutsTotal: 'cert_rotator_rollouts_total',
  acmeRequestsTotal: 'cert_rotator_acme_requests_total',
  secretErrorsTotal: 'cert_rotator_secret_errors_total',
  csrRequestsTotal: 'cert_rotator_csr_requests_total',
  csrApprovalWait: 'cert_rotator_csr_approval_wait_seconds',
  sidecarCertificateNotAfter: 'cert_rotator_sidecar_certificate_not_after_timestamp_seconds',
  sidecarReloadsTotal: 'cert_rotator_sidecar_reloads_total',
  /** 1 on the replica that holds the leader Lease (or runs without leader election), else 0. */
  leader: 'cert_rotator_leader',
  /** Keys that need a run now, per work queue (`queue` label: a WorkQueueName). */
  workqueueDepth: 'cert_rotator_workqueue_depth',
  /** How long the key that has waited longest in a work queue has waited. */
  workqueueOldestItemAge: 'cert_rotator_workqueue_oldest_item_age_seconds',
  /** Requests to the Kubernetes API server by verb and HTTP status (`error`: no answer). */
  kubeApiRequestsTotal: 'cert_rotator_kube_api_requests_total',
  /** Webhook deliveries by webhook and result (`success`, `failure`, `dropped`). */
  notificationsTotal: 'cert_rotator_notifications_total',
  /** Every certificate the monitor reads outside TLS Secrets, one series per certificate of a bundle. */
  x509NotAfter: 'cert_rotator_x509_not_after_timestamp_seconds',
  x509NotBefore: 'cert_rotator_x509_not_before_timestamp_seconds',
  /** 1 per monitored object and key whose certificates cannot be read, with the reason. */
  x509ReadErrors: 'cert_rotator_x509_read_errors',
  podCertificateRequestsTotal: 'cert_rotator_podcertificate_requests_total',
  podCertificateIssueSeconds: 'cert_rotator_podcertificate_issue_seconds',
  /** 0 none, 1 Trust, 2 Propagate, 3 Reissue, 4 Retire. */
  caRolloverPhase: 'cert_rotator_ca_rollover_phase',
  caNotAfter: 'cert_rotator_ca_not_after_timestamp_seconds',
} as const;

/** Values of the `result` label of `podcertificate_requests_total`. */
export const PodCertificateResult = {
  /** The chain was written (Issued). */
  issued: 'issued',
  /** A Denied condition was written. */
  denied: 'denied',
  /** Left pending on purpose (the CA has less than the API's one-hour minimum left). */
  pending: 'pending',
  /** Another signer (a second replica) wrote first: nothing written. */
  conflict: 'conflict',
  /** A transient error; retried, never written as Failed. */
  error: 'error',
} as const;

/**
 * Reasons of the condition cert-rotator sets on a PodCertificateRequest; the kubelet shows the
 * reason and message in a Pod event. UnsupportedKeyType is the reason the API documents for a key
 * type a signer does not sign; InvalidUnverifiedUserAnnotations is for the keys the API asks
 * signers to refuse (unverifiedUserAnnotations they do not understand).
 */
export const PodCertificateReason = {
  issued: 'CertRotatorIssued',
  unsupportedKeyType: 'UnsupportedKeyType',
  invalidUserAnnotations: 'InvalidUnverifiedUserAnnotations',
  namespaceNotAllowed: 'CertRotatorNamespaceNotAllowed',
  serviceAccountNotAllowed: 'CertRotatorServiceAccountNotAllowed',
  identityNotAllowed: 'CertRotatorIdentityNotAllowed',
  invalidRequest: 'CertRotatorInvalidRequest',
} as const;

/** `alertname` of the alerts cert-rotator sends to webhooks (the chart's rules use the same names). */
export const AlertName = {
  renewalFailed: 'CertRotatorRenewalFailed',
  certificateExpiring: 'CertRotatorCertificateExpiring',
  certificateExpired: 'CertRotatorCertificateExpired',
} as const;

/** Values of the `queue` label of the work-queue metrics. */
export const WorkQueueName = {
  secrets: 'secrets',
  rollouts: 'rollouts',
  csrSigner: 'csr-signer',
} as const;
export type WorkQueueNameValue = (typeof WorkQueueName)[keyof typeof WorkQueueName];

/** Values of the `source` label of the x509 family: where a certificate was found. */
export const X509Source = {
  secret: 'secret',
  configMap: 'configmap',
  keystore: 'keystore',
  kubeconfig: 'kubeconfig',
  validatingWebhook: 'validatingwebhook',
  mutatingWebhook: 'mutatingwebhook',
  apiService: 'apiservice',
  crdConversion: 'crdconversion',
  file: 'file',
} as const;
export type X509SourceValue = (typeof X509Source)[keyof typeof X509Source];

/** Values of the `result` label of `csr_requests_total`. */
export const CsrResult = {
  issued: 'issued',
  denied: 'denied',
  failed: 'failed',
  timeout: 'timeout',
} as const;

/** Labels and annotations that tie a CertificateSigningRequest to the Secret it renews. */
export const CsrLink = {
  /** Label: the managed Secret's namespace. */
  secretNamespace: 'cert-rotator.io/secret-namespace',
  /** Label: the managed Secret's name. */
  secretName: 'cert-rotator.io/secret-name',
  /** Annotation: the managed Secret's uid (a recreated Secret does not inherit a pending CSR). */
  secretUid: 'cert-rotator.io/secret-uid',
} as const;

/** Values of the `method` label of `sidecar_reloads_total`: how the sidecar tells the application. */
export const ReloadMethod = {
  signal: 'signal',
  httpPost: 'http-post',
  exec: 'exec',
} as const;

/** Keys inside a `kubernetes.io/tls` Secret's data. */
export const SecretKey = {
  certificate: 'tls.crt',
  privateKey: 'tls.key',
  caCertificate: 'ca.crt',
} as const;

export const TLS_SECRET_TYPE = 'kubernetes.io/tls';

export type { KeyAlgorithm as KeyAlgorithmName } from './pki/key-algorithms.ts';
/**
 * Key algorithms a user may request with the `key-algorithm` annotation or config default.
 * Defined by the pki layer, which generates them (pki imports nothing of the project).
 */
export { KEY_ALGORITHMS } from './pki/key-algorithms.ts';

/** Workload kinds the `restart` annotation may list, as the user writes them. */
export const RESTART_KINDS = ['deployment', 'statefulset', 'daemonset'] as const;
export type RestartKind = (typeof RESTART_KINDS)[number];

/**
 * Written by the controller on a workload's pod template (`spec.template.metadata.annotations`):
 * a hash of the certificates of the managed Secrets the workload uses. Changing it is what
 * rolls the pods; finding it already equal is what keeps a restart from happening twice.
 */
export const PodTemplateAnnotation = {
  certificateHash: 'cert-rotator.io/certificate-hash',
} as const;

/** Value of `cert-rotator.io/restart` on a workload that must never be restarted. */
export const WORKLOAD_OPT_OUT = 'false';

/** Kubernetes kinds of the workloads cert-rotator restarts, by the name users write. */
export const WORKLOAD_KINDS = {
  deployment: 'Deployment',
  statefulset: 'StatefulSet',
  daemonset: 'DaemonSet',
} as const satisfies Record<RestartKind, string>;

/** Values of the `result` label of `rollouts_total` (its `kind` label is a RestartKind). */
export const RolloutResult = {
  /** The pod template was patched. */
  success: 'success',
  /** The patch failed (it is retried). */
  failure: 'failure',
  /** Not restarted on purpose: paused, opted out, `restart: none`, not found, unverified. */
  skipped: 'skipped',
  /** Waiting for the Secret's maintenance window. */
  deferred: 'deferred',
} as const;
export type RolloutResultValue = (typeof RolloutResult)[keyof typeof RolloutResult];

/** Environment variables cert-rotator reads (besides Kubernetes' KUBERNETES_SERVICE_HOST/PORT). */
export const EnvVar = {
  /** Directory of the in-cluster ServiceAccount's `token` and `ca.crt` (default: the kubelet's mount). */
  serviceAccountDir: 'CERT_ROTATOR_SERVICEACCOUNT_DIR',
} as const;

/**
 * ConfigMaps in cert-rotator's own namespace recording which expiry notices were sent, so a
 * restart or a new leader does not send them again: `<prefix>-0` … `<prefix>-7`, keyed by
 * `namespace.secret`. Never written on a user's object.
 */
export const NOTICE_RECORD_PREFIX = 'cert-rotator-notices';
export const NOTICE_RECORD_SHARDS = 8;

/**
 * The ConfigMap (in cert-rotator's namespace) where the pod certificate signer records, per CA
 * certificate (data key: its SHA-256), the latest notAfter of a pod certificate it signed.
 */
export const ISSUED_RECORD = {
  name: 'cert-rotator-pod-certificates-issued',
  descriptionAnnotation: 'cert-rotator.io/description',
  description:
    'Per CA certificate (data key: SHA-256 of its DER), the latest notAfter of a pod certificate cert-rotator signed with it. Kept until that time; read by a CA rollover.',
} as const;

/** The same record for the CSR signer (certificates.k8s.io CSRs of a `ca` issuer's `signer`). */
export const CSR_ISSUED_RECORD = {
  name: 'cert-rotator-csr-issued',
  description:
    'Per CA certificate (data key: SHA-256 of its DER), the latest notAfter of a certificate cert-rotator signed with it for a CertificateSigningRequest. Kept until that time; read by a CA rollover.',
} as const;

/** fieldManager of every write cert-rotator makes. */
export const FIELD_MANAGER = 'cert-rotator';

/**
 * Labels on every trust bundle cert-rotator writes (ConfigMaps and ClusterTrustBundles): a pod's
 * `clusterTrustBundle` projection selects by them, and `kubectl get -l` finds them.
 */
export const TrustBundleLabel = {
  /** The `ca` issuer whose trust set the bundle holds. */
  issuer: 'cert-rotator.io/trust-bundle-issuer',
  managedBy: 'app.kubernetes.io/managed-by',
} as const;
