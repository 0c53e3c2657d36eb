import { z } from 'zod';
import { GatewayError } from '../errors/gateway-error.js';
import { resolveExpiry } from '../auth/expiry.js';
import type { Clock } from '../auth/clock.js';
import type { TokenIssuer } from '../auth/issuer.js';
import type { RevocationSet } from '../auth/revocation-set.js';
import { endpointNameSchema, parseStoredRouteTable, rateLimitSchema, type RouteTable } from '../schema/route-table.js';
import { getEndpointOrThrow } from '../control/endpoint-ops.js';
import type { Store, TokenRecord } from '../store/store.js';
import type { AdminMount } from './mount.js';
import { parseJsonBody, parseParam } from './validate.js';

/** Printable ASCII without quotes or backslash, so a `sub` is safe in logs and headers. */
const subSchema = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[\x21\x23-\x5b\x5d-\x7e][\x20\x21\x23-\x5b\x5d-\x7e]*$/, 'printable ASCII, no quotes or backslashes, not starting with a space');

export const issueBodySchema = z
  .object({
    expires_at: z.string().max(64).optional(),
    ttl_seconds: z.number().int('must be a whole number of seconds').positive().optional(),
    duration: z.union([z.string().max(32), z.number()]).optional(),
    valid_until: z.union([z.number(), z.string().max(32)]).optional(),
    sub: subSchema.optional(),
    /** Queue priority: higher leaves the queue first (default 5). */
    priority: z.number().int().min(0).max(9).optional(),
    rate_limit: rateLimitSchema.optional(),
  })
  .strict();

const jtiSchema = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and . _ : - only');

/** `sub` when the caller gives none. */
export const DEFAULT_SUBJECT = 'anonymous';

export interface TokensRoutesDeps {
  store: Store;
  issuer: TokenIssuer;
  /** TOKEN_MAX_LIFETIME_SECONDS. */
  maxLifetimeSeconds: number;
  /** This instance's revocation set, updated at once (others learn through the store event). */
  revocations?: RevocationSet;
  clock?: Clock;
}

function parseTable(raw: string): RouteTable | null {
  const result = parseStoredRouteTable(raw);
  return result.ok ? result.table : null;
}

/** A token's priority and rate_limit as issued (absent: default priority 5, no limit). */
function trafficFields(record: TokenRecord): { priority?: number; rate_limit?: TokenRecord['rate_limit'] } {
  const out: { priority?: number; rate_limit?: TokenRecord['rate_limit'] } = {};
  if (record.priority !== undefined) out.priority = record.priority;
  if (record.rate_limit !== undefined) out.rate_limit = record.rate_limit;
  return out;
}

function iso(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString();
}

/** Tokens of this endpoint incarnation (a recreated endpoint has a new id). */
function belongsTo(record: TokenRecord, table: RouteTable): boolean {
  return record.endpoint === table.name && record.endpoint_id === table.id;
}

/**
 * POST/GET /v1/endpoints/{name}/tokens and DELETE /v1/endpoints/{name}/tokens/{jti}.
 * The token string is returned once, by POST; the store keeps metadata only.
 */
export function tokensRoutes(deps: TokensRoutesDeps): AdminMount {
  const now = () => (deps.clock ?? { now: Date.now }).now();

  return (app) => {
    app.post('/v1/endpoints/:name/tokens', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const body = await parseJsonBody(c, issueBodySchema, { optional: true });
      const table = await getEndpointOrThrow(deps.store, name, parseTable);
      const nowMs = now();
      const exp = resolveExpiry(body, { nowMs, maxLifetimeSeconds: deps.maxLifetimeSeconds });
      const sub = body.sub ?? DEFAULT_SUBJECT;
      const issued = await deps.issuer.issue({ endpointId: table.id, sub, exp, priority: body.priority, rateLimit: body.rate_limit });
      const record: TokenRecord = {
        jti: issued.jti,
        endpoint: table.name,
        endpoint_id: table.id,
        sub,
        exp,
        created_at: iso(issued.iat),
      };
      if (body.priority !== undefined) record.priority = body.priority;
      if (body.rate_limit !== undefined) record.rate_limit = body.rate_limit;
      await deps.store.putToken(record);
      return c.json(
        // Traffic fields only when set, so the answer stays the design's shape for everyone else.
        { token: issued.token, jti: issued.jti, expires_at: iso(exp), sub, ...trafficFields(record) },
        201,
        { 'cache-control': 'no-store' },
      );
    });

    app.get('/v1/endpoints/:name/tokens', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const table = await getEndpointOrThrow(deps.store, name, parseTable);
      const [records, revoked] = await Promise.all([deps.store.listTokens(name), deps.store.listRevoked()]);
      const revokedIds = new Set(revoked.map((r) => r.jti));
      const nowSec = Math.floor(now() / 1000);
      const tokens = records
        .filter((r) => belongsTo(r, table) && r.exp > nowSec)
        .sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.jti < b.jti ? -1 : 1))
        .map((r) => ({
          jti: r.jti,
          sub: r.sub,
          created_at: r.created_at,
          expires_at: iso(r.exp),
          revoked: revokedIds.has(r.jti),
          ...trafficFields(r),
        }));
      return c.json({ tokens });
    });

    app.delete('/v1/endpoints/:name/tokens/:jti', async (c) => {
      const name = parseParam(endpointNameSchema, 'name', c.req.param('name'));
      const jti = parseParam(jtiSchema, 'jti', c.req.param('jti'));
      const table = await getEndpointOrThrow(deps.store, name, parseTable);
      const record = await deps.store.getToken(jti);
      if (record === null || !belongsTo(record, table)) {
        throw new GatewayError('ADM_NOT_FOUND', { message: `token ${jti} not found on endpoint ${name}` });
      }
      await deps.store.revokeToken(jti, record.exp);
      deps.revocations?.add(jti, record.exp);
      return c.body(null, 204);
    });
  };
}
