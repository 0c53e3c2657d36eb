import { z } from 'zod';
import { GatewayError } from '../errors/gateway-error.js';
import { endpointNameSchema } from '../schema/route-table.js';
import type { Store } from '../store/store.js';
import { MINUTE, USAGE_RETENTION_MS, type UsageGroupBy } from '../store/usage.js';
import type { AdminMount } from './mount.js';
import { parseParam, zodDetails } from './validate.js';

const DEFAULT_RANGE_MS = 24 * 3600_000;

/** Past this, an epoch number is read as milliseconds (1e11 s is the year 5138). */
const EPOCH_MS_THRESHOLD = 1e11;

/** RFC 3339, or epoch seconds (as the token API accepts; epoch milliseconds are recognised too). */
const instantSchema = z
  .string()
  .max(64)
  .transform((value, ctx) => {
    const num = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
    const ms = Number.isNaN(num) ? Date.parse(value) : num >= EPOCH_MS_THRESHOLD ? num : num * 1000;
    if (!Number.isFinite(ms)) {
      ctx.addIssue({ code: 'custom', message: 'must be an RFC 3339 time or epoch seconds' });
      return z.NEVER;
    }
    return ms;
  });

export const usageQuerySchema = z
  .object({
    from: instantSchema.optional(),
    to: instantSchema.optional(),
    group_by: z.enum(['token', 'sub']).optional(),
  })
  .strict();

export interface UsageRoutesDeps {
  store: Store;
  /** Writes this instance's pending usage first, so a query sees every finished request. */
  flushUsage?: () => Promise<void>;
}

/** GET /v1/endpoints/{name}/usage?from=&to=&group_by=token|sub (docs/traffic-control.md). */
export function usageRoutes(deps: UsageRoutesDeps): AdminMount {
  return (app) => {
    app.get('/v1/endpoints/:name/usage', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const parsed = usageQuerySchema.safeParse(c.req.query());
      if (!parsed.success) throw new GatewayError('ADM_INVALID', { details: zodDetails(parsed.error) });
      const now = Date.now();
      const to = parsed.data.to ?? now;
      const from = parsed.data.from ?? to - DEFAULT_RANGE_MS;
      if (from > to) throw new GatewayError('ADM_INVALID', { details: [{ field: 'from', message: 'must not be after to' }] });
      const groupBy: UsageGroupBy | undefined = parsed.data.group_by;
      await deps.flushUsage?.().catch(() => {});
      const fromMinute = Math.max(Math.floor(from / MINUTE), Math.floor((now - USAGE_RETENTION_MS) / MINUTE));
      const report = await deps.store.queryUsage({ endpoint: name, fromMinute, toMinute: Math.floor(to / MINUTE), groupBy });
      if (report.total.requests === 0 && (await deps.store.getEndpointRaw(name)) === null) {
        throw new GatewayError('ADM_NOT_FOUND', { message: `endpoint ${name} not found` });
      }
      const body: Record<string, unknown> = {
        endpoint: name,
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        group_by: groupBy ?? null,
        ...report.total,
      };
      if (report.groups !== undefined) {
        const subs = groupBy === 'token' ? await subjectsOf(deps.store, name) : null;
        body.groups = [...report.groups.entries()]
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([key, totals]) => (groupBy === 'token' ? { token: key, sub: subs?.get(key), ...totals } : { sub: key, ...totals }));
      }
      return c.json(body);
    });
  };
}

async function subjectsOf(store: Store, endpoint: string): Promise<Map<string, string>> {
  try {
    return new Map((await store.listTokens(endpoint)).map((t) => [t.jti, t.sub]));
  } catch {
    return new Map();
  }
}
