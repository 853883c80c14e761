/** Reading the `trustBundles` list: where an issuer's trust set is published as a ConfigMap key. */
import { join, type Mapping, type Reader } from './reader.ts';
import type { TrustBundleConfig } from './schema.ts';
import { isDnsLabel } from './syntax.ts';

const KEYS = ['issuer', 'configMap', 'namespaces'];

/** A ConfigMap key: what `kubectl create configmap --from-file` accepts. */
function keyProblem(key: string): string | undefined {
  return /^[-._a-zA-Z0-9]{1,253}$/.test(key) ? undefined : `"${key}" is not a valid ConfigMap key`;
}

export function readTrustBundles(
  r: Reader,
  value: unknown,
  caIssuers: ReadonlySet<string>,
): TrustBundleConfig[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    r.report('trustBundles', 'must be a list');
    return [];
  }
  const out: TrustBundleConfig[] = [];
  const seen = new Map<string, string>();
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
    }
    const cm = r.mapping(m.configMap ?? {}, join(path, 'configMap'), ['name', 'key']) as Mapping | undefined;
    const name = cm ? r.string(cm, 'name', join(path, 'configMap'), true) : undefined;
    if (name !== undefined && !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) {
      r.report(join(join(path, 'configMap'), 'name'), `"${name}" is not a valid ConfigMap name`);
    }
    const key = (cm && r.string(cm, 'key', join(path, 'configMap'))) ?? 'ca.crt';
    const keyIssue = keyProblem(key);
    if (keyIssue) r.report(join(join(path, 'configMap'), 'key'), keyIssue);
    const namespaces = r.stringList(m, 'namespaces', path, (ns) =>
      isDnsLabel(ns) ? undefined : `"${ns}" is not a namespace name`,
    );
    if (m.namespaces === undefined)
      r.report(join(path, 'namespaces'), 'required: the namespaces to write the ConfigMap to');
    if (issuer === undefined || name === undefined || !namespaces || keyIssue) return;
    for (const ns of namespaces) {
      const where = `${ns}/${name}:${key}`;
      const other = seen.get(where);
      if (other !== undefined && other !== issuer) {
        r.report(path, `${where} is also written for issuer "${other}"`);
      }
      seen.set(where, issuer);
    }
    out.push({ issuer, configMap: name, key, namespaces: [...new Set(namespaces)] });
  });
  return out;
}
