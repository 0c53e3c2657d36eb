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

// Visible ASCII without '/', so a route id can stand in a URL path segment; other control
// planes use UUIDs, names or host:port strings.
export const routeIdSchema = z.string().min(1).max(128).regex(/^[\x21-\x2e\x30-\x7e]+$/, 'visible ASCII characters other than "/" only');

/** Traffic ratio: any non-negative number (0 = no new requests). */
export const weightSchema = z.number().min(0).max(1_000_000);

/** Other spellings a control plane may use, read as the canonical names. */
const TIMEOUT_ALIASES: Record<string, string> = {
  connect_timeout_ms: 'connect_ms',
  first_byte_timeout_ms: 'first_byte_ms',
  headers_timeout_ms: 'first_byte_ms',
  idle_timeout_ms: 'idle_ms',
  body_timeout_ms: 'idle_ms',
};

export const timeoutsSchema = z.preprocess(
  (value) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) out[TIMEOUT_ALIASES[key] ?? key] = v;
    return out;
  },
  z
    .object({
      connect_ms: z.number().int().min(1).max(600_000).optional(),
      first_byte_ms: z.number().int().min(1).max(86_400_000).optional(),
      idle_ms: z.number().int().min(1).max(86_400_000).optional(),
    })
    .strict(),
);
export type EndpointTimeouts = z.infer<typeof timeoutsSchema>;

/**
 * How the gateway talks to a route: HTTP/1.1 (default; TLS when the URL is https://), `h2c`
 * (HTTP/2 over cleartext, prior knowledge) or `h2` (HTTP/2 over TLS, https:// only). gRPC
 * services need one of the HTTP/2 ones.
 */
export const ROUTE_PROTOCOLS = ['http1', 'h2c', 'h2'] as const;
export type RouteProtocol = (typeof ROUTE_PROTOCOLS)[number];

export const routeSchema = z
  .object({
    id: routeIdSchema,
    url: routeUrlSchema,
    weight: weightSchema.default(1),
    status: z.enum(ROUTE_STATUSES).default('healthy'),
    protocol: z.enum(ROUTE_PROTOCOLS).optional(),
  })
  .superRefine(checkRouteProtocol);

/** `h2c` is cleartext and `h2` is TLS: each must match the URL's scheme. */
export function checkRouteProtocol(route: { url: string; protocol?: RouteProtocol }, ctx: z.RefinementCtx): void {
  if (route.protocol === undefined || route.protocol === 'http1') return;
  const https = route.url.startsWith('https:');
  if (route.protocol === 'h2c' && https) ctx.addIssue({ code: 'custom', path: ['protocol'], message: 'h2c is HTTP/2 without TLS: use an http:// URL, or protocol "h2" for https://' });
  if (route.protocol === 'h2' && !https) ctx.addIssue({ code: 'custom', path: ['protocol'], message: 'h2 is HTTP/2 over TLS: use an https:// URL, or protocol "h2c" for http://' });
}
export type Route = z.infer<typeof routeSchema>;

/** Requests over `max_in_flight_per_route` wait here (docs/traffic-control.md). */
export const queueSchema = z
  .object({
    max_length: z.number().int().min(0).max(1_000_000).optional(),
    max_wait_ms: z.number().int().min(0).max(3_600_000).optional(),
  })
  .strict();

export const limitsSchema = z
  .object({
    max_concurrent: z.number().int().min(1).max(1_000_000).optional(),
    max_held: z.number().int().min(0).max(1_000_000).optional(),
    /** At most this many requests at once on each route, counted across every gateway instance. */
    max_in_flight_per_route: z.number().int().min(1).max(100_000).optional(),
    queue: queueSchema.optional(),
  })
  .strict();
export type EndpointLimits = z.infer<typeof limitsSchema>;

/** Per minute, for a token (its claims) or for an endpoint's callers together. */
export const rateLimitSchema = z
  .object({
    requests_per_minute: z.number().int().min(1).max(100_000_000).optional(),
    tokens_per_minute: z.number().int().min(1).max(10_000_000_000).optional(),
  })
  .strict();
export type RateLimit = z.infer<typeof rateLimitSchema>;

/** LLM usage metering options (docs/traffic-control.md). */
export const usageOptionsSchema = z
  .object({
    /** Read `usage` from responses to POST requests (default true). */
    meter: z.boolean().optional(),
    /** Ask streamed completions for a usage chunk and hide it from clients that did not ask. */
    request_in_stream: z.boolean().optional(),
  })
  .strict();
export type UsageOptions = z.infer<typeof usageOptionsSchema>;

const cidrSchema = z.string().max(64);

export const ON_RESET_MODES = ['none', 'idempotent', 'all'] as const;
export type OnResetMode = (typeof ON_RESET_MODES)[number];
export const DEFAULT_REPLAY_BODY_MAX_BYTES = 1024 * 1024;

/**
 * Replay of requests whose upstream closed or reset the connection before any response byte
 * (docs/resilience.md). `none` keeps the old rule: only connect failures are retried.
 */
export const retrySchema = z
  .object({
    on_reset: z.enum(ON_RESET_MODES).default('none'),
    replay_body_max_bytes: z.number().int().min(0).max(1024 * 1024 * 1024).default(DEFAULT_REPLAY_BODY_MAX_BYTES),
  })
  .strict();
export type EndpointRetry = z.infer<typeof retrySchema>;

/** Defaults of the gateway's own probes of pushed routes (docs/resilience.md). */
export const HEALTH_CHECK_DEFAULTS = { path: '/health', interval_s: 5, timeout_s: 2, unhealthy_after: 3, healthy_after: 2 } as const;

export const healthCheckSchema = z
  .object({
    path: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^\/[\x21-\x7e]*$/, 'must be an absolute path starting with "/" (visible ASCII)')
      .default(HEALTH_CHECK_DEFAULTS.path),
    interval_s: z.number().min(0.05).max(3600).default(HEALTH_CHECK_DEFAULTS.interval_s),
    timeout_s: z.number().min(0.01).max(600).default(HEALTH_CHECK_DEFAULTS.timeout_s),
    unhealthy_after: z.number().int().min(1).max(1000).default(HEALTH_CHECK_DEFAULTS.unhealthy_after),
    healthy_after: z.number().int().min(1).max(1000).default(HEALTH_CHECK_DEFAULTS.healthy_after),
  })
  .strict();
export type EndpointHealthCheck = z.infer<typeof healthCheckSchema>;

export const routeTableSchema = z.object({
  // The gateway creates UUIDs; a table written by another control plane may use any stable id.
  id: z.string().min(1).max(128),
  name: endpointNameSchema,
  public: z.boolean().default(false),
  version: z.number().int().min(1),
  routes: z.array(routeSchema).max(10_000).default([]),
  timeouts: timeoutsSchema.optional(),
  limits: limitsSchema.optional(),
  rate_limit: rateLimitSchema.optional(),
  usage: usageOptionsSchema.optional(),
  allowed_cidrs: z.array(cidrSchema).max(1024).optional(),
  balancer: z.enum(BALANCERS).optional(),
  retry: retrySchema.optional(),
  health_check: healthCheckSchema.optional(),
  /**
   * Written by the model-service controller for a service with `autoscaling`: gateways then
   * report this endpoint's load and wake its service when a request is held.
   */
  autoscaled: z.boolean().optional(),
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
