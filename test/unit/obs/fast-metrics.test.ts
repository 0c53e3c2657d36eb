import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LabeledCounter, LabeledHistogram } from '../../../src/obs/fast-metrics.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];
const VALUES = [0.0005, 0.001, 0.002, 0.05, 0.5, 3, 0.01, NaN];

function promClient() {
  const registry = new Registry();
  const c = new Counter({ name: 'x_requests_total', help: 'h', labelNames: ['endpoint', 'status_class'], registers: [registry] });
  const h = new Histogram({ name: 'x_duration_seconds', help: 'h', labelNames: ['endpoint', 'status_class'], buckets: BOUNDS, registers: [registry] });
  return { registry, c, h };
}

function fast() {
  const registry = new Registry();
  const c = new LabeledCounter('x_requests_total', 'h', ['endpoint', 'status_class'], registry);
  const h = new LabeledHistogram('x_duration_seconds', 'h', ['endpoint', 'status_class'], BOUNDS, registry);
  return { registry, c, h };
}

describe('per-request metric series', () => {
  it('expose the same text as prom-client for the same observations', async () => {
    const ref = promClient();
    const mine = fast();
    const a = mine.c.labels('a', '2xx');
    const ha = mine.h.labels('a', '2xx');
    for (const v of VALUES) {
      if (Number.isFinite(v)) {
        ref.c.labels('a', '2xx').inc();
        ref.h.labels('a', '2xx').observe(v);
      }
      a.inc();
      ha.observe(v); // a non-finite value is ignored, where prom-client throws
    }
    // NaN counted by the counter above but not by prom-client's: align the counts.
    ref.c.labels('a', '2xx').inc();
    ref.c.labels('b', '5xx').inc(2);
    mine.c.labels('b', '5xx').inc(2);
    ref.h.labels('b', '5xx').observe(2);
    mine.h.labels('b', '5xx').observe(2);
    expect(await mine.registry.metrics()).toBe(await ref.registry.metrics());
    expect(mine.c.labels('a', '2xx')).toBe(a);
  });

  it('aggregate across cluster workers like prom-client metrics', async () => {
    const w1 = fast();
    const w2 = fast();
    w1.c.labels('a', '2xx').inc(3);
    w2.c.labels('a', '2xx').inc(4);
    w1.h.labels('a', '2xx').observe(0.005);
    w2.h.labels('a', '2xx').observe(0.5);
    const agg = AggregatorRegistry.aggregate([await w1.registry.getMetricsAsJSON(), await w2.registry.getMetricsAsJSON()] as never);
    const text = await agg.metrics();
    expect(text).toContain('x_requests_total{endpoint="a",status_class="2xx"} 7');
    expect(text).toContain('x_duration_seconds_bucket{le="0.01",endpoint="a",status_class="2xx"} 1');
    expect(text).toContain('x_duration_seconds_bucket{le="+Inf",endpoint="a",status_class="2xx"} 2');
    expect(text).toContain('x_duration_seconds_count{endpoint="a",status_class="2xx"} 2');
  });
});
