import { z } from 'zod';

/**
 * The route table: the unit a control plane writes (`mg:endpoint:{name}` in Redis) and every
 * gateway instance serves from memory. Stored tables are parsed with `parseStoredRouteTable`;
 * unknown keys are dropped there so a newer control plane does not break an older gateway.
 */

export const ENDPOINT_NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const ROUTE_STATUSES = ['provisioning', 'healthy', 'unhealthy', 'terminating', 'failed_to_start'] as const;
export type RouteStatus = (typeof ROUTE_STATUSES)[number];
export const BALANCERS = ['p2c', 'round_robin'] as const;
export type BalancerKind = (typeof BALANCERS)[number];

export const endpointNameSchema = z
  .string()
  .regex(ENDPOINT_NAME_RE, 'must be a DNS label: 1-63 of a-z, 0-9 and "-", not starting or ending with "-"');

export const routeUrlSchema = z.string().max(2048).superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL' });
    return;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL' });
  } else if (url.username || url.password) {
    ctx.addIssue({ code: 'custom', message: 'must not carry credentials' });
  } else if (url.search || url.hash) {
    ctx.addIssue({ code: 'custom', message: 'must not have a query or fragment' });
  }
});

export const routeIdSchema = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only');

export const timeoutsSchema = z
  .object({
    connect_ms: z.number().int().min(1).max(600_000).optional(),
    first_byte_ms: z.number().int().min(1).max(86_400_000).optional(),
    idle_ms: z.number().int().min(1).max(86_400_000).optional(),
  })
  .strict();
export type EndpointTimeouts = z.infer<typeof timeoutsSchema>;

export const routeSchema = z.object({
  id: routeIdSchema,
  url: routeUrlSchema,
  weight: z.number().int().min(0).max(1_000_000).default(1),
  status: z.enum(ROUTE_STATUSES).default('healthy'),
});
export type Route = z.infer<typeof routeSchema>;

export const limitsSchema = z
  .object({
    max_concurrent: z.number().int().min(1).max(1_000_000).optional(),
    max_held: z.number().int().min(0).max(1_000_000).optional(),
  })
  .strict();
export type EndpointLimits = z.infer<typeof limitsSchema>;

const cidrSchema = z.string().max(64);

export const routeTableSchema = z.object({
  id: z.string().uuid(),
  name: endpointNameSchema,
  public: z.boolean().default(false),
  version: z.number().int().min(1),
  routes: z.array(routeSchema).max(10_000).default([]),
  timeouts: timeoutsSchema.optional(),
  limits: limitsSchema.optional(),
  allowed_cidrs: z.array(cidrSchema).max(1024).optional(),
  balancer: z.enum(BALANCERS).optional(),
  created_at: z.string().optional(),
  updated_at: z.string().optional(),
});
export type RouteTable = z.infer<typeof routeTableSchema>;

export type ParseResult = { ok: true; table: RouteTable } | { ok: false; error: string };

/** Parses a stored route table (JSON text or object). Never throws. */
export function parseStoredRouteTable(raw: string | unknown): ParseResult {
  let value: unknown = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch (err) {
      return { ok: false, error: `not JSON: ${(err as Error).message}` };
    }
  }
  const result = routeTableSchema.safeParse(value);
  if (!result.success) {
    return { ok: false, error: result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') };
  }
  const ids = new Set<string>();
  for (const r of result.data.routes) {
    if (ids.has(r.id)) return { ok: false, error: `routes: duplicate route id ${r.id}` };
    ids.add(r.id);
  }
  return { ok: true, table: result.data };
}
