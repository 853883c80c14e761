/** Reading references to Secrets (`namespace`, `name`, and for a value in one, `key`). */
import { join, type Mapping, type Reader } from './reader.ts';
import type { SecretKeyRef, SecretRef } from './schema.ts';
import { namespaceProblem, objectNameProblem, secretDataKeyProblem } from './syntax.ts';

export function readSecretRef(r: Reader, parent: Mapping, key: string, path: string): SecretRef | undefined {
  const at = join(path, key);
  if (parent[key] === undefined || parent[key] === null) {
    r.report(at, 'required');
    return undefined;
  }
  const m = r.mapping(parent[key], at, ['namespace', 'name']);
  return m && readRefFields(r, m, at, false);
}

export function readSecretKeyRef(
  r: Reader,
  parent: Mapping,
  key: string,
  path: string,
): SecretKeyRef | undefined {
  const at = join(path, key);
  if (parent[key] === undefined || parent[key] === null) {
    r.report(at, 'required');
    return undefined;
  }
  const m = r.mapping(parent[key], at, ['namespace', 'name', 'key']);
  const ref = m && readRefFields(r, m, at, true);
  return ref && 'key' in ref ? ref : undefined;
}

function readRefFields(
  r: Reader,
  m: Mapping,
  at: string,
  withKey: boolean,
): SecretRef | SecretKeyRef | undefined {
  const namespace = r.string(m, 'namespace', at, true);
  const name = r.string(m, 'name', at, true);
  const key = withKey ? r.string(m, 'key', at, true) : undefined;
  const problems: [string, string | undefined][] = [
    ['namespace', namespace === undefined ? undefined : namespaceProblem(namespace)],
    ['name', name === undefined ? undefined : objectNameProblem(name)],
    ['key', key === undefined ? undefined : secretDataKeyProblem(key)],
  ];
  let ok = namespace !== undefined && name !== undefined && (!withKey || key !== undefined);
  for (const [field, problem] of problems) {
    if (problem) {
      r.report(join(at, field), problem);
      ok = false;
    }
  }
  if (!ok || namespace === undefined || name === undefined) return undefined;
  return key === undefined ? { namespace, name } : { namespace, name, key };
}
