import type { EndpointStats } from '../obs/endpoint-stats.js';
import { endpointNameSchema, parseStoredRouteTable } from '../schema/route-table.js';
import { getEndpointOrThrow } from '../control/endpoint-ops.js';
import type { Store } from '../store/store.js';
import type { AdminMount } from './mount.js';
import { parseParam } from './validate.js';

export interface StatsRoutesDeps {
  store: Store;
  /** This gateway's numbers for one endpoint (summed over its workers). */
  collect: (name: string) => Promise<EndpointStats>;
}

/**
 * GET /v1/endpoints/{name}/stats: the small JSON the console's live charts poll (docs/api.md),
 * so the browser never parses Prometheus text.
 */
export function statsRoutes(deps: StatsRoutesDeps): AdminMount {
  return (app) => {
    app.get('/v1/endpoints/:name/stats', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      // 404 for an endpoint that does not exist, like every other /v1/endpoints/{name} call.
      await getEndpointOrThrow(deps.store, name, (raw) => {
        const parsed = parseStoredRouteTable(raw);
        return parsed.ok ? parsed.table : null;
      });
      return c.json(await deps.collect(name), 200, { 'cache-control': 'no-store' });
    });
  };
}
