import type { CounterSeries, HistogramSeries } from '../obs/fast-metrics.js';
import type { EndpointCompiler } from '../routing/endpoint-cache.js';
import { DEFAULT_REPLAY_BODY_MAX_BYTES, type RouteTable } from '../schema/route-table.js';
import { Candidates, P2C_BALANCER, ROUND_ROBIN_BALANCER, type Balancer } from '../upstream/balancer.js';
import type { PoolRegistry } from '../upstream/pool-registry.js';
import { RouteState } from '../upstream/route-state.js';
import type { Logger } from '../obs/logger.js';
import type { EndpointLabeler, Metrics } from '../obs/metrics.js';
import { TrafficPolicy } from '../traffic/policy.js';
import { EndpointRouteHealth, probeConfigOf } from './route-health.js';
import { LoadMeter } from './load-meter.js';
import type { LoadReporter } from './load-reporter.js';

/** Anything waiting in an endpoint's hold queue. */
export interface HeldRequest {
  /** A usable table appeared (or the endpoint changed): try again with it. */
  wake(runtime: EndpointRuntime | null): void;
}

/** `retry.on_reset`, compiled to a number the hot path compares. */
export const OnReset = { None: 0, Idempotent: 1, All: 2 } as const;
export type OnReset = (typeof OnReset)[keyof typeof OnReset];

/** The one status-class table (metrics labels), indexed by `status / 100`. */
const STATUS_CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** `'2xx'` for 204; anything past 5xx counts as `'5xx'`. */
export function statusClass(status: number): string {
  return STATUS_CLASSES[Math.min(5, (status / 100) | 0)];
}
const NO_ROUTES: RouteTable['routes'] = Object.freeze([]) as unknown as RouteTable['routes'];

/** The routes that take traffic: the same array when that is all of them (the usual case), so a hot endpoint holds one array, not two. */
function takingTraffic(routes: RouteState[]): RouteState[] {
  for (let i = 0; i < routes.length; i++) if (!routes[i].takesTraffic) return routes.filter((r) => r.takesTraffic);
  return routes;
}

/**
 * The table as the snapshot keeps it: what the data plane reads, without the route list (it
 * lives on in `routes`) and the creation time. Copied key by key onto a fresh object so that
 * tables of the same shape share one hidden class: the spread `{ ...rest, routes }` gave every
 * compiled table a map and descriptor array of its own (~220 bytes per hot endpoint).
 */
function slimTable(table: RouteTable): RouteTable {
  const slim: Record<string, unknown> = {};
  for (const key of Object.keys(table)) {
    if (key !== 'routes' && key !== 'created_at') slim[key] = (table as Record<string, unknown>)[key];
  }
  slim.routes = NO_ROUTES;
  return slim as RouteTable;
}

function indexByKey(routes: RouteState[]): Map<string, RouteState> {
  const map = new Map<string, RouteState>();
  for (const state of routes) map.set(state.key, state);
  return map;
}

type RequestCounter = CounterSeries;
type DurationHistogram = HistogramSeries;

/**
 * Metric series for one endpoint label, created once per status class. Shared by
 * every endpoint with that label: past the label cap thousands of endpoints fold into `other`,
 * and they must not each carry their own copy.
 */
class LabelChildren {
  readonly #requests: RequestCounter[] = [];
  readonly #durations: DurationHistogram[] = [];
  readonly #label: string;
  readonly #metrics: Metrics;
  constructor(label: string, metrics: Metrics) {
    this.#label = label;
    this.#metrics = metrics;
  }

  record(status: number, seconds: number): void {
    const i = Math.min(5, (status / 100) | 0);
    let counter = this.#requests[i];
    if (counter === undefined) {
      counter = this.#metrics.requests.labels(this.#label, STATUS_CLASSES[i]);
      this.#requests[i] = counter;
      this.#durations[i] = this.#metrics.requestDuration.labels(this.#label, STATUS_CLASSES[i]);
    }
    counter.inc();
    this.#durations[i].observe(seconds);
  }

  recordError(code: string): void {
    this.#metrics.endpointErrors.labels(this.#label, code).inc();
  }
}

/** One LabelChildren per distinct endpoint label (bounded by the labeler's cap). */
export class EndpointMetricsRegistry {
  readonly #byLabel = new Map<string, LabelChildren>();
  readonly #labeler: EndpointLabeler;
  constructor(
    readonly metrics: Metrics,
    labeler: EndpointLabeler,
  ) {
    this.#labeler = labeler;
  }

