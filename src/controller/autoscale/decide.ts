import type { AutoscalingRule, AutoscalingSpec, Comparator } from './spec.js';

/**
 * The autoscaler's decision: a pure function of the clock, one metrics snapshot, the state the
 * previous call returned and the spec (Knative's `Scale(now, metrics)`). Collecting the
 * metrics and applying the result live elsewhere (collector.ts, autoscaler.ts), so windows,
 * panic mode, delays and cooldowns are tested here with a made-up clock, without sleeping.
 *
 * KPA part (with `target_in_flight`): demand = in-flight + queued requests, summed over every
 * gateway instance. Averaged over the stable window → ceil(avg / target) replicas; averaged
 * over the panic window → the panic count. When the panic count is at least twice the ready
 * replicas the service panics: it follows the panic count up at once and never scales down,
 * until a whole stable window passed without a new burst.
 *
 * Rules (the seed system's shape): when a rule's comparison holds and its cooldown has passed,
 * it moves the rules' level by `step_size` from the last decided count, clamped to the rule's
 * bounds (a rule at its bound is clamped, not skipped). The rules' level stays until a rule
 * fires again. With both parts, the larger count wins (like a Kubernetes HPA with several
 * metrics: scale-up wins).
 *
 * Then: clamp to [min_replicas, max_replicas]; a count below the previous one only takes
 * effect once it has been the highest proposal for `scale_down_delay_s` (a max over that
 * window). With no replica ready and at most one wanted (waking from zero, or the first
 * replica still starting) the count stays at one until a replica serves. With min_replicas 0, `scale_to_zero_grace_s` without a request (none in flight,
 * none waiting, none finished) goes to zero whatever the windows say, and any request
 * waiting at zero wakes the service at once.
 */

export interface MetricsSnapshot {
  /** Requests being served, summed over every gateway instance. */
  in_flight: number;
  /** Requests waiting (hold queue, caps), summed over every gateway instance. */
  queued: number;
  /** Requests per second over the last collection interval, all instances. */
  rps: number;
  /** p99 latency of the last collection interval; null without requests. */
  p99_latency_ms: number | null;
  /** Replicas serving now (healthy, not draining). */
  ready: number;
  /** REPLICA metrics averaged over replicas; absent when not collected. */
  replica?: { cpu_percent?: number; memory_bytes?: number };
  /** PROMETHEUS metrics by name, averaged over replicas. */
  prometheus?: Record<string, number>;
}

export interface DemandSample {
  at: number;
  demand: number;
}

export interface AutoscaleState {
  /** Demand samples within the stable window, oldest first. */
  samples: DemandSample[];
  panicking: boolean;
  /** Last time the panic condition held (ms). */
  panicAt: number;
  /** Highest panic count since panic began: never scale down while panicking. */
  maxPanic: number;
  /** Clamped proposals within the scale-down delay window. */
  proposals: DemandSample[];
  /** Last time a request was seen (ms). */
  lastActiveAt: number;
  /** The last decided count. */
  desired: number;
  /** The rules' level (null until a rule fired). */
  ruleLevel: number | null;
  /** When each rule last fired (ms), by index in spec.rules. */
  ruleFiredAt: number[];
}

export interface Decision {
  desired: number;
  /** Why `desired` is what it is (the decision's event text). */
  reason: string;
  panicking: boolean;
  nextState: AutoscaleState;
}

export const PANIC_THRESHOLD = 2;

/** The state of a service the autoscaler just took over (`desired`: what runs or was recorded). */
export function initialState(now: number, desired: number, spec: AutoscalingSpec): AutoscaleState {
  return {
    samples: [],
    panicking: false,
    panicAt: 0,
    maxPanic: 0,
    proposals: [],
    // A new (or restarted) service gets the whole grace before it may go to zero.
    lastActiveAt: now,
    desired: clamp(desired, spec.min_replicas, spec.max_replicas),
    ruleLevel: null,
    ruleFiredAt: spec.rules.map(() => -Infinity),
  };
}

export function clamp(n: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, n));
}

function average(samples: DemandSample[], since: number): number {
  let sum = 0;
  let count = 0;
  for (const s of samples) {
    if (s.at > since) {
      sum += s.demand;
      count++;
    }
  }
  return count === 0 ? 0 : sum / count;
}

export function compare(value: number, comparator: Comparator, threshold: number): boolean {
  switch (comparator) {
    case 'gt':
      return value > threshold;
    case 'ge':
      return value >= threshold;
    case 'lt':
      return value < threshold;
    case 'le':
      return value <= threshold;
  }
}

/** The value a rule compares, or undefined when it was not collected. */
export function ruleMetric(rule: AutoscalingRule, m: MetricsSnapshot): number | undefined {
  switch (rule.metric_source) {
    case 'GATEWAY':
      if (rule.metric_name === 'in_flight') return m.in_flight;
      if (rule.metric_name === 'queued') return m.queued;
      if (rule.metric_name === 'rps') return m.rps;
      if (rule.metric_name === 'p99_latency_ms') return m.p99_latency_ms ?? undefined;
      return undefined;
    case 'REPLICA':
      return m.replica?.[rule.metric_name as 'cpu_percent' | 'memory_bytes'];
    case 'PROMETHEUS':
      return m.prometheus?.[rule.metric_name];
  }
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));

