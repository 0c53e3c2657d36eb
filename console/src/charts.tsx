import { useEffect, useRef, useState } from 'preact/hooks';
import type { AdminApi, ApiError, EndpointStats } from './api.js';
import { derive, sum, type Point } from './stats-math.js';
import { formatMs, formatNumber } from './format.js';
import { asApiError } from './hooks.js';
import { ErrorBanner } from './ui.js';

/**
 * Live charts for one endpoint: requests/s, p50/p99 latency, errors by code and in-flight per
 * replica, from GET /v1/endpoints/{name}/stats polled every second. The API returns cumulative
 * counters; rates and quantiles come from the difference between consecutive samples.
 */

const POLL_MS = 1000;
const WINDOW = 60;
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

export function EndpointCharts(props: { api: AdminApi; endpoint: string }) {
  const [points, setPoints] = useState<Point[]>([]);
  const [error, setError] = useState<ApiError | null>(null);
  const last = useRef<EndpointStats | null>(null);

  useEffect(() => {
    let alive = true;
    let busy = false;
    last.current = null;
    setPoints([]);
    const tick = async () => {
      if (busy) return;
      busy = true;
      try {
        const stats = await props.api.stats(props.endpoint);
        if (!alive) return;
        const prev = last.current;
        last.current = stats;
        setError(null);
        if (prev) setPoints((p) => [...p.slice(-(WINDOW - 1)), derive(prev, stats)]);
      } catch (err) {
        if (alive) setError(asApiError(err));
      } finally {
        busy = false;
      }
    };
    void tick();
    const timer = setInterval(() => void tick(), POLL_MS);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [props.api, props.endpoint]);

  const latest = points[points.length - 1];
  const errorCodes = [...new Set(points.flatMap((p) => Object.keys(p.errors)))].sort();
  const routeIds = [...new Set(points.flatMap((p) => Object.keys(p.inFlight)))].sort();
  return (
    <section class="card" aria-labelledby="charts-title">
      <div class="card-head">
        <h2 id="charts-title">Live traffic</h2>
        <span class="hint">last {WINDOW} s, refreshed every second</span>
      </div>
      <ErrorBanner error={error} prefix="Charts paused" />
      <div class="charts">
        <Chart
          title="Requests/s"
          value={latest ? `${formatNumber(latest.rps)} req/s` : '—'}
          series={[{ name: 'requests/s', values: points.map((p) => p.rps) }]}
          format={(v) => formatNumber(v)}
        />
        <Chart
          title="Latency p50 / p99"
          value={latest ? `p50 ${formatMs(latest.p50)} · p99 ${formatMs(latest.p99)}` : '—'}
          series={[
            { name: 'p50', values: points.map((p) => p.p50 * 1000) },
            { name: 'p99', values: points.map((p) => p.p99 * 1000) },
          ]}
          format={(v) => `${formatNumber(v)} ms`}
        />
        <Chart
          title="Errors/s by code"
          value={latest ? `${formatNumber(sum(latest.errors))} errors/s` : '—'}
          series={errorCodes.map((code) => ({ name: code, values: points.map((p) => p.errors[code] ?? 0) }))}
          format={(v) => formatNumber(v)}
          empty="No errors."
        />
        <Chart
          title="In flight per replica"
          value={latest ? `${sum(latest.inFlight)} in flight` : '—'}
          series={routeIds.map((id) => ({ name: id, values: points.map((p) => p.inFlight[id] ?? 0) }))}
          format={(v) => formatNumber(v, 0)}
          empty="No replica loaded on this gateway yet."
        />
      </div>
    </section>
  );
}

interface Series {
  name: string;
  values: number[];
}

const W = 320;
const H = 110;

function Chart(props: { title: string; value: string; series: Series[]; format: (v: number) => string; empty?: string }) {
  const finite = props.series.flatMap((s) => s.values.filter(Number.isFinite));
  const max = Math.max(1e-9, ...finite) * 1.1;
  const top = finite.length > 0 ? Math.max(...finite) : 0;
  const x = (i: number) => (i / (WINDOW - 1)) * W;
  const y = (v: number) => H - (v / max) * H;
  const path = (values: number[]) => {
    const offset = WINDOW - values.length;
    let d = '';
    let pen = false;
    values.forEach((v, i) => {
      if (!Number.isFinite(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i + offset).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    return d;
  };
  return (
    <figure class="chart" aria-label={props.title}>
      <figcaption>
        <span class="chart-title">{props.title}</span>
        <output class="chart-value">{props.value}</output>
      </figcaption>
      <div class="chart-plot">
        <span class="axis-max" aria-hidden="true">
          {props.format(top)}
        </span>
        <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`${props.title}, last ${WINDOW} seconds`}>
          <line x1="0" y1={H} x2={W} y2={H} class="baseline" />
          <line x1="0" y1={H / 2} x2={W} y2={H / 2} class="grid" />
          {props.series.map((s, i) => (
            <path key={s.name} d={path(s.values)} fill="none" stroke={COLORS[i % COLORS.length]} stroke-width="2" vector-effect="non-scaling-stroke" />
          ))}
        </svg>
      </div>
      {props.series.length > 0 ? (
        <ul class="legend">
          {props.series.map((s, i) => (
            <li key={s.name}>
              <span class="swatch" data-color={i % COLORS.length} />
              {s.name}
            </li>
          ))}
        </ul>
      ) : (
        <p class="hint">{props.empty ?? 'No data yet.'}</p>
      )}
    </figure>
  );
}
