import type { Clock } from '../../../src/clock.ts';

interface FakeTimer {
  id: number;
  dueAt: number;
  fn: () => void;
}

/** Like systemClock, a delay is clamped to what Node accepts. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * A Clock whose time moves only when a test says so. `advance` fires due timers in time
 * order (ties in creation order), setting `now()` to each timer's due time as it fires, so a
 * timer armed by another timer fires within the same advance when it falls inside the window.
 */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, FakeTimer>();
  /** Every delay ever requested, after clamping; lets tests see how timers were armed. */
  readonly requestedDelays: number[] = [];

  constructor(start = Date.UTC(2030, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const delay = Math.min(Math.max(0, ms), MAX_DELAY_MS);
    this.requestedDelays.push(delay);
    const timer: FakeTimer = { id: this.#nextId++, dueAt: this.#now + delay, fn };
    this.#timers.set(timer.id, timer);
    return timer.id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Timers armed and not yet fired or cleared. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }

  advanceTo(target: number): void {
    for (let timer = this.#earliest(); timer && timer.dueAt <= target; timer = this.#earliest()) {
      this.#timers.delete(timer.id);
      this.#now = Math.max(this.#now, timer.dueAt);
      timer.fn();
    }
    this.#now = Math.max(this.#now, target);
  }

  /**
   * Like `advance`, but lets promise callbacks run after each timer, so async work a timer
   * starts (a queue handler) can finish and arm its own timers before time moves on.
   */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.#now + ms;
    await flush();
    for (let timer = this.#earliest(); timer && timer.dueAt <= target; timer = this.#earliest()) {
      this.#timers.delete(timer.id);
      this.#now = Math.max(this.#now, timer.dueAt);
      timer.fn();
      await flush();
    }
    this.#now = Math.max(this.#now, target);
    await flush();
  }

  #earliest(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.#timers.values()) {
      if (!best || t.dueAt < best.dueAt || (t.dueAt === best.dueAt && t.id < best.id)) best = t;
    }
    return best;
  }
}

/** Resolves after every pending promise callback (and the ones they queue) has run. */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
}

export function deferred<T = void>(): Deferred<T> {
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  return { promise, resolve, reject };
}