export function decide(now: number, m: MetricsSnapshot, state: AutoscaleState, spec: AutoscalingSpec): Decision {
  const demand = Math.max(0, m.in_flight) + Math.max(0, m.queued);
  const stableSince = now - spec.stable_window_s * 1000;
  const panicSince = now - spec.panic_window_s * 1000;
  const samples = state.samples.filter((s) => s.at > stableSince);
  samples.push({ at: now, demand });
  const lastActiveAt = demand > 0 || m.rps > 0 ? now : state.lastActiveAt;

  // ---- KPA
  let kpa: number | null = null;
  let kpaReason = '';
  let { panicking, panicAt, maxPanic } = state;
  const target = spec.target_in_flight;
  if (target !== undefined) {
    const stableAvg = average(samples, stableSince);
    const panicAvg = average(samples, panicSince);
    const stableCount = Math.ceil(stableAvg / target);
    const panicCount = Math.ceil(panicAvg / target);
    const over = panicCount / Math.max(1, m.ready) >= PANIC_THRESHOLD;
    if (over) {
      if (!panicking) maxPanic = 0;
      panicking = true;
      panicAt = now;
    } else if (panicking && now - panicAt > spec.stable_window_s * 1000) {
      panicking = false;
      maxPanic = 0;
    }
    if (panicking) {
      kpa = Math.max(panicCount, maxPanic, state.desired);
      maxPanic = kpa;
      kpaReason = `panic: ${fmt(panicAvg)} in flight over ${spec.panic_window_s} s / target ${fmt(target)} (≥ ${PANIC_THRESHOLD}× ${m.ready} ready)`;
    } else {
      kpa = stableCount;
      kpaReason = `${fmt(stableAvg)} in flight over ${spec.stable_window_s} s / target ${fmt(target)}`;
    }
  }

  // ---- rules
  let ruleLevel = state.ruleLevel;
  const ruleFiredAt = spec.rules.map((_, i) => state.ruleFiredAt[i] ?? -Infinity);
  let ruleReason = '';
  spec.rules.forEach((rule, i) => {
    const value = ruleMetric(rule, m);
    if (value === undefined || !compare(value, rule.comparator, rule.threshold)) return;
    if (now - ruleFiredAt[i] < rule.cooldown_seconds * 1000) return;
    const from = ruleLevel ?? state.desired;
    const lo = rule.min_replicas ?? spec.min_replicas;
    const hi = rule.max_replicas ?? spec.max_replicas;
    ruleLevel = clamp(from + rule.step_size, lo, hi);
    ruleFiredAt[i] = now;
    const sign = rule.step_size > 0 ? '+' : '';
    ruleReason = `rule ${i} (${rule.metric_source} ${rule.metric_name} ${fmt(value)} ${rule.comparator} ${fmt(rule.threshold)}): ${sign}${rule.step_size} → ${ruleLevel}${ruleLevel !== from + rule.step_size ? ` (clamped to [${lo}, ${hi}])` : ''}`;
  });

  // ---- combine
  let proposal: number;
  let reason: string;
  if (kpa === null && ruleLevel === null) {
    proposal = state.desired;
    reason = 'no rule fired';
  } else if (ruleLevel !== null && (kpa === null || ruleLevel > kpa)) {
    proposal = ruleLevel;
    reason = ruleReason || `rules' level ${ruleLevel}`;
  } else {
    proposal = kpa!;
    reason = kpaReason;
  }
  const clamped = clamp(proposal, spec.min_replicas, spec.max_replicas);
  if (clamped !== proposal) reason += `; clamped to [${spec.min_replicas}, ${spec.max_replicas}]`;

  // Zero only after the grace without a request (the grace is the delay for zero); a request
  // waiting at zero wakes the service at once.
  let desired = clamped;
  const idleMs = now - lastActiveAt;
  const idle = spec.min_replicas === 0 && demand === 0 && idleMs >= spec.scale_to_zero_grace_s * 1000;
  if (idle) {
    if (state.desired > 0) reason = `no request for ${fmt(idleMs / 1000)} s (grace ${spec.scale_to_zero_grace_s} s): scale to zero`;
    desired = 0;
    // The next wake starts from the load it meets, not from the rules' level before the idle time.
    ruleLevel = null;
  } else if (desired === 0) {
    if (demand > 0) {
      desired = 1;
      reason = `wake: ${demand} request(s) waiting`;
    } else if (state.desired > 0) {
      desired = 1;
      reason = `idle for ${fmt(idleMs / 1000)} s of the ${spec.scale_to_zero_grace_s} s grace`;
    }
  }

  // Scale down only when every proposal of the delay window was this low.
  const delaySince = now - spec.scale_down_delay_s * 1000;
  const proposals = state.proposals.filter((p) => p.at > delaySince);
  proposals.push({ at: now, demand: desired });
  if (!idle && desired < state.desired) {
    let highest = desired;
    for (const p of proposals) if (p.demand > highest) highest = p.demand;
    if (highest > desired) {
      desired = Math.min(highest, state.desired);
      reason = `holding ${desired} for the ${spec.scale_down_delay_s} s scale-down delay (${reason})`;
    }
  }
  if (panicking && desired < state.desired) {
    desired = state.desired;
    reason = `panicking: no scale-down (${reason})`;
  }
  // Waking (or a lone replica not serving yet): one start, whatever the load says, until a
  // replica serves; then the load decides. A model that cannot start is not started N times.
  if (m.ready === 0 && state.desired <= 1 && desired > 1) {
    desired = Math.max(1, spec.min_replicas);
    reason = `one replica first (none ready yet); ${reason}`;
  }
  if (state.desired === 0 && desired > 0 && !reason.startsWith('wake')) reason = `wake: ${demand} request(s) waiting; ${reason}`;

  return {
    desired,
    reason,
    panicking,
    nextState: { samples, panicking, panicAt, maxPanic, proposals, lastActiveAt, desired, ruleLevel, ruleFiredAt },
  };
}