  forEndpoint(name: string): { label: string; children: LabelChildren } {
    const label = this.#labeler.label(name);
    let children = this.#byLabel.get(label);
    if (children === undefined) {
      children = new LabelChildren(label, this.metrics);
      this.#byLabel.set(label, children);
    }
    return { label, children };
  }
}

/** Per-endpoint state that outlives route-table versions on this instance. */
export class EndpointShared {
  inFlight = 0;
  readonly label: string;
  /** Autoscaled endpoints only (set when the table is compiled): rps and latency for the autoscaler. */
  load: LoadMeter | null = null;
  /** Last wake request for this endpoint (performance.now()). */
  lastWakeAt = -Infinity;
  readonly #children: LabelChildren;
  // Allocated on first use: most endpoints never hold a request, and a million-endpoint
  // snapshot should not carry a million empty arrays.
  #held: HeldRequest[] | null = null;
  /** The gateway's health checks of this endpoint's routes (null until it has a health_check). */
  health: EndpointRouteHealth | null = null;

  constructor(name: string, registry: EndpointMetricsRegistry) {
    const { label, children } = registry.forEndpoint(name);
    this.label = label;
    this.#children = children;
  }

  /** The hold queue (FIFO). */
  get held(): HeldRequest[] {
    return (this.#held ??= []);
  }

  get heldCount(): number {
    return this.#held === null ? 0 : this.#held.length;
  }

  /** Counts a finished request. */
  record(status: number, seconds: number): void {
    this.#children.record(status, seconds);
    if (this.load !== null) this.load.record(seconds);
  }

  /** Counts an error the gateway answered for this endpoint (error path only). */
  recordError(code: string): void {
    this.#children.recordError(code);
  }
}

export interface RuntimeDefaults {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  maxConcurrentPerEndpoint: number;
  holdQueueMax: number;
}

/** One version of an endpoint's route table, compiled for the data plane. */
export class EndpointRuntime {
  readonly name: string;
  readonly id: string;
  readonly isPublic: boolean;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly maxConcurrent: number;
  readonly maxHeld: number;
  readonly balancer: Balancer;
  /** Caps, queue, rate limits and metering, compiled once per table version (src/traffic/). */
  readonly traffic: TrafficPolicy;
  readonly onReset: OnReset;
  readonly replayBodyMaxBytes: number;
  /** The controller scales this endpoint's service: held requests wake it, load is reported. */
  readonly autoscaled: boolean;

  constructor(
    readonly table: RouteTable,
    /** Every route of the table (any status), in table order. */
    readonly routes: RouteState[],
    /** Replaced (not mutated) when a health check moves a route in or out of rotation. */
    public candidates: Candidates,
    readonly shared: EndpointShared,
    defaults: RuntimeDefaults,
  ) {
    this.name = table.name;
    this.id = table.id;
    this.isPublic = table.public;
    this.headersTimeoutMs = table.timeouts?.first_byte_ms ?? defaults.headersTimeoutMs;
    this.bodyTimeoutMs = table.timeouts?.idle_ms ?? defaults.bodyTimeoutMs;
    this.maxConcurrent = table.limits?.max_concurrent ?? defaults.maxConcurrentPerEndpoint;
    this.maxHeld = table.limits?.max_held ?? defaults.holdQueueMax;
    this.balancer = table.balancer === 'round_robin' ? ROUND_ROBIN_BALANCER : P2C_BALANCER;
    this.traffic = new TrafficPolicy(table);
    const onReset = table.retry?.on_reset;
    this.onReset = onReset === 'all' ? OnReset.All : onReset === 'idempotent' ? OnReset.Idempotent : OnReset.None;
    this.replayBodyMaxBytes = table.retry?.replay_body_max_bytes ?? DEFAULT_REPLAY_BODY_MAX_BYTES;
    this.autoscaled = table.autoscaled === true;
  }

