import { z } from 'zod';
import { GatewayError } from '../errors/gateway-error.js';
import {
  BALANCERS,
  ROUTE_PROTOCOLS,
  ROUTE_STATUSES,
  checkRouteProtocol,
  endpointNameSchema,
  healthCheckSchema,
  limitsSchema,
  retrySchema,
  parseStoredRouteTable,
  rateLimitSchema,
  usageOptionsSchema,
  routeIdSchema,
  weightSchema,
  routeUrlSchema,
  timeoutsSchema,
  type RouteTable,
} from '../schema/route-table.js';
import { getEndpointOrThrow, patchEndpoint, patchRoute, putEndpoint, setRoutes } from '../control/endpoint-ops.js';
import type { Store } from '../store/store.js';
import type { AdminMount } from './mount.js';
import { parseJsonBody, parseParam } from './validate.js';

const routeInputSchema = z
  .object({
    id: routeIdSchema.optional(),
    url: routeUrlSchema,
    weight: weightSchema.optional(),
    status: z.enum(ROUTE_STATUSES).optional(),
    protocol: z.enum(ROUTE_PROTOCOLS).optional(),
  })
  .strict()
  .superRefine(checkRouteProtocol);

const cidrListSchema = z.array(z.string().max(64)).max(1024);

export const endpointBodySchema = z
  .object({
    public: z.boolean().optional(),
    routes: z.array(routeInputSchema).max(10_000).optional(),
    timeouts: timeoutsSchema.optional(),
    limits: limitsSchema.optional(),
    rate_limit: rateLimitSchema.optional(),
    usage: usageOptionsSchema.optional(),
    allowed_cidrs: cidrListSchema.optional(),
    balancer: z.enum(BALANCERS).optional(),
    // null removes the setting (PATCH); on PUT it is the same as leaving it out.
    retry: retrySchema.nullable().optional(),
    health_check: healthCheckSchema.nullable().optional(),
    expected_version: z.number().int().min(1).optional(),
  })
  .strict();

export const routesBodySchema = z
  .object({
    routes: z.array(routeInputSchema).max(10_000),
    expected_version: z.number().int().min(1).optional(),
  })
  .strict();

export const routePatchSchema = z
  .object({
    weight: weightSchema.optional(),
    status: z.enum(ROUTE_STATUSES).optional(),
    url: routeUrlSchema.optional(),
    expected_version: z.number().int().min(1).optional(),
  })
  .strict();

export interface EndpointsRoutesDeps {
  store: Store;
  /** Public address of an endpoint, e.g. http://name.localhost:8080/ */
  endpointUrl: (name: string) => string;
  /** Validates CIDR strings; returns the index and message of the first bad one. */
  checkCidrs?: (cidrs: string[]) => { index: number; message: string } | null;
  /** Why a route URL reaches this gateway's own listeners (refused: a proxy loop), or null. */
  ownAddress?: (url: string) => string | null;
  /** Called after an endpoint is deleted (controller stops its service, tokens forgotten). */
  onDeleted?: (name: string, table: RouteTable) => Promise<void>;
}

function parseTable(raw: string): RouteTable | null {
  const result = parseStoredRouteTable(raw);
  return result.ok ? result.table : null;
}

export function endpointsRoutes(deps: EndpointsRoutesDeps): AdminMount {
  const view = (table: RouteTable) => ({ ...table, url: deps.endpointUrl(table.name) });
  const checkCidrs = (cidrs: string[] | undefined) => {
    if (!cidrs || !deps.checkCidrs) return;
    const bad = deps.checkCidrs(cidrs);
    if (bad) throw new GatewayError('ADM_INVALID', { details: [{ field: `allowed_cidrs.${bad.index}`, message: bad.message }] });
  };

  const checkRouteUrls = (routes: { url: string }[] | undefined, field: (i: number) => string) => {
    if (!routes || !deps.ownAddress) return;
    const details = [];
    for (let i = 0; i < routes.length; i++) {
      const problem = deps.ownAddress(routes[i].url);
      if (problem !== null) details.push({ field: field(i), message: problem });
    }
    if (details.length > 0) throw new GatewayError('ADM_INVALID', { details });
  };
  const routeField = (i: number) => `routes.${i}.url`;

  return (app) => {
    app.get('/v1/endpoints', async (c) => {
      const names = (await deps.store.listEndpointNames()).sort();
      const raws = names.length > 0 ? await deps.store.getEndpointsRaw(names) : [];
      const endpoints: unknown[] = [];
      for (const raw of raws) {
        const table = raw === null ? null : parseTable(raw);
        if (table) endpoints.push(view(table));
      }
      return c.json({ endpoints });
    });

    app.get('/v1/endpoints/:name', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      return c.json(view(await getEndpointOrThrow(deps.store, name, parseTable)));
    });

    app.put('/v1/endpoints/:name', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const body = await parseJsonBody(c, endpointBodySchema, { optional: true });
      checkCidrs(body.allowed_cidrs);
      checkRouteUrls(body.routes, routeField);
      const { expected_version: expectedVersion, ...input } = body;
      if (expectedVersion !== undefined) {
        const table = await patchEndpoint(deps.store, name, { ...input, public: input.public ?? false, routes: input.routes ?? [] }, expectedVersion);
        return c.json(view(table), 200);
      }
      const { table, created } = await putEndpoint(deps.store, name, input);
      return c.json(view(table), created ? 201 : 200);
    });

    app.patch('/v1/endpoints/:name', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const body = await parseJsonBody(c, endpointBodySchema);
      checkCidrs(body.allowed_cidrs);
      checkRouteUrls(body.routes, routeField);
      const { expected_version: expectedVersion, ...input } = body;
      return c.json(view(await patchEndpoint(deps.store, name, input, expectedVersion)));
    });

    app.delete('/v1/endpoints/:name', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const table = await getEndpointOrThrow(deps.store, name, parseTable);
      const deleted = await deps.store.deleteEndpoint(name);
      if (!deleted) throw new GatewayError('ADM_NOT_FOUND', { message: `endpoint ${name} not found` });
      await deps.onDeleted?.(name, table);
      return c.body(null, 204);
    });

    app.put('/v1/endpoints/:name/routes', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const body = await parseJsonBody(c, routesBodySchema);
      checkRouteUrls(body.routes, routeField);
      return c.json(view(await setRoutes(deps.store, name, body.routes, body.expected_version)));
    });

    app.patch('/v1/endpoints/:name/routes/:routeId', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const routeId = parseParam(routeIdSchema, 'route_id', c.req.param('routeId'));
      const { expected_version: expectedVersion, ...change } = await parseJsonBody(c, routePatchSchema);
      if (change.url !== undefined) checkRouteUrls([{ url: change.url }], () => 'url');
      return c.json(view(await patchRoute(deps.store, name, routeId, change, expectedVersion)));
    });
  };
}
