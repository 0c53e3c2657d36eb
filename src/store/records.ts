import { z } from 'zod';
import { GatewayError } from '../errors/gateway-error.js';
import { parseStoredRouteTable, type RouteTable } from '../schema/route-table.js';
import type { Logger } from '../obs/logger.js';
import type { ServiceRecord, StoreEvent, TableUpdate, TokenRecord, UpdateOptions } from './store.js';

/**
 * Record schemas and the update step shared by every Store implementation, so MemoryStore and
 * RedisStore cannot drift apart on what a version bump or a valid record is.
 */

export const tokenRecordSchema = z.object({
  jti: z.string().min(1),
  endpoint: z.string().min(1),
  endpoint_id: z.string().min(1),
  sub: z.string(),
  exp: z.number(),
  created_at: z.string(),
  priority: z.number().int().min(0).max(9).optional(),
  rate_limit: z.object({ requests_per_minute: z.number().optional(), tokens_per_minute: z.number().optional() }).optional(),
});

export const serviceRecordSchema = z.object({
  name: z.string().min(1),
  spec: z.unknown(),
  updated_at: z.string(),
});

const eventSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('endpoint'), name: z.string().min(1), version: z.number() }),
  z.object({ kind: z.literal('revoke'), jti: z.string().min(1), exp: z.number().optional() }),
  z.object({ kind: z.literal('service'), name: z.string().min(1) }),
  z.object({ kind: z.literal('wake'), name: z.string().min(1) }),
  z.object({ kind: z.literal('resync') }),
]);

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

/** Null for anything that is not a well-formed record: stores skip garbage instead of throwing. */
export function parseTokenRecord(raw: string | null): TokenRecord | null {
  if (raw === null) return null;
  const r = tokenRecordSchema.safeParse(parseJson(raw));
  return r.success ? r.data : null;
}

export function parseServiceRecord(raw: string | null): ServiceRecord | null {
  if (raw === null) return null;
  const r = serviceRecordSchema.safeParse(parseJson(raw));
  return r.success ? (r.data as ServiceRecord) : null;
}

export function parseStoreEvent(raw: string): StoreEvent | null {
  const r = eventSchema.safeParse(parseJson(raw));
  return r.success ? (r.data as StoreEvent) : null;
}

export function nowSeconds(): number {
  return Date.now() / 1000;
}

/**
 * The version a stored value claims: 0 when absent, -1 when it is not JSON with a numeric
 * `version` (RedisStore's Lua script computes exactly the same, see redis-scripts.ts).
 */
export function storedVersion(raw: string | null): number {
  if (raw === null) return 0;
  const value = parseJson(raw) as { version?: unknown } | undefined;
  if (value && typeof value === 'object' && typeof value.version === 'number' && Number.isFinite(value.version)) return value.version;
  return -1;
}

export interface PreparedUpdate {
  table: RouteTable;
  json: string;
  created: boolean;
  /** The stored version the update was computed from; the write must check it is unchanged. */
  base: number;
}

function conflict(name: string, expected: number, base: number): GatewayError {
  const stored = base === 0 ? 'the endpoint does not exist' : base < 0 ? 'the stored table is unreadable' : `the stored version is ${base}`;
  return new GatewayError('ADM_CONFLICT', { message: `endpoint ${name}: version mismatch: expected ${expected}, ${stored}` });
}

/**
 * Computes the next table from the stored text. A stored value that fails validation is handed
 * to `update` as absent: a create (PUT) overwrites it, a patch gets ADM_NOT_FOUND. The new
 * version still continues from the number the bad value claimed, so gateways that track
 * versions never see one go backwards.
 */
export function prepareUpdate(name: string, raw: string | null, update: TableUpdate, opts: UpdateOptions | undefined, logger: Logger): PreparedUpdate {
  const base = storedVersion(raw);
  let current: RouteTable | null = null;
  if (raw !== null) {
    const parsed = parseStoredRouteTable(raw);
    if (parsed.ok) current = parsed.table;
    else logger.warn({ endpoint: name, problem: parsed.error }, 'stored route table is invalid; treating it as absent');
  }
  const expected = opts?.expectedVersion;
  if (expected !== undefined && current !== null && expected !== base) throw conflict(name, expected, base);
  const next = update(current);
  if (expected !== undefined && expected !== base) throw conflict(name, expected, base);
  const candidate = { ...next, name, version: Math.floor(Math.max(base, 0)) + 1 };
  const checked = parseStoredRouteTable(candidate);
  if (!checked.ok) {
    throw new GatewayError('ADM_INVALID', { details: [{ field: 'table', message: checked.error }] });
  }
  return { table: checked.table, json: JSON.stringify(checked.table), created: current === null, base };
}

/** Errors a caller (the admin API) sees when the store cannot be reached. */
export function storeUnavailable(reason: string, cause?: unknown): GatewayError {
  return new GatewayError('ADM_STORE_UNAVAILABLE', { message: `store unavailable: ${reason}`, cause, detail: reason, retryAfterSeconds: 1 });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