  refreshCandidates(): void {
    this.candidates = new Candidates(takingTraffic(this.routes));
  }
}

/** Builds runtimes from tables, carrying route state and pools over from the previous version. */
export class EndpointRuntimeCompiler implements EndpointCompiler<EndpointRuntime> {
  readonly #registry: EndpointMetricsRegistry;
  readonly #pools: PoolRegistry;
  readonly #defaults: RuntimeDefaults;
  /** Where autoscaled endpoints are registered for load reports; null: none reported. */
  readonly #loadReporter: LoadReporter | null;
  readonly #logger: Logger | undefined;
  /** Called when a health check brings a route back, so held requests can use it. */
  onRouteRecovered: (runtime: EndpointRuntime) => void = () => {};

  constructor(pools: PoolRegistry, defaults: RuntimeDefaults, metrics: Metrics, labeler: EndpointLabeler, loadReporter: LoadReporter | null = null, logger?: Logger) {
    this.#pools = pools;
    this.#defaults = defaults;
    this.#loadReporter = loadReporter;
    this.#logger = logger;
    this.#registry = new EndpointMetricsRegistry(metrics, labeler);
  }

  compile(table: RouteTable, previous: EndpointRuntime | undefined): EndpointRuntime {
    const connectMs = table.timeouts?.connect_ms ?? this.#defaults.connectTimeoutMs;
    const previousByKey = previous ? indexByKey(previous.routes) : null;
    // `map`, not `push`: an array grown by push keeps room for 17 elements, and every hot
    // endpoint holds this array for as long as it is cached.
    const routes = table.routes.map((route) => {
      const key = RouteState.key(route, connectMs);
      let state = previousByKey?.get(key);
      if (state) {
        previousByKey!.delete(key);
        state.weight = route.weight;
        state.status = route.status;
      } else {
        state = new RouteState(route, (origin, protocol) => this.#pools.acquire(origin, connectMs, protocol), key);
      }
      return state;
    });
    const sameEndpoint = previous && previous.id === table.id;
    const shared = sameEndpoint ? previous.shared : new EndpointShared(table.name, this.#registry);
    // Routes the new table dropped: their pool reference goes (in-flight requests finish).
    if (previousByKey) {
      for (const state of previousByKey.values()) {
        previous!.shared.health?.stop(state);
        this.#pools.release(state.pool);
      }
    }
    if (!sameEndpoint && previous) for (const state of routes) previous.shared.health?.stop(state);
    // Endpoints without health_check never get a tracker: nothing to pay for it.
    const probe = table.health_check ? probeConfigOf(table.health_check) : null;
    if (probe !== null || shared.health !== null) {
      const health = (shared.health ??= new EndpointRouteHealth(shared.label, this.#registry.metrics, this.#logger, (rt) => this.onRouteRecovered(rt as EndpointRuntime)));
      // Only routes the table sends traffic to are probed (the others take none anyway).
      for (const state of routes) health.sync(state, probe !== null && state.status === 'healthy' ? probe : null);
    }
    if (this.#loadReporter !== null && table.autoscaled !== true && shared.load !== null) {
      shared.load = null;
      this.#loadReporter.endpoints.delete(table.name);
    }
    // Bounded like every endpoint label (METRICS_ENDPOINT_LABEL_CAP): one series per endpoint
    // for a million endpoints would cost memory on every instance and flood /metrics.
    if (shared.label !== 'other') this.#registry.metrics.routeTableVersion.labels(shared.label).set(table.version);
    const runtime = new EndpointRuntime(slimTable(table), routes, new Candidates(takingTraffic(routes)), shared, this.#defaults);
    if (shared.health !== null) shared.health.current = runtime;
    if (this.#loadReporter !== null && table.autoscaled === true) {
      shared.load ??= new LoadMeter();
      this.#loadReporter.endpoints.set(table.name, runtime);
    }
    return runtime;
  }

  dispose(runtime: EndpointRuntime): void {
    const health = runtime.shared.health;
    if (health !== null && health.current === runtime) health.current = null;
    for (const state of runtime.routes) {
      health?.stop(state);
      this.#pools.release(state.pool);
    }
    if (this.#loadReporter?.endpoints.get(runtime.name) === runtime) this.#loadReporter.endpoints.delete(runtime.name);
  }

  /** Stops the runtime's health checks (the gateway is stopping; the runtime stays cached). */
  stopProbes(runtime: EndpointRuntime): void {
    const health = runtime.shared.health;
    if (health === null) return;
    for (const state of runtime.routes) health.stop(state);
  }

  tableOf(runtime: EndpointRuntime): RouteTable {
    return runtime.table;
  }
}
