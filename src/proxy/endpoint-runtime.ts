import type { Counter, Histogram } from 'prom-client';
import type { EndpointCompiler } from '../routing/endpoint-cache.js';
import type { RouteTable } from '../routing/route-table.js';
import { Candidates, P2C_BALANCER, ROUND_ROBIN_BALANCER, type Balancer } from '../upstream/balancer.js';
import type { PoolRegistry } from '../upstream/pool-registry.js';
import { RouteState } from '../upstream/route-state.js';
import type { EndpointLabeler, Metrics } from '../obs/metrics.js';

/** Anything waiting in an endpoint's hold queue. */
export interface HeldRequest {
  /** A usable table appeared (or the endpoint changed): try again with it. */
  wake(runtime: EndpointRuntime | null): void;
}

const STATUS_CLASSES = ['1xx', '1xx', '2xx', '3xx', '4xx', '5xx'];

/** Per-endpoint state that outlives route-table versions on this instance. */
export class EndpointShared {
  inFlight = 0;
  readonly held: HeldRequest[] = [];
  readonly label: string;
  readonly #requests: Counter<'endpoint' | 'status_class'>;
  readonly #durations: Histogram<'endpoint' | 'status_class'>;
  readonly #requestChildren: ReturnType<Counter<'endpoint' | 'status_class'>['labels']>[] = [];
  readonly #durationChildren: ReturnType<Histogram<'endpoint' | 'status_class'>['labels']>[] = [];

  constructor(name: string, metrics: Metrics, labeler: EndpointLabeler) {
    this.label = labeler.label(name);
    this.#requests = metrics.requests;
    this.#durations = metrics.requestDuration;
  }

  /** Counts a finished request; label children are created once per class. */
  record(status: number, seconds: number): void {
    const i = Math.min(5, (status / 100) | 0);
    let counter = this.#requestChildren[i];
    if (counter === undefined) {
      counter = this.#requests.labels(this.label, STATUS_CLASSES[i]);
      this.#requestChildren[i] = counter;
      this.#durationChildren[i] = this.#durations.labels(this.label, STATUS_CLASSES[i]);
    }
    counter.inc();
    this.#durationChildren[i].observe(seconds);
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

  constructor(
    readonly table: RouteTable,
    readonly routes: Map<string, RouteState>,
    readonly candidates: Candidates,
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
  }
}

/** Builds runtimes from tables, carrying route state and pools over from the previous version. */
export class EndpointRuntimeCompiler implements EndpointCompiler<EndpointRuntime> {
  constructor(
    private readonly pools: PoolRegistry,
    private readonly defaults: RuntimeDefaults,
    private readonly metrics: Metrics,
    private readonly labeler: EndpointLabeler,
  ) {}

  compile(table: RouteTable, previous: EndpointRuntime | undefined): EndpointRuntime {
    const connectMs = table.timeouts?.connect_ms ?? this.defaults.connectTimeoutMs;
    const routes = new Map<string, RouteState>();
    const candidates: RouteState[] = [];
    for (const route of table.routes) {
      const key = `${RouteState.key(route)}\u0000${connectMs}`;
      let state = previous?.routes.get(key);
      if (state) {
        state.weight = route.weight;
        state.status = route.status;
      } else {
        state = new RouteState(route, this.pools.acquire(new URL(route.url).origin, connectMs));
      }
      routes.set(key, state);
      if (route.status === 'healthy' && route.weight > 0) candidates.push(state);
    }
    if (previous) {
      for (const [key, state] of previous.routes) if (!routes.has(key)) this.pools.release(state.pool);
    }
    const sameEndpoint = previous && previous.id === table.id;
    const shared = sameEndpoint ? previous.shared : new EndpointShared(table.name, this.metrics, this.labeler);
    // Bounded like every endpoint label (METRICS_ENDPOINT_LABEL_CAP): one series per endpoint
    // for a million endpoints would cost memory on every instance and flood /metrics.
    if (shared.label !== 'other') this.metrics.routeTableVersion.labels(shared.label).set(table.version);
    return new EndpointRuntime(table, routes, new Candidates(candidates), shared, this.defaults);
  }

  dispose(runtime: EndpointRuntime): void {
    for (const state of runtime.routes.values()) this.pools.release(state.pool);
  }

  tableOf(runtime: EndpointRuntime): RouteTable {
    return runtime.table;
  }
}
