import { randomUUID, randomBytes } from 'node:crypto';
import { GatewayError } from '../errors/gateway-error.js';
import type { BalancerKind, EndpointHealthCheck, EndpointLimits, EndpointRetry, EndpointTimeouts, RateLimit, Route, RouteProtocol, RouteStatus, RouteTable, UsageOptions } from '../schema/route-table.js';
import type { Store } from '../store/store.js';

/**
 * Control-plane operations on route tables, shared by the admin API and the model-service
 * controller. Each is one atomic store update (version bump + event).
 */

export interface RouteInput {
  id?: string;
  url: string;
  weight?: number;
  status?: RouteStatus;
  protocol?: RouteProtocol;
}

export interface EndpointInput {
  public?: boolean;
  routes?: RouteInput[];
  timeouts?: EndpointTimeouts;
  limits?: EndpointLimits;
  rate_limit?: RateLimit;
  usage?: UsageOptions;
  allowed_cidrs?: string[];
  balancer?: BalancerKind;
  /** null (PATCH) removes the setting. */
  retry?: EndpointRetry | null;
  health_check?: EndpointHealthCheck | null;
  /** Controller only (never from the admin API): see RouteTable.autoscaled. */
  autoscaled?: boolean;
}

export function newRouteId(): string {
  return `r-${randomBytes(6).toString('hex')}`;
}

function materializeRoutes(input: RouteInput[], previous: Route[] = []): Route[] {
  const seen = new Set<string>();
  const byUrl = new Map(previous.map((r) => [r.url, r.id]));
  return input.map((r, i) => {
    const id = r.id ?? byUrl.get(r.url) ?? newRouteId();
    if (seen.has(id)) {
      throw new GatewayError('ADM_INVALID', { details: [{ field: `routes.${i}.id`, message: `duplicate route id ${id}` }] });
    }
    seen.add(id);
    const route: Route = { id, url: r.url, weight: r.weight ?? 1, status: r.status ?? 'healthy' };
    if (r.protocol !== undefined && r.protocol !== 'http1') route.protocol = r.protocol;
    return route;
  });
}

function now(): string {
  return new Date().toISOString();
}

/** PUT /v1/endpoints/{name}: create, or replace everything but the permanent id. */
export function putEndpoint(store: Store, name: string, input: EndpointInput) {
  return store.updateEndpoint(name, (current) => {
    const table: Omit<RouteTable, 'version'> = {
      id: current?.id ?? randomUUID(),
      name,
      public: input.public ?? false,
      routes: materializeRoutes(input.routes ?? [], current?.routes),
      created_at: current?.created_at ?? now(),
      updated_at: now(),
    };
    if (input.timeouts) table.timeouts = input.timeouts;
    if (input.limits) table.limits = input.limits;
    if (input.rate_limit) table.rate_limit = input.rate_limit;
    if (input.usage) table.usage = input.usage;
    if (input.allowed_cidrs) table.allowed_cidrs = input.allowed_cidrs;
    if (input.balancer) table.balancer = input.balancer;
    if (input.retry) table.retry = input.retry;
    if (input.health_check) table.health_check = input.health_check;
    // Owned by the controller: a PUT by an operator does not switch its service's autoscaling off.
    if (current?.autoscaled) table.autoscaled = true;
    return table;
  });
}

function requireCurrent(current: RouteTable | null, name: string): RouteTable {
  if (!current) throw new GatewayError('ADM_NOT_FOUND', { message: `endpoint ${name} not found` });
  return current;
}

/** PATCH /v1/endpoints/{name}: only the fields given. */
export async function patchEndpoint(store: Store, name: string, input: EndpointInput, expectedVersion?: number, fence?: string) {
  const { table } = await store.updateEndpoint(
    name,
    (cur) => {
      const current = requireCurrent(cur, name);
      const { version: _v, ...rest } = current;
      const next: Omit<RouteTable, 'version'> = { ...rest, updated_at: now() };
      if (input.public !== undefined) next.public = input.public;
      if (input.routes !== undefined) next.routes = materializeRoutes(input.routes, current.routes);
      if (input.timeouts !== undefined) next.timeouts = input.timeouts;
      if (input.limits !== undefined) next.limits = input.limits;
      if (input.rate_limit !== undefined) next.rate_limit = input.rate_limit;
      if (input.usage !== undefined) next.usage = input.usage;
      if (input.allowed_cidrs !== undefined) next.allowed_cidrs = input.allowed_cidrs;
      if (input.balancer !== undefined) next.balancer = input.balancer;
      if (input.retry === null) delete next.retry;
      else if (input.retry !== undefined) next.retry = input.retry;
      if (input.health_check === null) delete next.health_check;
      else if (input.health_check !== undefined) next.health_check = input.health_check;
      if (input.autoscaled === true) next.autoscaled = true;
      else if (input.autoscaled === false) delete next.autoscaled;
      return next;
    },
    { expectedVersion, fence },
  );
  return table;
}

/** PUT /v1/endpoints/{name}/routes: replace the route list, optionally compare-and-set. */
export async function setRoutes(store: Store, name: string, routes: RouteInput[], expectedVersion?: number) {
  return patchEndpoint(store, name, { routes }, expectedVersion);
}

/** PATCH /v1/endpoints/{name}/routes/{id}. */
export async function patchRoute(
  store: Store,
  name: string,
  routeId: string,
  change: { weight?: number; status?: RouteStatus; url?: string },
  expectedVersion?: number,
) {
  const { table } = await store.updateEndpoint(
    name,
    (cur) => {
      const current = requireCurrent(cur, name);
      const index = current.routes.findIndex((r) => r.id === routeId);
      if (index < 0) throw new GatewayError('ADM_NOT_FOUND', { message: `route ${routeId} not found on endpoint ${name}` });
      const { version: _v, ...rest } = current;
      const routes = current.routes.slice();
      routes[index] = { ...routes[index], ...stripUndefined(change) };
      return { ...rest, routes, updated_at: now() };
    },
    { expectedVersion },
  );
  return table;
}

function stripUndefined<T extends object>(obj: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

export async function getEndpointOrThrow(store: Store, name: string, parse: (raw: string) => RouteTable | null): Promise<RouteTable> {
  const raw = await store.getEndpointRaw(name);
  const table = raw === null ? null : parse(raw);
  if (!table) throw new GatewayError('ADM_NOT_FOUND', { message: `endpoint ${name} not found` });
  return table;
}
