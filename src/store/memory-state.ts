import { z } from 'zod';
import { parseStoredRouteTable } from '../schema/route-table.js';
import { serviceRecordSchema, tokenRecordSchema } from './records.js';
import type { ServiceRecord, TokenRecord } from './store.js';
import { MINUTE, USAGE_RETENTION_MS } from './usage.js';

/**
 * The embedded store's data and the operations that change it. Every change is one `StateOp`:
 * the unit written to the journal and replayed at start-up. Ops carry absolute values (never
 * "increment"), so replaying one twice is harmless; that is what lets compaction and replay
 * overlap safely.
 */

export const stateOpSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('endpoint.put'), name: z.string().min(1), table: z.record(z.string(), z.unknown()) }),
  z.object({ op: z.literal('endpoint.del'), name: z.string().min(1) }),
  z.object({ op: z.literal('token.put'), record: tokenRecordSchema }),
  z.object({ op: z.literal('revoke'), jti: z.string().min(1), exp: z.number() }),
  z.object({ op: z.literal('service.put'), record: serviceRecordSchema }),
  z.object({ op: z.literal('service.del'), name: z.string().min(1) }),
  // Absolute counter values after an addition (not the increment), so a replay stays harmless.
  z.object({ op: z.literal('usage.set'), endpoint: z.string().min(1), minute: z.number().int(), fields: z.record(z.string(), z.number()) }),
]);
export type StateOp = z.infer<typeof stateOpSchema>;

export const SNAPSHOT_FORMAT = 'modelgate-embedded-store';

export const snapshotSchema = z.object({
  format: z.literal(SNAPSHOT_FORMAT),
  format_version: z.literal(1),
  seq: z.number().int().min(0),
  saved_at: z.string(),
  endpoints: z.record(z.string(), z.record(z.string(), z.unknown())),
  tokens: z.array(tokenRecordSchema),
  revoked: z.array(z.object({ jti: z.string().min(1), exp: z.number() })),
  services: z.array(serviceRecordSchema),
  /** endpoint → epoch minute → usage field → value (store/usage.ts). Optional: older snapshots lack it. */
  usage: z.record(z.string(), z.record(z.string(), z.record(z.string(), z.number()))).optional(),
});
export type Snapshot = z.infer<typeof snapshotSchema>;

export class MemoryState {
  /** name → stored route table JSON (what getEndpointRaw returns). */
  readonly endpoints = new Map<string, string>();
  readonly tokens = new Map<string, TokenRecord>();
  /** Endpoint name → jtis, for listing and for deleting with the endpoint. */
  readonly tokensByEndpoint = new Map<string, Set<string>>();
  readonly revoked = new Map<string, number>();
  readonly services = new Map<string, ServiceRecord>();
  /** endpoint → epoch minute → usage field → value. */
  readonly usage = new Map<string, Map<number, Map<string, number>>>();

  apply(op: StateOp): void {
    switch (op.op) {
      case 'endpoint.put':
        this.endpoints.set(op.name, JSON.stringify(op.table));
        break;
      case 'endpoint.del': {
        this.endpoints.delete(op.name);
        for (const jti of this.tokensByEndpoint.get(op.name) ?? []) this.tokens.delete(jti);
        this.tokensByEndpoint.delete(op.name);
        break;
      }
      case 'token.put': {
        const record = op.record as TokenRecord;
        this.tokens.set(record.jti, record);
        let set = this.tokensByEndpoint.get(record.endpoint);
        if (!set) this.tokensByEndpoint.set(record.endpoint, (set = new Set()));
        set.add(record.jti);
        break;
      }
      case 'revoke':
        this.revoked.set(op.jti, op.exp);
        break;
      case 'service.put':
        this.services.set(op.record.name, op.record as ServiceRecord);
        break;
      case 'service.del':
        this.services.delete(op.name);
        break;
      case 'usage.set': {
        let byMinute = this.usage.get(op.endpoint);
        if (byMinute === undefined) this.usage.set(op.endpoint, (byMinute = new Map()));
        let fields = byMinute.get(op.minute);
        if (fields === undefined) byMinute.set(op.minute, (fields = new Map()));
        for (const [field, value] of Object.entries(op.fields)) fields.set(field, value);
        break;
      }
    }
  }

