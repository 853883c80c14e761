/**
 * The part of prom-client this project uses — Counter, Gauge, Histogram, a Registry that renders
 * the Prometheus text format, and the process/Node metrics of collectDefaultMetrics — with the
 * same constructor options and methods, in a few hundred lines. prom-client costs ~21 MiB of RSS
 * to load (it pulls in @opentelemetry/api and more); this costs next to nothing
 * (docs/operations.md, "Memory").
 */
import { readdirSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver, constants as perf } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';

export type LabelValues<L extends string> = Partial<Record<L, string | number>>;

/** Anything the registry can render: writes its complete family (HELP, TYPE, samples) to `out`. */
export interface Collectable {
  readonly name: string;
  render(out: string[]): void | Promise<void>;
}

interface MetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  registers?: Registry[];
}

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

/** `{a="x",b="y"}` in the order of `names`, or '' without labels. */
function labelText(names: readonly string[], values: Record<string, string | number> | undefined): string {
  if (!values || names.length === 0) return '';
  const parts: string[] = [];
  for (const n of names) {
    const v = values[n];
    if (v !== undefined) parts.push(`${n}="${escapeLabel(String(v))}"`);
  }
  return parts.length ? `{${parts.join(',')}}` : '';
}

abstract class LabelledMetric<L extends string> implements Collectable {
  readonly name: string;
  readonly help: string;
  protected readonly labelNames: readonly L[];
  abstract readonly type: string;

  constructor(o: MetricOptions<L>) {
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
    for (const r of o.registers ?? []) r.registerMetric(this);
  }

  protected key(labels: LabelValues<L> | undefined): string {
    if (!labels) return '';
    for (const k of Object.keys(labels)) {
      if (!(this.labelNames as readonly string[]).includes(k)) {
        throw new Error(`metric ${this.name} has no label "${k}"`);
      }
    }
    return labelText(this.labelNames, labels as Record<string, string | number>);
  }

  protected header(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
  }

  abstract render(out: string[]): void | Promise<void>;
}

/** A counter per label set; `inc(labels?, value = 1)` or `inc(value)`. */
export class Counter<L extends string = string> extends LabelledMetric<L> {
  readonly type = 'counter';
  private readonly values = new Map<string, number>();

  inc(labels?: LabelValues<L> | number, value = 1): void {
    if (typeof labels === 'number') {
      this.inc(undefined, labels);
      return;
    }
    if (!(value >= 0)) throw new Error(`counter ${this.name} cannot be increased by ${value}`);
    const k = this.key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + value);
  }

  /** The current value for one label set (tests, diagnostics). */
  value(labels?: LabelValues<L>): number {
    return this.values.get(this.key(labels)) ?? 0;
  }

  reset(): void {
    this.values.clear();
  }

  render(out: string[]): void {
    this.header(out);
    for (const [k, v] of this.values) out.push(`${this.name}${k} ${formatValue(v)}`);
  }
}

/** A gauge per label set; `collect` (as in prom-client) runs before each scrape. */
export class Gauge<L extends string = string> extends LabelledMetric<L> {
  readonly type = 'gauge';
  private readonly values = new Map<string, number>();
  private readonly collect: ((this: Gauge<L>) => void | Promise<void>) | undefined;

  constructor(o: MetricOptions<L> & { collect?: (this: Gauge<L>) => void | Promise<void> }) {
    super(o);
    this.collect = o.collect;
  }

  set(labels: LabelValues<L> | number, value?: number): void {
    if (typeof labels === 'number') this.values.set('', labels);
    else this.values.set(this.key(labels), value ?? 0);
  }

  inc(labels?: LabelValues<L> | number, value = 1): void {
    if (typeof labels === 'number') {
      this.inc(undefined, labels);
      return;
    }
    const k = this.key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + value);
  }

  dec(labels?: LabelValues<L> | number, value = 1): void {
    if (typeof labels === 'number') {
      this.inc(undefined, -labels);
      return;
    }
    this.inc(labels, -value);
  }

  value(labels?: LabelValues<L>): number {
    return this.values.get(this.key(labels)) ?? 0;
  }

  reset(): void {
    this.values.clear();
  }

  async render(out: string[]): Promise<void> {
    if (this.collect) await this.collect.call(this);
    this.header(out);
    for (const [k, v] of this.values) out.push(`${this.name}${k} ${formatValue(v)}`);
  }
}

interface HistogramSeries {
  labels: Record<string, string | number>;
  counts: number[];
  sum: number;
  count: number;
}

/** A histogram per label set, with cumulative `le` buckets, `_sum` and `_count` as prom-client writes them. */
export class Histogram<L extends string = string> extends LabelledMetric<L> {
  readonly type = 'histogram';
  private readonly buckets: number[];
  private readonly series = new Map<string, HistogramSeries>();

