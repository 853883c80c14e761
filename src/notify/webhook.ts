/**
 * Webhook notifications: firing and resolved alerts to Alertmanager's v2 API
 * (`POST <url>/api/v2/alerts`) or as plain JSON to any URL. Calls never wait for the network:
 * `fire` and `resolve` only change state and queue a delivery; one sender per webhook drains its
 * bounded queue with retries and exponential backoff, so a slow or failing receiver never slows
 * a renewal. Firing alerts are re-sent every `resendIntervalMs` with an `endsAt` three intervals
 * ahead, so Alertmanager keeps them active while cert-rotator runs and lets them lapse if it
 * stops; a resolution is sent explicitly (`endsAt` = now).
 */
import type { Clock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';

export interface WebhookConfig {
  name: string;
  url: string;
  format: 'alertmanager' | 'json';
  timeoutMs: number;
}

export interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

interface AlertState extends Alert {
  startsAt: number;
  /** When the alert was resolved; undefined while it fires. */
  resolvedAt?: number;
}

/** One alert as sent: Alertmanager's postable alert. */
interface WireAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL?: string;
}

export interface NotifierOptions {
  webhooks: readonly WebhookConfig[];
  resendIntervalMs: number;
  clock: Clock;
  log: Logger;
  /** Alerts waiting per webhook; the oldest are dropped beyond it. */
  maxQueued?: number;
  /** First retry delay and the cap (doubling). */
  retryBaseMs?: number;
  retryCapMs?: number;
  /** Deliveries that failed for good, per webhook (metrics). */
  onDropped?: (webhook: string, alerts: number) => void;
  /** Each delivery attempt's outcome (metrics). */
  onAttempt?: (webhook: string, ok: boolean) => void;
  /** Tests inject a fetch that records; default: the global fetch. */
  fetch?: typeof fetch;
}

/** Tries per delivery before its alerts are dropped (a later re-send carries firing ones again). */
const MAX_ATTEMPTS = 8;

export class WebhookNotifier {
  readonly #o: NotifierOptions;
  readonly #alerts = new Map<string, AlertState>();
  readonly #senders: Sender[];
  #timer: unknown;
  #stopped = false;

  constructor(options: NotifierOptions) {
    this.#o = options;
    this.#senders = options.webhooks.map((w) => new Sender(w, options));
  }

