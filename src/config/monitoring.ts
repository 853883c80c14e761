/**
 * The `monitoring` section: which certificates outside TLS Secrets the controller watches and
 * exports. Every source is off unless the file turns it on: each one widens what the controller
 * reads (and, for ConfigMaps and webhooks, the RBAC it needs), which an operator should choose.
 */
import { join, type Mapping, type Reader } from './reader.ts';
import type { SecretKeyRef } from './schema.ts';
import { readSecretKeyRef } from './secret-refs.ts';
import { namespaceProblem, secretDataKeyProblem } from './syntax.ts';

export const WEBHOOK_KINDS = [
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'APIService',
  'CustomResourceDefinition',
] as const;
export type WebhookKind = (typeof WEBHOOK_KINDS)[number];

interface NamespacedSource {
  enabled: boolean;
  /** Namespaces to read; 'all' (the default: the top-level `namespaces`). */
  namespaces: string[] | 'all';
  /** A Kubernetes label selector, passed to the API server. */
  labelSelector?: string;
  /** Globs over data keys (`*` any run of characters, `?` one). */
  keys: string[];
}

export interface SecretSourceConfig extends NamespacedSource {
  /** Secret types not read at all, filtered by the API server (`type!=...` field selectors). */
  excludeTypes: string[];
}

/** Where a keystore's password comes from: a key of the same Secret, or a key of another Secret. */
export type KeystorePassword = { key: string } | { secret: SecretKeyRef };

export interface MonitoringConfig {
  /**
   * Object labels copied onto the series: label key → metric label name (`label_` and the key
   * with every character outside [a-zA-Z0-9_] replaced by `_`, as kube-state-metrics names them).
   */
  copyLabels: Array<{ key: string; name: string }>;
  secrets: SecretSourceConfig;
  configMaps: NamespacedSource;
  keystores: SecretSourceConfig & { password?: KeystorePassword };
  kubeconfigs: SecretSourceConfig;
  webhooks: { enabled: boolean; labelSelector?: string; kinds: WebhookKind[] };
}

export const MONITORING_DEFAULTS = {
  /**
   * TLS Secrets are the controller's own source (their leaf is `certificate_*`); Helm releases
   * and service-account tokens are large or numerous and hold nothing worth watching here.
   */
  excludeTypes: ['kubernetes.io/tls', 'helm.sh/release.v1', 'kubernetes.io/service-account-token'],
  secretKeys: ['*.crt', '*.pem', '*.cer', '*.der'],
  configMapKeys: ['*.crt', '*.pem', '*.cer'],
  keystoreKeys: ['*.p12', '*.pfx', '*.jks', '*.jceks', 'keystore', 'truststore'],
  kubeconfigKeys: ['kubeconfig', '*.kubeconfig'],
} as const;

const KEY_GLOB = /^[-._a-zA-Z0-9*?]{1,253}$/;
const SELECTOR = /^[A-Za-z0-9_.\-/=!,() ]+$/;

export function readMonitoring(r: Reader, value: unknown, namespaces: string[] | 'all'): MonitoringConfig {
  const path = 'monitoring';
  const m =
    r.optionalMapping(value, path, [
      'copyLabels',
      'secrets',
      'configMaps',
      'keystores',
      'kubeconfigs',
      'webhooks',
    ]) ?? {};
  const copyLabels = readCopyLabels(r, m, path);
  const secretSource = (
    key: string,
    keys: readonly string[],
    extra: string[] = [],
  ): SecretSourceConfig & { m: Mapping } => {
    const at = join(path, key);
    const sm =
      r.optionalMapping(m[key], at, [
        'enabled',
        'namespaces',
        'labelSelector',
        'keys',
        'excludeTypes',
        ...extra,
      ]) ?? {};
    return {
      ...namespaced(r, sm, at, keys, namespaces),
      excludeTypes: readList(r, sm, 'excludeTypes', at, typeProblem, true) ?? [
        ...MONITORING_DEFAULTS.excludeTypes,
      ],
      m: sm,
    };
  };
  const { m: _s, ...secrets } = secretSource('secrets', MONITORING_DEFAULTS.secretKeys);
  const { m: km, ...keystoreBase } = secretSource('keystores', MONITORING_DEFAULTS.keystoreKeys, [
    'password',
  ]);
  const { m: _k, ...kubeconfigs } = secretSource('kubeconfigs', MONITORING_DEFAULTS.kubeconfigKeys);
  const password = readPassword(r, km, join(path, 'keystores'));
  const cmPath = join(path, 'configMaps');
  const cm =
    r.optionalMapping(m.configMaps, cmPath, ['enabled', 'namespaces', 'labelSelector', 'keys']) ?? {};
  const whPath = join(path, 'webhooks');
  const wh = r.optionalMapping(m.webhooks, whPath, ['enabled', 'labelSelector', 'kinds']) ?? {};
  const kinds = readList(r, wh, 'kinds', whPath, (k) =>
    (WEBHOOK_KINDS as readonly string[]).includes(k)
      ? undefined
      : `"${k}" must be one of ${WEBHOOK_KINDS.join(', ')}`,
  ) as WebhookKind[] | undefined;
  const whSelector = readSelector(r, wh, whPath);
  return {
    copyLabels,
    secrets,
    configMaps: namespaced(r, cm, cmPath, MONITORING_DEFAULTS.configMapKeys, namespaces),
    keystores: { ...keystoreBase, ...(password ? { password } : {}) },
    kubeconfigs,
    webhooks: {
      enabled: r.boolean(wh, 'enabled', whPath) ?? false,
      ...(whSelector ? { labelSelector: whSelector } : {}),
      kinds: kinds ? [...new Set(kinds)] : [...WEBHOOK_KINDS],
    },
  };
}

