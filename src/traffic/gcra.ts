/**
 * GCRA arithmetic shared by the local limiter and the Redis script (slot-scripts.ts GCRA_LUA):
 * a limit of N per window W is one unit every T = W/N ms with a burst of N. The state is one
 * number per limiter, the theoretical arrival time (TAT).
 */

export interface LimiterSpec {
  /** Redis key / local map key. */
  key: string;
  /** Policy name in the RateLimit headers. */
  name: string;
  limit: number;
  windowMs: number;
  /** Units this request takes now (1 request, or the reserved tokens). */
  cost: number;
}

export interface LimiterState {
  /** ms until the cost fits (0 = allowed). */
  waitMs: number;
  /** ms of the window in use after this request. */
  usedMs: number;
}

/** Where local limiter states live: a Map, or the bounded RecentMap of rate-limiter.ts. */
export interface TatStore {
  get(key: string): number | undefined;
  set(key: string, tat: number): unknown;
  delete(key: string): unknown;
}

export interface LimitDecision {
  allowed: boolean;
  /** One per spec, same order. */
  states: LimiterState[];
}

export function interval(spec: { limit: number; windowMs: number }): number {
  return spec.windowMs / spec.limit;
}

/** Local GCRA over several limiters, all-or-nothing like the script. `tats` is the state map. */
export function gcraLocal(tats: TatStore, specs: readonly LimiterSpec[], now: number): LimitDecision {
  let allowed = true;
  const states: LimiterState[] = [];
  const next: number[] = [];
  for (const spec of specs) {
    const t = interval(spec);
    let tat = tats.get(spec.key) ?? 0;
    if (tat < now) tat = now;
    const newTat = tat + spec.cost * t;
    const wait = spec.cost === 0 ? tat - now - spec.windowMs + t : newTat - now - spec.windowMs;
    if (wait > 0) allowed = false;
    states.push({ waitMs: wait > 0 ? wait : 0, usedMs: newTat - now });
    next.push(newTat);
  }
  if (allowed) for (let i = 0; i < specs.length; i++) tats.set(specs[i].key, next[i]);
  return { allowed, states };
}

/** Local settle: shifts the TAT by `delta` units (negative refunds). */
export function gcraSettleLocal(tats: TatStore, key: string, spec: { limit: number; windowMs: number }, delta: number, now: number): void {
  let tat = tats.get(key) ?? 0;
  if (tat < now) tat = now;
  tat += delta * interval(spec);
  if (tat <= now) tats.delete(key);
  else tats.set(key, tat);
}

/** Units left in the window after this request (for the `RateLimit` header's `r`). */
export function remaining(spec: LimiterSpec, state: LimiterState): number {
  // The epsilon absorbs float error: (W - T) / T must count N - 1, not N - 1 - 1e-12.
  const left = Math.floor((spec.windowMs - state.usedMs) / interval(spec) + 1e-6);
  return left < 0 ? 0 : left > spec.limit ? spec.limit : left;
}
