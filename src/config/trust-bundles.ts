/**
 * Reading the `trustBundles` list: where an issuer's trust set is published — a ConfigMap key in
 * listed and/or label-selected namespaces, and/or a ClusterTrustBundle (docs/ca-rollover.md).
 */
import { signerNameProblem } from './csr.ts';
import { type LabelSelectorConfig, readLabelSelector } from './label-selector.ts';
import { join, type Reader } from './reader.ts';
import type { TrustBundleConfig } from './schema.ts';
import { isDnsLabel, isDnsSubdomain } from './syntax.ts';

const KEYS = ['issuer', 'configMap', 'namespaces', 'namespaceSelector', 'clusterTrustBundle'];

/** A ConfigMap key: what `kubectl create configmap --from-file` accepts. */
function keyProblem(key: string): string | undefined {
  return /^[-._a-zA-Z0-9]{1,253}$/.test(key) ? undefined : `"${key}" is not a valid ConfigMap key`;
}

/** What a ClusterTrustBundle linked to `signerName` must be named with: `example.com:foo:`. */
export function clusterTrustBundlePrefix(signerName: string): string {
  return `${signerName.replaceAll('/', ':')}:`;
}

/**
 * The API server's naming rule for ClusterTrustBundles: linked to a signer, the name is that
 * signer's prefix and a non-empty rest; unlinked, a DNS subdomain (so no `:`, which would look
 * like a signer's prefix).
 */
export function clusterTrustBundleNameProblem(
  name: string,
  signerName: string | undefined,
): string | undefined {
  if (signerName === undefined) {
    return isDnsSubdomain(name)
      ? undefined
      : `"${name}" is not a valid name for a ClusterTrustBundle without signerName (lowercase DNS subdomain, no ":")`;
  }
  const prefix = clusterTrustBundlePrefix(signerName);
  if (!name.startsWith(prefix) || name.length === prefix.length) {
    return `"${name}" must start with "${prefix}" (the signerName with "/" replaced by ":", then ":") and go on after it`;
  }
  const rest = name.slice(prefix.length);
  if (name.length > 253 || !/^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$/.test(rest)) {
    return `"${name}": the part after "${prefix}" must be lowercase letters, digits, "-", "." and ":" (at most 253 characters in all)`;
  }
  return undefined;
}

function readClusterTrustBundle(
  r: Reader,
  value: unknown,
  path: string,
  issuer: string | undefined,
): TrustBundleConfig['clusterTrustBundle'] | undefined {
  const m = r.optionalMapping(value, path, ['name', 'signerName']);
  if (!m) return undefined;
  const signerName = r.string(m, 'signerName', path);
  const signerIssue = signerName === undefined ? undefined : signerNameProblem(signerName);
  if (signerIssue) r.report(join(path, 'signerName'), signerIssue);
  const explicit = r.string(m, 'name', path);
  if (signerIssue || (explicit === undefined && issuer === undefined)) return undefined;
  const name =
    explicit ??
    (signerName === undefined
      ? `cert-rotator.${issuer}`
      : `${clusterTrustBundlePrefix(signerName)}${issuer}`);
  const nameIssue = clusterTrustBundleNameProblem(name, signerName);
  if (nameIssue) {
    r.report(join(path, 'name'), nameIssue);
    return undefined;
  }
  return { name, ...(signerName !== undefined ? { signerName } : {}) };
}

