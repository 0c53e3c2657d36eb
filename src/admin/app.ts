import { timingSafeEqual, createHash, randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { GatewayError } from '../errors/gateway-error.js';
import { toHttp } from '../errors/to-http.js';
import { isSafeRequestId } from '../lib/headers.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { AdminApp, AdminEnv, AdminMount } from './mount.js';


export interface AdminAppOptions {
  adminToken: string;
  bodyLimitBytes: number;
  logger: Logger;
  metrics: Metrics;
  /** Prometheus text for /metrics; default: this process's registry (a cluster primary sums its workers'). */
  metricsText?: () => Promise<string>;
  /** ADMIN_METRICS_AUTH: /metrics needs the admin token too. */
  metricsAuth?: boolean;
  /** Extra readiness facts for /healthz. */
  health?: () => Record<string, unknown>;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Constant-time bearer check: compare digests so length differences leak nothing. */
export function adminTokenMatcher(adminToken: string): (header: string | undefined) => boolean {
  const expected = digest(adminToken);
  return function matchesAdminToken(header) {
    if (!header || header.length < 8 || header.length > 4096) return false;
    const space = header.indexOf(' ');
    if (space < 0 || header.slice(0, space).toLowerCase() !== 'bearer') return false;
    const given = digest(header.slice(space + 1).trim());
    return timingSafeEqual(given, expected);
  };
}

export function createAdminApp(opts: AdminAppOptions, mounts: AdminMount[]): AdminApp {
  const app = new Hono<AdminEnv>();
  const isAdmin = adminTokenMatcher(opts.adminToken);

  app.use('*', async (c, next) => {
    const given = c.req.header('x-request-id');
    // Same rule as the data plane: it is echoed in a header and logged, so visible ASCII only.
    c.set('requestId', given !== undefined && isSafeRequestId(given) ? given : randomUUID());
    await next();
    c.header('x-request-id', c.get('requestId'));
  });

  app.onError((err, c) => {
    const requestId = c.get('requestId') ?? randomUUID();
    if (!(err instanceof GatewayError)) opts.logger.error({ err, request_id: requestId, path: c.req.path }, 'admin API internal error');
    const http = toHttp(err, requestId, 'ADM_INTERNAL');
    return c.body(http.body, http.status as 400, { ...http.headers, 'x-request-id': requestId });
  });

  app.notFound((c) => {
    const http = toHttp(new GatewayError('ADM_NOT_FOUND', { message: `no admin route ${c.req.method} ${c.req.path}` }), c.get('requestId'));
    return c.body(http.body, 404, http.headers);
  });

  app.get('/healthz', (c) => c.json({ status: 'ok', ...(opts.health?.() ?? {}) }));
  app.get('/metrics', async (c) => {
    if (opts.metricsAuth && !isAdmin(c.req.header('authorization'))) throw new GatewayError('ADM_UNAUTHORIZED');
    const text = opts.metricsText ? await opts.metricsText() : await opts.metrics.registry.metrics();
    return c.body(text, 200, { 'content-type': opts.metrics.registry.contentType });
  });

  // Loaded on first request: the document's schemas are only ever needed here.
  app.get('/openapi.json', async (c) => c.body((await import('./openapi.js')).openApiJson(), 200, { 'content-type': 'application/json' }));

  app.use('/v1/*', async (c, next) => {
    if (!isAdmin(c.req.header('authorization'))) throw new GatewayError('ADM_UNAUTHORIZED');
    await next();
  });
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: opts.bodyLimitBytes,
      onError: () => {
        throw new GatewayError('ADM_BODY_TOO_LARGE', { message: `request body is over ${opts.bodyLimitBytes} bytes` });
      },
    }),
  );

  for (const mount of mounts) mount(app);
  return app;
}
