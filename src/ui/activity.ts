import type { ActivityView } from './status-page.ts';

/**
 * The recent renewals, failures, rollouts and problems this replica recorded, newest first, and
 * the last one per object: bounded, so a busy controller keeps a fixed-size history.
 */
export class RecentActivity {
  readonly #limit: number;
  readonly #perObjectLimit: number;
  #entries: ActivityView[] = [];
  readonly #last = new Map<string, ActivityView>();

  constructor(limit = 100, perObjectLimit = 20_000) {
    this.#limit = limit;
    this.#perObjectLimit = perObjectLimit;
  }

  add(entry: ActivityView): void {
    this.#entries.unshift(entry);
    if (this.#entries.length > this.#limit * 2) this.#entries = this.#entries.slice(0, this.#limit);
    this.#last.delete(entry.object);
    this.#last.set(entry.object, entry);
    // The oldest object's entry goes first: a Map iterates in insertion order.
    if (this.#last.size > this.#perObjectLimit) {
      const oldest = this.#last.keys().next().value;
      if (oldest !== undefined) this.#last.delete(oldest);
    }
  }

  /** The newest entries first, at most `limit`. */
  recent(): ActivityView[] {
    return this.#entries.slice(0, this.#limit);
  }

  /** The last entry about `object` (`namespace/name` for a Secret). */
  lastFor(object: string): ActivityView | undefined {
    return this.#last.get(object);
  }

  /** Forgets an object that is gone. */
  forget(object: string): void {
    this.#last.delete(object);
  }
}