export function readTrustBundles(
  r: Reader,
  value: unknown,
  caIssuers: ReadonlySet<string>,
  /** ca issuers with `rollover.enabled: false`: their rollover loop, which writes bundles, does not run. */
  noRollover: ReadonlySet<string> = new Set(),
): TrustBundleConfig[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    r.report('trustBundles', 'must be a list');
    return [];
  }
  const out: TrustBundleConfig[] = [];
  const seen = new Map<string, string>();
  const ctbSeen = new Map<string, string>();
  value.forEach((item: unknown, index) => {
    const path = `trustBundles[${index}]`;
    const m = r.mapping(item, path, KEYS);
    if (!m) return;
    const issuer = r.string(m, 'issuer', path, true);
    if (issuer !== undefined && !caIssuers.has(issuer)) {
      r.report(
        join(path, 'issuer'),
        `"${issuer}" is not a ca issuer (only a ca issuer's trust can be published)`,
      );
    } else if (issuer !== undefined && noRollover.has(issuer)) {
      r.report(
        join(path, 'issuer'),
        `issuer "${issuer}" has ca.rollover.enabled: false; trust bundles are kept by its rollover loop, so enable it (a rollover still starts only when a next CA is staged)`,
      );
    }
    let ok = issuer !== undefined;
    let configMap: TrustBundleConfig['configMap'];
    if (m.configMap !== undefined && m.configMap !== null) {
      const cmPath = join(path, 'configMap');
      const cm = r.mapping(m.configMap, cmPath, ['name', 'key']);
      const name = cm ? r.string(cm, 'name', cmPath, true) : undefined;
      if (name !== undefined && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) {
        r.report(join(cmPath, 'name'), `"${name}" is not a valid ConfigMap name`);
        ok = false;
      }
      const key = (cm && r.string(cm, 'key', cmPath)) ?? 'ca.crt';
      const keyIssue = keyProblem(key);
      if (keyIssue) r.report(join(cmPath, 'key'), keyIssue);
      if (name === undefined || keyIssue) ok = false;
      else configMap = { name, key };
    }
    const namespaces = r.stringList(m, 'namespaces', path, (ns) =>
      isDnsLabel(ns) ? undefined : `"${ns}" is not a namespace name`,
    );
    if (m.namespaces !== undefined && !namespaces) ok = false;
    let namespaceSelector: LabelSelectorConfig | undefined;
    if (m.namespaceSelector !== undefined && m.namespaceSelector !== null) {
      namespaceSelector = readLabelSelector(r, m.namespaceSelector, join(path, 'namespaceSelector'));
      if (!namespaceSelector) ok = false;
    }
    const wantsNamespaces = m.namespaces !== undefined || m.namespaceSelector !== undefined;
    if (m.configMap !== undefined && !wantsNamespaces) {
      r.report(
        path,
        'configMap needs namespaces and/or namespaceSelector: the namespaces to write the ConfigMap to',
      );
      ok = false;
    }
    if (m.configMap === undefined && wantsNamespaces) {
      r.report(
        join(path, 'configMap'),
        'required with namespaces or namespaceSelector: the ConfigMap to write',
      );
      ok = false;
    }
    let clusterTrustBundle: TrustBundleConfig['clusterTrustBundle'];
    if (m.clusterTrustBundle !== undefined) {
      clusterTrustBundle = readClusterTrustBundle(
        r,
        m.clusterTrustBundle,
        join(path, 'clusterTrustBundle'),
        issuer,
      );
      if (!clusterTrustBundle) ok = false;
    }
    if (m.configMap === undefined && m.clusterTrustBundle === undefined && !wantsNamespaces) {
      r.report(
        path,
        'nothing to write: give configMap (with namespaces/namespaceSelector) or clusterTrustBundle',
      );
      ok = false;
    }
    if (!ok || issuer === undefined) return;
    if (configMap) {
      for (const ns of namespaces ?? []) {
        const where = `${ns}/${configMap.name}:${configMap.key}`;
        const other = seen.get(where);
        if (other !== undefined && other !== issuer) {
          r.report(path, `${where} is also written for issuer "${other}"`);
        }
        seen.set(where, issuer);
      }
    }
    if (clusterTrustBundle) {
      const other = ctbSeen.get(clusterTrustBundle.name);
      if (other !== undefined) {
        r.report(
          join(path, 'clusterTrustBundle'),
          `ClusterTrustBundle ${clusterTrustBundle.name} is also written by ${other}`,
        );
      }
      ctbSeen.set(clusterTrustBundle.name, path);
    }
    out.push({
      issuer,
      ...(configMap ? { configMap } : {}),
      namespaces: [...new Set(namespaces ?? [])],
      ...(namespaceSelector ? { namespaceSelector } : {}),
      ...(clusterTrustBundle ? { clusterTrustBundle } : {}),
    });
  });
  return out;
}
