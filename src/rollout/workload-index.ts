import { Annotation, PodTemplateAnnotation, type RestartKind, WORKLOAD_OPT_OUT } from '../names.ts';
import { secretsReferencedBy } from './references.ts';

/**
 * What the rollout manager remembers of one Deployment, StatefulSet or DaemonSet: its identity,
 * the Secrets its pod template uses, and the few fields the guards read. Never the object.
 */
export interface WorkloadEntry {
  readonly kind: RestartKind;
  readonly namespace: string;
  readonly name: string;
  uid: string;
  resourceVersion: string;
  generation: number;
  /** Names of the Secrets (in `namespace`) the pod template uses, sorted. */
  secrets: readonly string[];
  /** The pod template's `cert-rotator.io/certificate-hash`, if cert-rotator ever set it. */
  hash: string | undefined;
  /** The workload is annotated `cert-rotator.io/restart: "false"`. */
  optedOut: boolean;
  /** A Deployment with `spec.paused`. */
  paused: boolean;
}

/** The part of an apps/v1 object the index reads (typed loosely: watch events are plain JSON). */
export interface WorkloadObject {
  metadata?: {
    namespace?: string;
    name?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    annotations?: Record<string, string>;
  };
  spec?: {
    paused?: boolean;
    template?: { metadata?: { annotations?: Record<string, string> }; spec?: unknown };
  };
}

export function workloadKey(kind: RestartKind, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

function secretKeyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * Which workloads use which Secret, fed by workload watch events. Both directions are kept:
 * workload → Secrets (to compute a workload's hash) and Secret → workloads (to find who to roll
 * when a certificate changes) — no list of all workloads is ever needed after the first.
 */
export class WorkloadIndex {
  readonly #entries = new Map<string, WorkloadEntry>();
  /** "namespace/secret" → keys of the workloads whose template uses it. */
  readonly #bySecret = new Map<string, Set<string>>();
  /** One string per namespace name, shared by every entry in it. */
  readonly #namespaces = new Map<string, string>();

  get size(): number {
    return this.#entries.size;
  }

  /** Distinct Secrets used by at least one indexed workload. */
  get secretCount(): number {
    return this.#bySecret.size;
  }

  get(key: string): WorkloadEntry | undefined {
    return this.#entries.get(key);
  }

  entries(): IterableIterator<[string, WorkloadEntry]> {
    return this.#entries.entries();
  }

  /** Keys of the workloads whose pod template uses Secret `namespace/name`. */
  usersOf(namespace: string, name: string): string[] {
    const users = this.#bySecret.get(secretKeyOf(namespace, name));
    return users ? [...users] : [];
  }

  /**
   * Records a workload as the API server shows it now. Returns the entry and what it was before
   * (undefined for a workload seen for the first time).
   */
  upsert(
    kind: RestartKind,
    object: WorkloadObject,
  ): { key: string; entry: WorkloadEntry; previous: Readonly<WorkloadEntry> | undefined } | undefined {
    const meta = object.metadata;
    const name = meta?.name;
    const nsText = meta?.namespace;
    if (!name || !nsText) return undefined;
    const namespace = this.#intern(nsText);
    const key = workloadKey(kind, namespace, name);
    const existing = this.#entries.get(key);
    const previous = existing ? { ...existing } : undefined;
    const secrets = secretsReferencedBy(object.spec?.template?.spec);
    const entry: WorkloadEntry = existing ?? {
      kind,
      namespace,
      name,
      uid: '',
      resourceVersion: '',
      generation: 0,
      secrets: [],
      hash: undefined,
      optedOut: false,
      paused: false,
    };
    entry.uid = meta?.uid ?? '';
    entry.resourceVersion = meta?.resourceVersion ?? '';
    entry.generation = meta?.generation ?? 0;
    entry.hash = object.spec?.template?.metadata?.annotations?.[PodTemplateAnnotation.certificateHash];
    entry.optedOut = meta?.annotations?.[Annotation.restart]?.trim() === WORKLOAD_OPT_OUT;
    entry.paused = kind === 'deployment' && object.spec?.paused === true;
    if (!sameList(entry.secrets, secrets)) {
      this.#unlink(key, namespace, entry.secrets);
      entry.secrets = secrets;
      this.#link(key, namespace, secrets);
    }
    this.#entries.set(key, entry);
    return { key, entry, previous };
  }

  remove(kind: RestartKind, namespace: string, name: string): WorkloadEntry | undefined {
    const key = workloadKey(kind, namespace, name);
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#unlink(key, entry.namespace, entry.secrets);
    this.#entries.delete(key);
    return entry;
  }

  #link(key: string, namespace: string, secrets: readonly string[]): void {
    for (const s of secrets) {
      const sk = secretKeyOf(namespace, s);
      let users = this.#bySecret.get(sk);
      if (!users) {
        users = new Set();
        this.#bySecret.set(sk, users);
      }
      users.add(key);
    }
  }

  #unlink(key: string, namespace: string, secrets: readonly string[]): void {
    for (const s of secrets) {
      const sk = secretKeyOf(namespace, s);
      const users = this.#bySecret.get(sk);
      if (!users) continue;
      users.delete(key);
      if (users.size === 0) this.#bySecret.delete(sk);
    }
  }

  #intern(namespace: string): string {
    const known = this.#namespaces.get(namespace);
    if (known !== undefined) return known;
    this.#namespaces.set(namespace, namespace);
    return namespace;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
