import { type Clock, systemClock } from '../clock.ts';
import { Backoff } from './backoff.ts';
// TimerQueue is a leaf that imports only the clock, so this upward import drags in nothing else.
import { TimerQueue } from './timer-queue.ts';

/** What a handler returns: nothing when done, or when to look at the key again. */
export type Result = { requeueAfter?: number } | undefined;

/** Handles one key; throwing means "retry after backoff". */
export type Handler<K> = (key: K) => Promise<Result>;

export interface WorkQueueOptions<K> {
  clock?: Clock;
  /** Delays for `addRateLimited` and failed handlers; defaults to renewal-failure backoff. */
  backoff?: Backoff<K>;
  /**
   * Called when a handler throws (or returns an unusable `requeueAfter`), after the key has
   * been requeued `retryInMs` from now. Errors thrown by the hook itself are ignored.
   */
  onError?: (err: unknown, key: K, retryInMs: number) => void;
}

/**
 * A de-duplicating, rate-limited work queue after client-go's:
 * - a key waiting in the queue is held once, however often it is added;
 * - a key is never handled by two workers at once; one added while it is being handled is
 *   handled once more after the current run ends;
 * - each key has at most one pending delay and the earliest wins: `addAfter` never postpones
 *   a sooner delay, and `add` (now) replaces any pending delay;
 * - a handler that throws is retried after a per-key exponential backoff, reset on success.
 * Delays wait in one TimerQueue, so 10,000 delayed keys cost one armed timer.
 */
export class WorkQueue<K extends string> {
  readonly #clock: Clock;
  readonly #backoff: Backoff<K>;
  readonly #onError: WorkQueueOptions<K>['onError'];
  readonly #delayed: TimerQueue<K>;

  /** FIFO of keys ready to run; `#head` skips the taken ones so take is O(1). */
  #ready: (K | undefined)[] = [];
  #head = 0;
  /** Keys that need a run: those in `#ready`, and those re-added while processing. */
  readonly #dirty = new Set<K>();
  /**
   * When each key in `#dirty` was first queued to run now. A Map keeps insertion order and an
   * entry is never moved, so the first entry is the key that has waited longest.
   */
  readonly #waitingSince = new Map<K, number>();
  readonly #processing = new Set<K>();

  #handler: Handler<K> | undefined;
  #concurrency = 0;
  #pumpScheduled = false;
  #shuttingDown = false;
  readonly #stopped = Promise.withResolvers<void>();

  constructor(options: WorkQueueOptions<K> = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#backoff = options.backoff ?? new Backoff<K>();
    this.#onError = options.onError;
    this.#delayed = new TimerQueue<K>((key) => this.#enqueue(key), { clock: this.#clock });
  }

  /** Queues `key` to run now, cancelling any pending delay for it. */
  add(key: K): void {
    if (this.#shuttingDown) return;
    this.#delayed.cancel(key);
    this.#enqueue(key);
  }

  /** Queues `key` to run `ms` from now, unless it is already due sooner. */
  addAfter(key: K, ms: number): void {
    if (!Number.isFinite(ms))
      throw new RangeError(`WorkQueue.addAfter(${key}): delay must be finite, got ${ms}`);
    if (this.#shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    // A dirty key runs as soon as a worker (or its current run) frees up: sooner than any delay.
    if (this.#dirty.has(key)) return;
    const at = this.#clock.now() + ms;
    const pending = this.#delayed.dueAt(key);
    if (pending !== undefined && pending <= at) return;
    this.#delayed.schedule(key, at);
  }

  /** Queues `key` after its next backoff delay and returns that delay in ms. */
  addRateLimited(key: K): number {
    const delay = this.#backoff.next(key);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears `key`'s failure history, so its next backoff starts from the base delay. */
  forget(key: K): void {
    this.#backoff.reset(key);
  }

  /** Consecutive failures recorded for `key`. */
  failures(key: K): number {
    return this.#backoff.failures(key);
  }

  /** Keys waiting to run now (not delayed, not in a handler). */
  get length(): number {
    return this.#ready.length - this.#head;
  }

  /** Keys that need a run now: waiting in the queue, or re-added while a worker handles them. */
  get depth(): number {
    return this.#dirty.size;
  }

  /** How long the key that has waited longest to run has waited, in ms (0 when none waits). */
  oldestWaitMs(): number {
    for (const since of this.#waitingSince.values()) return Math.max(0, this.#clock.now() - since);
    return 0;
  }

  /** Keys waiting for a delay to pass. */
  get delayed(): number {
    return this.#delayed.size;
  }

  /** Keys inside a handler right now. */
  get processing(): number {
    return this.#processing.size;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /**
   * Handles keys with up to `concurrency` handlers at a time until `shutDown`. Resolves once
   * shut down and every in-flight handler has finished. A queue runs one loop.
   */
  run(handler: Handler<K>, concurrency: number): Promise<void> {
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`WorkQueue.run: concurrency must be a positive integer, got ${concurrency}`);
    }
    if (this.#handler) throw new Error('WorkQueue.run: this queue already has a processing loop');
    this.#handler = handler;
    this.#concurrency = concurrency;
    this.#schedulePump();
    return this.#stopped.promise;
  }

  /** Stops taking work and drops pending delays; resolves when in-flight handlers finish. */
  shutDown(): Promise<void> {
    this.#shuttingDown = true;
    this.#delayed.clear();
    if (this.#processing.size === 0) this.#stopped.resolve();
    return this.#stopped.promise;
  }

  #enqueue(key: K): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    this.#waitingSince.set(key, this.#clock.now());
    if (this.#processing.has(key)) return; // #done queues it again
    this.#ready.push(key);
    this.#schedulePump();
  }

  #schedulePump(): void {
    // Start handlers from a microtask, never inside the caller's add(): a watch callback
    // should not find itself running a reconcile.
    if (this.#pumpScheduled || !this.#handler) return;
    this.#pumpScheduled = true;
    queueMicrotask(this.#pump);
  }

  #pump = (): void => {
    this.#pumpScheduled = false;
    const handler = this.#handler;
    if (!handler) return;
    while (!this.#shuttingDown && this.#processing.size < this.#concurrency && this.length > 0) {
      void this.#process(handler, this.#take());
    }
  };

  #take(): K {
    const key = this.#ready[this.#head]!;
    this.#ready[this.#head++] = undefined;
    if (this.#head > 1024 && this.#head * 2 > this.#ready.length) {
      this.#ready = this.#ready.slice(this.#head);
      this.#head = 0;
    }
    this.#dirty.delete(key);
    this.#waitingSince.delete(key);
    this.#processing.add(key);
    return key;
  }

  async #process(handler: Handler<K>, key: K): Promise<void> {
    try {
      const result = await handler(key);
      this.#backoff.reset(key);
      const after = result?.requeueAfter;
      if (after !== undefined) this.addAfter(key, after); // throws on NaN/Infinity: a failure
    } catch (err) {
      const retryInMs = this.addRateLimited(key);
      try {
        this.#onError?.(err, key, retryInMs);
      } catch {
        // A broken logger must not stop the queue, and there is nowhere left to report to.
      }
    } finally {
      this.#done(key);
    }
  }

  #done(key: K): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#ready.push(key);
    if (this.#shuttingDown) {
      if (this.#processing.size === 0) this.#stopped.resolve();
      return;
    }
    this.#schedulePump();
  }
}
