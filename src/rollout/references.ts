/**
 * Which Secrets a pod template uses. Only the shapes a pod can consume a TLS Secret through:
 * `volumes[].secret`, projected volume sources, `env[].valueFrom.secretKeyRef` and
 * `envFrom[].secretRef`, in containers and init containers. Input is untrusted JSON (a watch
 * event), so every level is checked before it is read.
 */

type Json = Record<string, unknown>;

function obj(value: unknown): Json | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : undefined;
}

function arr(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Names of the Secrets a pod spec references (same namespace, by construction), sorted, unique. */
export function secretsReferencedBy(podSpec: unknown): string[] {
  const spec = obj(podSpec);
  if (!spec) return [];
  const names = new Set<string>();
  const add = (name: unknown) => {
    const n = str(name);
    if (n !== undefined) names.add(n);
  };
  for (const v of arr(spec.volumes)) {
    const volume = obj(v);
    if (!volume) continue;
    add(obj(volume.secret)?.secretName);
    for (const s of arr(obj(volume.projected)?.sources)) add(obj(obj(s)?.secret)?.name);
  }
  for (const c of [...arr(spec.containers), ...arr(spec.initContainers)]) {
    const container = obj(c);
    if (!container) continue;
    for (const e of arr(container.env)) add(obj(obj(obj(e)?.valueFrom)?.secretKeyRef)?.name);
    for (const e of arr(container.envFrom)) add(obj(obj(e)?.secretRef)?.name);
  }
  return [...names].sort();
}