  constructor(o: MetricOptions<L> & { buckets?: number[] }) {
    super(o);
    this.buckets = [...(o.buckets ?? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])].sort(
      (a, b) => a - b,
    );
  }

  observe(labels: LabelValues<L> | number, value?: number): void {
    if (typeof labels === 'number') {
      this.observe({}, labels);
      return;
    }
    const v = value ?? 0;
    const k = this.key(labels);
    let s = this.series.get(k);
    if (!s) {
      s = {
        labels: { ...(labels as Record<string, string | number>) },
        counts: this.buckets.map(() => 0),
        sum: 0,
        count: 0,
      };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++)
      if (v <= (this.buckets[i] as number)) (s.counts[i] as number)++;
    s.sum += v;
    s.count++;
  }

  /** Starts a timer; calling the result observes the seconds elapsed. */
  startTimer(labels: LabelValues<L> = {}): () => number {
    const t0 = process.hrtime.bigint();
    return () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      this.observe(labels, seconds);
      return seconds;
    };
  }

  reset(): void {
    this.series.clear();
  }

  render(out: string[]): void {
    this.header(out);
    const names = [...this.labelNames, 'le'];
    for (const [k, s] of this.series) {
      for (let i = 0; i < this.buckets.length; i++) {
        const le = formatValue(this.buckets[i] as number);
        out.push(`${this.name}_bucket${labelText(names, { ...s.labels, le })} ${s.counts[i]}`);
      }
      out.push(`${this.name}_bucket${labelText(names, { ...s.labels, le: '+Inf' })} ${s.count}`);
      out.push(`${this.name}_sum${k} ${formatValue(s.sum)}`, `${this.name}_count${k} ${s.count}`);
    }
  }
}

/** Renders its metrics in registration order; names must be unique. */
export class Registry {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  private readonly metricsByName = new Map<string, Collectable>();

  registerMetric(metric: Collectable): void {
    if (this.metricsByName.has(metric.name)) {
      throw new Error(`a metric named ${metric.name} is already registered`);
    }
    this.metricsByName.set(metric.name, metric);
  }

  getSingleMetric(name: string): Collectable | undefined {
    return this.metricsByName.get(name);
  }

  async metrics(): Promise<string> {
    const out: string[] = [];
    for (const m of this.metricsByName.values()) await m.render(out);
    out.push('');
    return out.join('\n');
  }
}

/** A family rendered by a function at scrape time (nothing stored between scrapes). */
export function scrapeTimeFamily(
  name: string,
  help: string,
  type: 'gauge' | 'counter',
  write: (emit: (labels: string, value: number) => void) => void,
): Collectable {
  return {
    name,
    render(out) {
      out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
      write((labels, value) => out.push(`${name}${labels} ${formatValue(value)}`));
    },
  };
}

/**
 * The process and Node.js metrics of prom-client's collectDefaultMetrics that matter for a
 * controller, under the same names: CPU, RSS, open fds, start time, heap (total, used, per
 * space), external memory, event-loop delay, GC pauses by kind, and the Node version.
 */
export function collectDefaultMetrics({
  register,
  prefix = '',
}: {
  register: Registry;
  prefix?: string;
}): void {
  const p = prefix;
  const startSeconds = Math.round(Date.now() / 1000 - process.uptime());
  const gauge = (
    name: string,
    help: string,
    write: (emit: (labels: string, value: number) => void) => void,
  ) => register.registerMetric(scrapeTimeFamily(`${p}${name}`, help, 'gauge', write));
  const counter = (
    name: string,
    help: string,
    write: (emit: (labels: string, value: number) => void) => void,
  ) => register.registerMetric(scrapeTimeFamily(`${p}${name}`, help, 'counter', write));

  counter('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', (emit) =>
    emit('', process.cpuUsage().user / 1e6),
  );
  counter('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', (emit) =>
    emit('', process.cpuUsage().system / 1e6),
  );
  counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', (emit) => {
    const u = process.cpuUsage();
    emit('', (u.user + u.system) / 1e6);
  });
  gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', (emit) =>
    emit('', startSeconds),
  );
  gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', (emit) =>
    emit('', process.memoryUsage.rss()),
  );
  if (process.platform === 'linux') {
    gauge('process_open_fds', 'Number of open file descriptors.', (emit) => {
      try {
        emit('', readdirSync('/proc/self/fd').length - 1);
      } catch {
        // /proc unavailable: leave the family empty rather than report a wrong number.
      }
    });
  }
  gauge('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', (emit) =>
    emit('', process.memoryUsage().heapTotal),
  );
  gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', (emit) =>
    emit('', process.memoryUsage().heapUsed),
  );
  gauge('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', (emit) =>
    emit('', process.memoryUsage().external),
  );
  gauge(
    'nodejs_heap_space_size_used_bytes',
    'Process heap space size used from Node.js in bytes.',
    (emit) => {
      for (const s of getHeapSpaceStatistics())
        emit(`{space="${escapeLabel(s.space_name.replace(/_space$/, ''))}"}`, s.space_used_size);
    },
  );

  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  gauge(
    'nodejs_eventloop_lag_p99_seconds',
    'The 99th percentile of the event loop delay since the last scrape.',
    (emit) => {
      emit('', delay.percentile(99) / 1e9);
    },
  );
  gauge('nodejs_eventloop_lag_max_seconds', 'The maximum event loop delay since the last scrape.', (emit) => {
    emit('', delay.max / 1e9);
    delay.reset();
  });

  const gc = new Histogram<'kind'>({
    name: `${p}nodejs_gc_duration_seconds`,
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    labelNames: ['kind'],
    buckets: [0.001, 0.01, 0.1, 1, 2, 5],
    registers: [register],
  });
  const kinds: Record<number, string> = {
    [perf.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [perf.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [perf.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [perf.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
  };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = kinds[(e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'unknown';
      gc.observe({ kind }, e.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ['gc'] });

  const [major, minor, patch] = process.versions.node.split('.');
  gauge('nodejs_version_info', 'Node.js version info.', (emit) =>
    emit(`{version="${escapeLabel(process.version)}",major="${major}",minor="${minor}",patch="${patch}"}`, 1),
  );
}
