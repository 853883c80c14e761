import { describe, expect, it } from 'vitest';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from '../../src/observability/prom.ts';

describe('Prometheus text exposition (the prom-client subset)', () => {
  it('renders counters, gauges and histograms as prom-client does, labels in declared order and escaped', async () => {
    const r = new Registry();
    const c = new Counter({
      name: 'x_total',
      help: 'Things.\nTwo lines',
      labelNames: ['b', 'a'],
      registers: [r],
    });
    c.inc({ a: '1', b: 'q"uo\\te' });
    c.inc({ a: '1', b: 'q"uo\\te' }, 2);
    c.inc({ a: '2' });
    const g = new Gauge({
      name: 'g',
      help: 'G.',
      registers: [r],
      collect() {
        this.set(42);
      },
    });
    expect(g.value()).toBe(0);
    const h = new Histogram({
      name: 'h_seconds',
      help: 'H.',
      labelNames: ['k'],
      buckets: [1, 0.1],
      registers: [r],
    });
    h.observe({ k: 'x' }, 0.05);
    h.observe({ k: 'x' }, 0.5);
    h.observe({ k: 'x' }, 7);
    expect(await r.metrics()).toBe(
      [
        '# HELP x_total Things.\\nTwo lines',
        '# TYPE x_total counter',
        'x_total{b="q\\"uo\\\\te",a="1"} 3',
        'x_total{a="2"} 1',
        '# HELP g G.',
        '# TYPE g gauge',
        'g 42',
        '# HELP h_seconds H.',
        '# TYPE h_seconds histogram',
        'h_seconds_bucket{k="x",le="0.1"} 1',
        'h_seconds_bucket{k="x",le="1"} 2',
        'h_seconds_bucket{k="x",le="+Inf"} 3',
        'h_seconds_sum{k="x"} 7.55',
        'h_seconds_count{k="x"} 3',
        '',
      ].join('\n'),
    );
    expect(c.value({ a: '2' })).toBe(1);
    expect(r.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
  });

  it('refuses an unknown label, a negative increment and a second metric of the same name', () => {
    const r = new Registry();
    const c = new Counter({ name: 'c_total', help: 'C.', labelNames: ['a'], registers: [r] });
    expect(() => c.inc({ b: 'x' } as never)).toThrow(/has no label "b"/);
    expect(() => c.inc(-1)).toThrow(/cannot be increased by -1/);
    expect(() => new Counter({ name: 'c_total', help: 'again', registers: [r] })).toThrow(
      /already registered/,
    );
  });

  it('process metrics carry the prefix and real values', async () => {
    const r = new Registry();
    collectDefaultMetrics({ register: r, prefix: 'p_' });
    const text = await r.metrics();
    const rss = Number(/^p_process_resident_memory_bytes (\d+)$/m.exec(text)?.[1]);
    expect(rss).toBeGreaterThan(10 * 1024 * 1024);
    expect(text).toMatch(/^p_process_cpu_seconds_total [0-9.e-]+$/m);
    expect(text).toMatch(/^p_nodejs_heap_space_size_used_bytes\{space="old"\} \d+$/m);
    expect(text).toContain(`p_nodejs_version_info{version="${process.version}"`);
  });
});
