/**
 * Loads the configuration file: YAML text in, a fully defaulted Config out, or a ConfigError
 * that names every bad path at once.
 */
import { parseDocument } from 'yaml';
import { parseListenAddress } from '../listen-address.ts';
import { KEY_ALGORITHMS, type KeyAlgorithmName } from '../names.ts';
import { DEFAULT_RENEW_BEFORE, parseDuration, parseRenewBefore } from '../policy/renewal.ts';
import { dropUndefined } from './drop-undefined.ts';
import { checkFallbacks, parseCertificateDuration, rawIssuerNames, readIssuers } from './issuers.ts';
import { readMonitoring } from './monitoring.ts';
import { type ConfigIssue, join, type Mapping, Reader } from './reader.ts';
import { CONFIG_DEFAULTS, type Config, type DefaultsConfig, type LeaderElectionConfig } from './schema.ts';
import { namespaceProblem, objectNameProblem } from './syntax.ts';
import { readTrustBundles } from './trust-bundles.ts';

export type { ConfigIssue } from './reader.ts';

/** The configuration is invalid. `message` has one `path: problem` line per issue. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(issues.map((issue) => `${issue.path}: ${issue.message}`).join('\n'));
    this.issues = issues;
  }
}

const TOP_KEYS = [
  'defaults',
  'issuers',
  'namespaces',
  'resyncInterval',
  'concurrency',
  'metrics',
  'leaderElection',
  'rollout',
  'renewalBackoff',
  'kubeAPI',
  'ui',
  'notices',
  'notifications',
  'monitoring',
  'trustBundles',
];

export function loadConfig(yamlText: string): Config {
  const doc = parseDocument(yamlText, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((error) => ({
        path: '(file)',
        message: (error.message.split('\n')[0] ?? '').trim().replace(/:$/, ''),
      })),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError([{ path: '(file)', message: err instanceof Error ? err.message : String(err) }]);
  }
  const r = new Reader();
  const config = readConfig(r, data ?? {});
  if (r.issues.length > 0 || !config) throw new ConfigError(r.issues);
  return config;
}

function readConfig(r: Reader, data: unknown): Config | undefined {
  const root = r.mapping(data, '', TOP_KEYS);
  if (!root) return undefined;
  const issuerNames = rawIssuerNames(root.issuers);

  const defaults = readDefaults(r, root.defaults, issuerNames);
  const issuers = readIssuers(r, root.issuers);
  checkFallbacks(r, root.issuers);

  const namespaceList = r.stringList(root, 'namespaces', '', namespaceProblem);
  const resyncIntervalMs =
    r.parsed(root, 'resyncInterval', '', (text) => atLeast(text, '1m')) ??
    parseDuration(CONFIG_DEFAULTS.resyncInterval);
  const concurrency =
    r.integer(root, 'concurrency', '', 1, CONFIG_DEFAULTS.maxConcurrency) ?? CONFIG_DEFAULTS.concurrency;

  const metricsMap = r.optionalMapping(root.metrics, 'metrics', ['address']) ?? {};
  const address = r.string(metricsMap, 'address', 'metrics') ?? CONFIG_DEFAULTS.metricsAddress;
  if (!isListenAddress(address)) {
    r.report('metrics.address', `"${address}" must be [host]:port, e.g. ":9402" or "127.0.0.1:9402"`);
  }

  const leaderElection = readLeaderElection(r, root.leaderElection);
  const rolloutMap = r.optionalMapping(root.rollout, 'rollout', ['debounce']) ?? {};
  const debounceMs =
    r.parsed(rolloutMap, 'debounce', 'rollout', (text) => parseDuration(text, { allowZero: true })) ??
    parseDuration(CONFIG_DEFAULTS.rolloutDebounce);

  const renewalBackoff = readRenewalBackoff(r, root.renewalBackoff);
  const kubeMap = r.optionalMapping(root.kubeAPI, 'kubeAPI', ['qps', 'burst']) ?? {};
  const kubeAPI = {
    qps: r.integer(kubeMap, 'qps', 'kubeAPI', 0, 100_000) ?? CONFIG_DEFAULTS.kubeApiQps,
    burst: r.integer(kubeMap, 'burst', 'kubeAPI', 1, 100_000) ?? CONFIG_DEFAULTS.kubeApiBurst,
  };

  const uiMap = r.optionalMapping(root.ui, 'ui', ['enabled']) ?? {};
  const ui = { enabled: r.boolean(uiMap, 'enabled', 'ui') ?? true };
  const notices = readNotices(r, root.notices);
  const notifications = readNotifications(r, root.notifications);
  const namespaces = namespaceList ? [...new Set(namespaceList)] : 'all';
  const monitoring = readMonitoring(r, root.monitoring, namespaces);
  const caIssuers = new Set(issuers.filter((i) => i.kind === 'ca').map((i) => i.name));
  const noRollover = new Set(
    issuers.filter((i) => i.kind === 'ca' && !i.ca.rollover.enabled).map((i) => i.name),
  );
  const trustBundles = readTrustBundles(r, root.trustBundles, caIssuers, noRollover);

  if (!defaults) return undefined;
  return {
    defaults,
    issuers,
    namespaces,
    resyncIntervalMs,
    concurrency,
    metrics: { address },
    leaderElection,
    rollout: { debounceMs },
    renewalBackoff,
    kubeAPI,
    ui,
    notices,
    notifications,
    monitoring,
    trustBundles,
  };
}

function readNotifications(r: Reader, value: unknown): Config['notifications'] {
  const path = 'notifications';
  const m = r.optionalMapping(value, path, ['webhooks', 'resendInterval']) ?? {};
  const resend = r.parsed(m, 'resendInterval', path, (t) => atLeast(t, '1s'));
  const webhooks: Config['notifications']['webhooks'] = [];
  const list = m.webhooks;
  if (list !== undefined && list !== null && !Array.isArray(list))
    r.report(join(path, 'webhooks'), 'must be a list');
  const names = new Set<string>();
  (Array.isArray(list) ? list : []).forEach((item: unknown, i) => {
    const at = `${path}.webhooks[${i}]`;
    const w = r.mapping(item, at, ['name', 'url', 'format', 'timeout']);
    if (!w) return;
    const url = r.string(w, 'url', at);
    const name = r.string(w, 'name', at) ?? `webhook-${i}`;
    if (names.has(name)) r.report(join(at, 'name'), `"${name}" is used twice`);
    names.add(name);
    const format = r.string(w, 'format', at) ?? 'alertmanager';
    if (format !== 'alertmanager' && format !== 'json')
      r.report(join(at, 'format'), `must be "alertmanager" or "json", got "${format}"`);
    if (url === undefined) {
      r.report(join(at, 'url'), 'is required');
      return;
    }
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      r.report(join(at, 'url'), `"${url}" must be an http(s) URL`);
      return;
    }
    const timeoutMs = r.parsed(w, 'timeout', at, (t) => atLeast(t, '100ms')) ?? 10_000;
    webhooks.push({ name, url, format: format === 'json' ? 'json' : 'alertmanager', timeoutMs });
  });
  return { webhooks, resendIntervalMs: resend ?? 60_000 };
}

function readNotices(r: Reader, value: unknown): Config['notices'] {
  const path = 'notices';
  const m = r.optionalMapping(value, path, ['enabled', 'thresholds', 'checkInterval', 'grace']) ?? {};
  const texts = r.stringList(m, 'thresholds', path, (t) => {
    try {
      parseDuration(t, { allowZero: true });
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  });
  const thresholds = (texts ?? CONFIG_DEFAULTS.noticeThresholds).map((t) =>
    parseDuration(t, { allowZero: true }),
  );
  const checkInterval = r.parsed(m, 'checkInterval', path, (t) => atLeast(t, '1s'));
  const grace = r.parsed(m, 'grace', path, (t) => parseDuration(t, { allowZero: true }));
  return {
    enabled: r.boolean(m, 'enabled', path) ?? true,
    // Longest first: a certificate crosses them in this order.
    thresholdsMs: [...new Set(thresholds)].sort((a, b) => b - a),
    checkIntervalMs: checkInterval ?? parseDuration(CONFIG_DEFAULTS.noticeCheckInterval),
    graceMs: grace ?? parseDuration(CONFIG_DEFAULTS.noticeGrace),
  };
}

function readRenewalBackoff(r: Reader, value: unknown): Config['renewalBackoff'] {
  const path = 'renewalBackoff';
  const m = r.optionalMapping(value, path, ['base', 'cap']) ?? {};
  const baseMs =
    r.parsed(m, 'base', path, (t) => atLeast(t, '1s')) ?? parseDuration(CONFIG_DEFAULTS.renewalBackoffBase);
  const capMs =
    r.parsed(m, 'cap', path, (t) => atLeast(t, '1s')) ?? parseDuration(CONFIG_DEFAULTS.renewalBackoffCap);
  if (capMs < baseMs) r.report(join(path, 'cap'), 'must not be shorter than base');
  return { baseMs, capMs };
}

function readDefaults(r: Reader, value: unknown, issuerNames: string[]): DefaultsConfig | undefined {
  const path = 'defaults';
  const m = r.optionalMapping(value, path, ['issuer', 'renewBefore', 'keyAlgorithm', 'restart', 'duration']);
  if (!m) return undefined;
  let issuer = r.string(m, 'issuer', path);
  if (issuer !== undefined && !issuerNames.includes(issuer)) {
    const known = issuerNames.length
      ? ` (issuers: ${issuerNames.join(', ')})`
      : ' (no issuers are configured)';
    r.report(join(path, 'issuer'), `unknown issuer "${issuer}"${known}`);
  }
  // With a single issuer there is nothing to choose: it is the default.
  if (issuer === undefined && issuerNames.length === 1) issuer = issuerNames[0];

  const renewBefore = r.parsed(m, 'renewBefore', path, parseRenewBefore) ?? DEFAULT_RENEW_BEFORE;
  const keyAlgorithm = readKeyAlgorithm(r, m, path) ?? CONFIG_DEFAULTS.keyAlgorithm;
  const restart = r.string(m, 'restart', path) ?? CONFIG_DEFAULTS.restart;
  if (restart !== 'auto' && restart !== 'none') {
    r.report(
      join(path, 'restart'),
      `"${restart}" must be auto or none (lists are per Secret, by annotation)`,
    );
  }
  const durationMs = r.parsed(m, 'duration', path, parseCertificateDuration);
  const result: DefaultsConfig = {
    issuer,
    renewBefore,
    keyAlgorithm,
    restart: restart === 'none' ? 'none' : 'auto',
    durationMs,
  };
  return dropUndefined(result);
}

function readKeyAlgorithm(r: Reader, m: Mapping, path: string): KeyAlgorithmName | undefined {
  const text = r.string(m, 'keyAlgorithm', path);
  if (text === undefined) return undefined;
  const known = KEY_ALGORITHMS.find((algorithm) => algorithm === text);
  if (!known) r.report(join(path, 'keyAlgorithm'), `"${text}" must be one of ${KEY_ALGORITHMS.join(', ')}`);
  return known;
}

function readLeaderElection(r: Reader, value: unknown): LeaderElectionConfig {
  const path = 'leaderElection';
  const m =
    r.optionalMapping(value, path, [
      'enabled',
      'namespace',
      'leaseName',
      'leaseDuration',
      'renewDeadline',
      'retryPeriod',
    ]) ?? {};
  const namespace = r.string(m, 'namespace', path);
  const namespaceIssue = namespace === undefined ? undefined : namespaceProblem(namespace);
  if (namespaceIssue) r.report(join(path, 'namespace'), namespaceIssue);
  const leaseName = r.string(m, 'leaseName', path) ?? CONFIG_DEFAULTS.leaseName;
  const leaseNameIssue = objectNameProblem(leaseName);
  if (leaseNameIssue) r.report(join(path, 'leaseName'), leaseNameIssue);
  const leaseDuration = r.parsed(m, 'leaseDuration', path, (t) => atLeast(t, '1s'));
  const renewDeadline = r.parsed(m, 'renewDeadline', path, (t) => atLeast(t, '1s'));
  const retryPeriod = r.parsed(m, 'retryPeriod', path, (t) => atLeast(t, '100ms'));
  const config: LeaderElectionConfig = {
    enabled: r.boolean(m, 'enabled', path) ?? true,
    leaseName,
    leaseDurationMs: leaseDuration ?? parseDuration(CONFIG_DEFAULTS.leaseDuration),
    renewDeadlineMs: renewDeadline ?? parseDuration(CONFIG_DEFAULTS.renewDeadline),
    retryPeriodMs: retryPeriod ?? parseDuration(CONFIG_DEFAULTS.retryPeriod),
  };
  if (namespace !== undefined) config.namespace = namespace;
  // client-go's rule: a leader must give up before others may take over, and retry within that.
  if (config.renewDeadlineMs >= config.leaseDurationMs) {
    r.report(join(path, 'renewDeadline'), 'must be shorter than leaseDuration');
  }
  if (config.retryPeriodMs >= config.renewDeadlineMs) {
    r.report(join(path, 'retryPeriod'), 'must be shorter than renewDeadline');
  }
  return config;
}

function atLeast(text: string, minimum: string): number {
  const ms = parseDuration(text);
  if (ms < parseDuration(minimum)) throw new Error(`"${text}" is too short; the minimum is ${minimum}`);
  return ms;
}

function isListenAddress(address: string): boolean {
  const parsed = parseListenAddress(address);
  return parsed !== undefined && parsed.port >= 1;
}
