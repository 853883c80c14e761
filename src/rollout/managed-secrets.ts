import type { Validity, Window } from '../policy/renewal.ts';
import type { RestartPolicy } from '../policy/restart.ts';
import { type WorkloadEntry, workloadKey } from './workload-index.ts';

/** What the rollout side remembers of one managed Secret. */
export interface ManagedSecret {
  namespace: string;
  name: string;
  fingerprint: string;
  restart: RestartPolicy;
  window: Window | undefined;
  validity: Validity;
  /** Validity of the certificate this one replaced (what running pods still hold). */
  previous: Validity | undefined;
  byController: boolean;
  /** The Secret records that this certificate's restarts are still owed. */
  owed: boolean;
}

/**
 * The managed Secrets (keyed "namespace/name") and, for `restart` lists, which workloads each
 * names: together they say which Secrets' certificates go into a workload's hash.
 */
export class ManagedSecrets {
  readonly #secrets = new Map<string, ManagedSecret>();
  /** workload key → Secrets whose `restart` list names it. */
  readonly #listedBy = new Map<string, Set<string>>();

  get size(): number {
    return this.#secrets.size;
  }

  get(secretKey: string): ManagedSecret | undefined {
    return this.#secrets.get(secretKey);
  }

  set(secretKey: string, state: ManagedSecret): void {
    const before = this.#secrets.get(secretKey);
    this.#secrets.set(secretKey, state);
    this.#relinkTargets(secretKey, before?.restart, state.restart, state.namespace);
  }

  delete(secretKey: string, namespace: string): void {
    const before = this.#secrets.get(secretKey);
    this.#relinkTargets(secretKey, before?.restart, undefined, namespace);
    this.#secrets.delete(secretKey);
  }

  #relinkTargets(
    secretKey: string,
    before: RestartPolicy | undefined,
    after: RestartPolicy | undefined,
    namespace: string,
  ): void {
    if (before?.mode === 'list') {
      for (const t of before.targets) {
        const wk = workloadKey(t.kind, namespace, t.name);
        const set = this.#listedBy.get(wk);
        set?.delete(secretKey);
        if (set?.size === 0) this.#listedBy.delete(wk);
      }
    }
    if (after?.mode === 'list') {
      for (const t of after.targets) {
        const wk = workloadKey(t.kind, namespace, t.name);
        let set = this.#listedBy.get(wk);
        if (!set) {
          set = new Set();
          this.#listedBy.set(wk, set);
        }
        set.add(secretKey);
      }
    }
  }

  /** Managed Secrets whose certificates go into the workload's hash: those that restart it. */
  hashSecrets(entry: WorkloadEntry, key: string): ManagedSecret[] {
    const out = new Map<string, ManagedSecret>();
    for (const name of entry.secrets) {
      const sk = `${entry.namespace}/${name}`;
      const s = this.#secrets.get(sk);
      if (s?.restart.mode === 'auto') out.set(sk, s);
    }
    for (const sk of this.#listedBy.get(key) ?? []) {
      const s = this.#secrets.get(sk);
      if (s?.restart.mode === 'list') out.set(sk, s);
    }
    return [...out.values()];
  }
}
