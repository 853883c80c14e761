/**
 * When does the controller next look at each Secret? One due time per Secret, for every reason
 * there is to look (renewal time, window start, retry after a failure or an API error, refresh of
 * an issuer's suggestion), in one timer queue: however many Secrets wait, one timer is armed.
 * At the due time `onDue(key)` plans the Secret again, which starts a reconcile if it is due.
 */
import type { Clock } from '../clock.ts';
import { TimerQueue } from '../kube/timer-queue.ts';

export class LookSchedule {
  readonly #timers: TimerQueue<string>;

  constructor(onDue: (key: string) => void, clock: Clock) {
    this.#timers = new TimerQueue<string>(onDue, { clock });
  }

  /** Look at `key` at `at`; undefined: only when it changes. */
  set(key: string, at: number | undefined): void {
    if (at === undefined) this.#timers.cancel(key);
    else this.#timers.schedule(key, at);
  }

  dueAt(key: string): number | undefined {
    return this.#timers.dueAt(key);
  }

  cancel(key: string): void {
    this.#timers.cancel(key);
  }

  clear(): void {
    this.#timers.clear();
  }

  get size(): number {
    return this.#timers.size;
  }
}