  start(): void {
    const tick = () => {
      if (this.#stopped) return;
      this.#resendFiring();
      this.#timer = this.#o.clock.setTimeout(tick, this.#o.resendIntervalMs);
    };
    this.#timer = this.#o.clock.setTimeout(tick, this.#o.resendIntervalMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
    await Promise.all(this.#senders.map((s) => s.stop()));
  }

  /** Keys of the alerts firing now. */
  firing(): string[] {
    return [...this.#alerts.entries()].filter(([, a]) => a.resolvedAt === undefined).map(([k]) => k);
  }

  /** Starts (or updates) the alert `key`; sent at once, then re-sent until resolved. */
  fire(key: string, alert: Alert): void {
    const now = this.#o.clock.now();
    const prev = this.#alerts.get(key);
    // Other labels make another alert for Alertmanager: the old one is resolved, not left to lapse.
    if (prev && JSON.stringify(prev.labels) !== JSON.stringify(alert.labels)) {
      this.#send([this.#wire({ ...prev, resolvedAt: now }, now)]);
    }
    const same = prev && JSON.stringify(prev.labels) === JSON.stringify(alert.labels);
    const state: AlertState = { ...alert, startsAt: same ? prev.startsAt : now };
    this.#alerts.set(key, state);
    this.#send([this.#wire(state, now)]);
  }

  /** Resolves the alert `key` if it fires; a no-op otherwise. */
  resolve(key: string): void {
    const state = this.#alerts.get(key);
    if (!state || state.resolvedAt !== undefined) return;
    const now = this.#o.clock.now();
    state.resolvedAt = now;
    this.#alerts.delete(key);
    this.#send([this.#wire(state, now)]);
  }

  /** Resolves every firing alert whose key starts with `prefix`. */
  resolvePrefix(prefix: string): void {
    for (const key of [...this.#alerts.keys()]) if (key.startsWith(prefix)) this.resolve(key);
  }

  #resendFiring(): void {
    const now = this.#o.clock.now();
    const wire = [...this.#alerts.values()].map((a) => this.#wire(a, now));
    if (wire.length) this.#send(wire);
  }

  #wire(a: AlertState, now: number): WireAlert {
    const endsAt = a.resolvedAt ?? now + 3 * this.#o.resendIntervalMs;
    return {
      labels: a.labels,
      annotations: a.annotations,
      startsAt: new Date(a.startsAt).toISOString(),
      endsAt: new Date(endsAt).toISOString(),
    };
  }

  #send(alerts: WireAlert[]): void {
    for (const s of this.#senders) s.enqueue(alerts);
  }
}

/** One webhook's queue and its single sender loop. */
class Sender {
  readonly #w: WebhookConfig;
  readonly #o: NotifierOptions;
  readonly #max: number;
  #queue: WireAlert[] = [];
  #running: Promise<void> | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;

  constructor(w: WebhookConfig, o: NotifierOptions) {
    this.#w = w;
    this.#o = o;
    this.#max = o.maxQueued ?? 1_000;
  }

  enqueue(alerts: WireAlert[]): void {
    if (this.#stopped) return;
    this.#queue.push(...alerts);
    const over = this.#queue.length - this.#max;
    if (over > 0) {
      this.#queue.splice(0, over);
      this.#o.onDropped?.(this.#w.name, over);
      this.#o.log.warn(
        { webhook: this.#w.name, dropped: over },
        'webhook queue full; dropped the oldest alerts',
      );
    }
    this.#running ??= this.#loop().finally(() => {
      this.#running = undefined;
    });
    this.#wake?.();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#running;
  }

  async #loop(): Promise<void> {
    while (!this.#stopped && this.#queue.length > 0) {
      // Everything queued goes in one request; the same alert twice keeps its latest state.
      const batch = dedupe(this.#queue.splice(0, this.#queue.length));
      let delay = this.#o.retryBaseMs ?? 1_000;
      for (let attempt = 1; ; attempt++) {
        const error = await this.#post(batch);
        this.#o.onAttempt?.(this.#w.name, error === undefined);
        if (error === undefined) break;
        if (attempt >= MAX_ATTEMPTS || this.#stopped) {
          this.#o.onDropped?.(this.#w.name, batch.length);
          this.#o.log.warn(
            { webhook: this.#w.name, alerts: batch.length, error },
            'webhook delivery failed; giving up',
          );
          break;
        }
        this.#o.log.info(
          { webhook: this.#w.name, retryInMs: delay, error },
          'webhook delivery failed; will retry',
        );
        await this.#sleep(delay);
        delay = Math.min(delay * 2, this.#o.retryCapMs ?? 60_000);
        // Newer states of the same alerts replace the ones being retried.
        if (this.#queue.length)
          batch.splice(0, batch.length, ...dedupe([...batch, ...this.#queue.splice(0)]));
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = this.#o.clock.setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      // stop() cuts the wait short; a new alert does not (the backoff holds).
      this.#wake = () => {
        if (!this.#stopped) return;
        this.#o.clock.clearTimeout(t);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  /** undefined on success, else why it failed. */
  async #post(alerts: WireAlert[]): Promise<string | undefined> {
    const am = this.#w.format === 'alertmanager';
    const url = am ? `${this.#w.url.replace(/\/+$/, '')}/api/v2/alerts` : this.#w.url;
    const now = this.#o.clock.now();
    const body = am
      ? alerts
      : {
          receiver: this.#w.name,
          source: 'cert-rotator',
          alerts: alerts.map((a) => ({ ...a, status: Date.parse(a.endsAt) <= now ? 'resolved' : 'firing' })),
        };
    try {
      const res = await (this.#o.fetch ?? fetch)(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#w.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }
}

function dedupe(alerts: WireAlert[]): WireAlert[] {
  const byLabels = new Map<string, WireAlert>();
  for (const a of alerts) {
    const k = JSON.stringify(Object.entries(a.labels).sort());
    byLabels.delete(k);
    byLabels.set(k, a);
  }
  return [...byLabels.values()];
}