  /** Forgets tokens and revocation markers past their exp (they are invisible already). */
  purgeExpired(nowSec: number): void {
    for (const [jti, record] of this.tokens) {
      if (record.exp > nowSec) continue;
      this.tokens.delete(jti);
      const set = this.tokensByEndpoint.get(record.endpoint);
      set?.delete(jti);
      if (set && set.size === 0) this.tokensByEndpoint.delete(record.endpoint);
    }
    for (const [jti, exp] of this.revoked) if (exp <= nowSec) this.revoked.delete(jti);
    const oldestMinute = Math.floor((nowSec * 1000 - USAGE_RETENTION_MS) / MINUTE);
    for (const [endpoint, byMinute] of this.usage) {
      for (const minute of byMinute.keys()) if (minute < oldestMinute) byMinute.delete(minute);
      if (byMinute.size === 0) this.usage.delete(endpoint);
    }
  }

  toSnapshot(seq: number, nowSec: number): Snapshot {
    this.purgeExpired(nowSec);
    const endpoints: Snapshot['endpoints'] = {};
    for (const [name, json] of this.endpoints) endpoints[name] = JSON.parse(json) as Record<string, unknown>;
    return {
      format: SNAPSHOT_FORMAT,
      format_version: 1,
      seq,
      saved_at: new Date().toISOString(),
      endpoints,
      tokens: [...this.tokens.values()],
      revoked: [...this.revoked].map(([jti, exp]) => ({ jti, exp })),
      services: [...this.services.values()],
      usage: this.#usageSnapshot(),
    };
  }

  #usageSnapshot(): NonNullable<Snapshot['usage']> {
    const out: NonNullable<Snapshot['usage']> = {};
    for (const [endpoint, byMinute] of this.usage) {
      const minutes: Record<string, Record<string, number>> = {};
      for (const [minute, fields] of byMinute) minutes[String(minute)] = Object.fromEntries(fields);
      out[endpoint] = minutes;
    }
    return out;
  }

  /** Loads a validated snapshot; returns a problem description instead of throwing. */
  loadSnapshot(value: unknown): { ok: true; seq: number } | { ok: false; error: string } {
    const parsed = snapshotSchema.safeParse(value);
    if (!parsed.success) {
      return { ok: false, error: parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') };
    }
    const snap = parsed.data;
    for (const [name, table] of Object.entries(snap.endpoints)) {
      const problem = checkTable(name, table);
      if (problem) return { ok: false, error: problem };
      this.apply({ op: 'endpoint.put', name, table });
    }
    for (const record of snap.tokens) this.apply({ op: 'token.put', record });
    for (const { jti, exp } of snap.revoked) this.apply({ op: 'revoke', jti, exp });
    for (const record of snap.services) this.apply({ op: 'service.put', record });
    for (const [endpoint, minutes] of Object.entries(snap.usage ?? {})) {
      for (const [minute, fields] of Object.entries(minutes)) {
        const m = Number(minute);
        if (Number.isInteger(m)) this.apply({ op: 'usage.set', endpoint, minute: m, fields });
      }
    }
    return { ok: true, seq: snap.seq };
  }
}

/** A table in a state file must be one the store itself could have written. */
export function checkTable(name: string, table: unknown): string | null {
  const parsed = parseStoredRouteTable(table);
  if (!parsed.ok) return `endpoints.${name}: ${parsed.error}`;
  if (parsed.table.name !== name) return `endpoints.${name}: table is named ${parsed.table.name}`;
  return null;
}