function namespaced(
  r: Reader,
  m: Mapping,
  path: string,
  defaultKeys: readonly string[],
  namespaces: string[] | 'all',
): NamespacedSource {
  const own = readList(r, m, 'namespaces', path, namespaceProblem);
  const selector = readSelector(r, m, path);
  return {
    enabled: r.boolean(m, 'enabled', path) ?? false,
    namespaces: own ? [...new Set(own)] : namespaces,
    ...(selector ? { labelSelector: selector } : {}),
    keys: readList(r, m, 'keys', path, (k) =>
      KEY_GLOB.test(k) ? undefined : `"${k}" is not a key glob (letters, digits, "-", "_", ".", "*", "?")`,
    ) ?? [...defaultKeys],
  };
}

function readSelector(r: Reader, m: Mapping, path: string): string | undefined {
  const text = r.string(m, 'labelSelector', path);
  if (text !== undefined && !SELECTOR.test(text)) {
    r.report(join(path, 'labelSelector'), `"${text}" is not a label selector (e.g. "team=a,tier!=test")`);
    return undefined;
  }
  return text;
}

function readList(
  r: Reader,
  m: Mapping,
  key: string,
  path: string,
  problem: (item: string) => string | undefined,
  allowEmpty = false,
): string[] | undefined {
  if (allowEmpty && Array.isArray(m[key]) && (m[key] as unknown[]).length === 0) return [];
  return r.stringList(m, key, path, problem);
}

function typeProblem(t: string): string | undefined {
  return /^[-._a-zA-Z0-9/]{1,253}$/.test(t) ? undefined : `"${t}" is not a Secret type`;
}

function readPassword(r: Reader, m: Mapping, path: string): KeystorePassword | undefined {
  const at = join(path, 'password');
  if (m.password === undefined || m.password === null) return undefined;
  const pm = r.mapping(m.password, at, ['key', 'secret']);
  if (!pm) return undefined;
  if ((pm.key === undefined) === (pm.secret === undefined)) {
    r.report(at, 'needs exactly one of key (a key of the same Secret) or secret (namespace, name, key)');
    return undefined;
  }
  if (pm.key !== undefined) {
    const key = r.string(pm, 'key', at);
    const problem = key === undefined ? undefined : secretDataKeyProblem(key);
    if (problem) r.report(join(at, 'key'), problem);
    return key === undefined || problem ? undefined : { key };
  }
  const secret = readSecretKeyRef(r, pm, 'secret', at);
  return secret ? { secret } : undefined;
}

const LABEL_KEY =
  /^(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** The metric label name an object label is copied to. */
export function copiedLabelName(key: string): string {
  return `label_${key.replace(/[^a-zA-Z0-9_]/g, '_')}`;
}

function readCopyLabels(r: Reader, m: Mapping, path: string): Array<{ key: string; name: string }> {
  const keys = readList(r, m, 'copyLabels', path, (k) =>
    LABEL_KEY.test(k) ? undefined : `"${k}" is not a Kubernetes label key`,
  );
  if (!keys) return [];
  const out: Array<{ key: string; name: string }> = [];
  const byName = new Map<string, string>();
  for (const key of new Set(keys)) {
    const name = copiedLabelName(key);
    const other = byName.get(name);
    if (other !== undefined) {
      r.report(
        join(path, 'copyLabels'),
        `"${other}" and "${key}" would both become the metric label ${name}`,
      );
      continue;
    }
    byName.set(name, key);
    out.push({ key, name });
  }
  return out;
}
