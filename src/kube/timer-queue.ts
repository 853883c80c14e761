import { type Clock, systemClock } from '../clock.ts';

/** Node fires a timer longer than this after 1 ms; never ask a clock for more. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export interface TimerQueueOptions<K> {
  clock?: Clock;
  /**
   * Receives an error thrown by `onDue`. Without it the errors of one firing are rethrown
   * together once every due key has fired and the timer is re-armed, so the queue stays whole.
   */
  onError?: (err: unknown, key: K) => void;
}

interface Entry<K> {
  at: number;
  /** Insertion order: breaks ties between equal times, and bounds one firing. */
  seq: number;
  key: K;
}

/**
 * Fires `onDue(key)` once at each key's due time (ms since the epoch, as `clock.now()`).
 * Each key has at most one due time; scheduling it again moves it, earlier or later.
 *
 * A binary min-heap with lazy deletion: a heap entry counts only while it is the entry the
 * `#live` map holds for its key, so schedule and cancel are O(log n) and O(1). However many
 * keys wait, exactly one timer is armed on the clock — for the earliest one.
 */
export class TimerQueue<K> {
  readonly #onDue: (key: K) => void;
  readonly #onError: ((err: unknown, key: K) => void) | undefined;
  readonly #clock: Clock;
  #heap: Entry<K>[] = [];
  readonly #live = new Map<K, Entry<K>>();
  #seq = 0;
  #timer: unknown;
  #armed = false;
  /** When the armed timer will wake; may be before the earliest due time, never after. */
  #wakeAt = 0;

  constructor(onDue: (key: K) => void, options: TimerQueueOptions<K> = {}) {
    this.#onDue = onDue;
    this.#onError = options.onError;
    this.#clock = options.clock ?? systemClock;
  }

  /** Makes `key` due at `at`, replacing any earlier or later time it had. */
  schedule(key: K, at: number): void {
    if (!Number.isFinite(at)) throw new RangeError(`TimerQueue.schedule: due time must be finite, got ${at}`);
    const entry: Entry<K> = { at, seq: ++this.#seq, key };
    this.#live.set(key, entry);
    this.#push(entry);
    // Rebuild when stale entries (from moves and cancels) outnumber live ones, bounding memory.
    if (this.#heap.length > 2 * this.#live.size + 64) this.#compact();
    this.#arm();
  }

  /** Removes `key`; returns whether it was waiting. */
  cancel(key: K): boolean {
    const had = this.#live.delete(key);
    // A timer armed for a cancelled entry just wakes early and re-arms; only an empty queue disarms.
    if (had && this.#live.size === 0) this.clear();
    return had;
  }

  has(key: K): boolean {
    return this.#live.has(key);
  }

  /** The due time of `key`, or undefined when it is not waiting. */
  dueAt(key: K): number | undefined {
    return this.#live.get(key)?.at;
  }

  get size(): number {
    return this.#live.size;
  }

  /** The earliest due time, or undefined when nothing waits. */
  nextDue(): number | undefined {
    return this.#peek()?.at;
  }

  /** Drops every key and disarms the timer. */
  clear(): void {
    this.#live.clear();
    this.#heap = [];
    this.#disarm();
  }

  #fire = (): void => {
    this.#armed = false;
    this.#timer = undefined;
    const now = this.#clock.now();
    // Keys scheduled by onDue during this firing wait for the next one, so an onDue that
    // reschedules its own key "now" cannot spin this loop forever.
    const lastSeq = this.#seq;
    const errors: unknown[] = [];
    for (let top = this.#peek(); top && top.at <= now && top.seq <= lastSeq; top = this.#peek()) {
      this.#pop();
      this.#live.delete(top.key);
      try {
        this.#onDue(top.key);
      } catch (err) {
        if (this.#onError) this.#onError(err, top.key);
        else errors.push(err);
      }
    }
    // Also the path for a timer that woke early (capped delay, clock jump): nothing was due yet.
    this.#arm();
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1)
      throw new AggregateError(errors, `TimerQueue: ${errors.length} onDue callbacks threw`);
  };

  #arm(): void {
    const top = this.#peek();
    if (!top) {
      this.#disarm();
      return;
    }
    if (this.#armed && this.#wakeAt <= top.at) return;
    this.#disarm();
    const now = this.#clock.now();
    const delay = Math.min(Math.max(0, top.at - now), MAX_TIMER_DELAY_MS);
    this.#wakeAt = now + delay;
    this.#armed = true;
    this.#timer = this.#clock.setTimeout(this.#fire, delay);
  }

  #disarm(): void {
    if (!this.#armed) return;
    this.#clock.clearTimeout(this.#timer);
    this.#armed = false;
    this.#timer = undefined;
  }

  /** The earliest live entry, discarding stale ones on the way. */
  #peek(): Entry<K> | undefined {
    let top = this.#heap[0];
    while (top && this.#live.get(top.key) !== top) {
      this.#pop();
      top = this.#heap[0];
    }
    return top;
  }

  #compact(): void {
    this.#heap = [...this.#live.values()];
    for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#siftDown(i);
  }

  #push(entry: Entry<K>): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!before(entry, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = entry;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    heap[0] = last;
    this.#siftDown(0);
  }

  #siftDown(start: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const entry = heap[start]!;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && before(heap[right]!, heap[left]!)) child = right;
      const c = heap[child]!;
      if (!before(c, entry)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = entry;
  }
}

function before<K>(a: Entry<K>, b: Entry<K>): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
