/**
 * LLM usage as the store keeps it: per endpoint, per minute bucket, one counter per field.
 * Fields (also the Redis hash fields, docs/redis-schema.md): `a:p`, `a:c`, `a:r` for the
 * endpoint's totals; `t:{jti}:p|c|r` per token; `s:{sub}:p|c|r` per subject. p = prompt tokens,
 * c = completion tokens, r = requests.
 */

/** How long minute buckets are kept. */
export const USAGE_RETENTION_MS = 7 * 24 * 3600_000;
export const MINUTE = 60_000;

export interface UsageIncrement {
  endpoint: string;
  /** Epoch minute (ms / 60000, floored). */
  minute: number;
  /** Token id (jti), or '-' when the request carried none (public endpoint). */
  token: string;
  sub: string;
  prompt_tokens: number;
  completion_tokens: number;
  requests: number;
}

export type UsageGroupBy = 'token' | 'sub';

export interface UsageQuery {
  endpoint: string;
  /** Epoch minutes, both inclusive. */
  fromMinute: number;
  toMinute: number;
  groupBy?: UsageGroupBy;
}

export interface UsageTotals {
  prompt_tokens: number;
  completion_tokens: number;
  requests: number;
}

export interface UsageReport {
  total: UsageTotals;
  /** Present when grouped: key = jti or sub. */
  groups?: Map<string, UsageTotals>;
}

/** The hash fields one increment adds to, with their amounts. */
export function incrementFields(inc: UsageIncrement): [string, number][] {
  const out: [string, number][] = [];
  for (const prefix of ['a', `t:${inc.token}`, `s:${inc.sub}`]) {
    if (inc.prompt_tokens) out.push([`${prefix}:p`, inc.prompt_tokens]);
    if (inc.completion_tokens) out.push([`${prefix}:c`, inc.completion_tokens]);
    if (inc.requests) out.push([`${prefix}:r`, inc.requests]);
  }
  return out;
}

function zero(): UsageTotals {
  return { prompt_tokens: 0, completion_tokens: 0, requests: 0 };
}

/** Adds one bucket's fields into a report being built. */
export function addFields(report: UsageReport, fields: Iterable<[string, number]>, groupBy: UsageGroupBy | undefined): void {
  const wanted = groupBy === 'token' ? 't' : groupBy === 'sub' ? 's' : 'a';
  for (const [field, raw] of fields) {
    const value = Number(raw);
    if (!Number.isFinite(value) || field.length < 3) continue;
    const kind = field[0];
    const metric = field[field.length - 1];
    let target: UsageTotals;
    if (kind === 'a' && field.length === 3) {
      target = report.total;
    } else if (kind === wanted && wanted !== 'a' && report.groups) {
      const key = field.slice(2, -2);
      target = report.groups.get(key) ?? zero();
      report.groups.set(key, target);
    } else continue;
    if (metric === 'p') target.prompt_tokens += value;
    else if (metric === 'c') target.completion_tokens += value;
    else if (metric === 'r') target.requests += value;
  }
}

export function emptyReport(groupBy: UsageGroupBy | undefined): UsageReport {
  return groupBy === undefined ? { total: zero() } : { total: zero(), groups: new Map() };
}

/** Merges increments for the same endpoint, minute and group (a flush batch). */
export function usageBucketKey(inc: UsageIncrement): string {
  return `${inc.endpoint}\u0000${inc.minute}`;
}
