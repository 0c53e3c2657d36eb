import { describe, expect, it } from 'vitest';
import { decide, initialState, type AutoscaleState, type MetricsSnapshot } from '../../../src/controller/autoscale/decide.js';
import { autoscalingSchema, type AutoscalingSpec } from '../../../src/controller/autoscale/spec.js';

/** The decision alone: a made-up clock, no sleeping, no processes. */

function spec(input: Record<string, unknown>): AutoscalingSpec {
  return autoscalingSchema.parse(input);
}

function load(in_flight: number, extra: Partial<MetricsSnapshot> = {}): MetricsSnapshot {
  return { in_flight, queued: 0, rps: in_flight > 0 ? 1 : 0, p99_latency_ms: null, ready: 1, ...extra };
}

/** Feeds one snapshot per second from `from` (ms) and returns the last decision and state. */
function run(s: AutoscalingSpec, state: AutoscaleState, from: number, seconds: number, snapshot: (t: number, desired: number) => MetricsSnapshot) {
  let st = state;
  let last = { desired: st.desired, reason: '', panicking: false };
  const history: number[] = [];
  for (let i = 0; i < seconds; i++) {
    const now = from + i * 1000;
    const d = decide(now, snapshot(now, st.desired), st, s);
    st = d.nextState;
    last = d;
    history.push(d.desired);
  }
  return { ...last, state: st, history };
}

describe('autoscaling spec', () => {
  it('fills the documented defaults', () => {
    expect(spec({ min_replicas: 1, max_replicas: 4, target_in_flight: 2 })).toEqual({
      min_replicas: 1,
      max_replicas: 4,
      target_in_flight: 2,
      stable_window_s: 60,
      panic_window_s: 6,
      scale_down_delay_s: 30,
      scale_to_zero_grace_s: 30,
      rules: [],
    });
  });

  it('names every bad field', () => {
    const r = autoscalingSchema.safeParse({
      min_replicas: 5,
      max_replicas: 2,
      target_in_flight: 0,
      stable_window_s: -1,
      scale_down_delay_s: -3,
      rules: [{ metric_source: 'GATEWAY', metric_name: 'in_flight', threshold: 1, comparator: 'gte', step_size: 1 }],
    });
    expect(r.success).toBe(false);
    const fields = r.error!.issues.map((i) => i.path.join('.'));
    expect(fields).toEqual(expect.arrayContaining(['min_replicas', 'max_replicas', 'target_in_flight', 'stable_window_s', 'scale_down_delay_s', 'rules.0.comparator']));
  });

  it('checks rule metrics against their source', () => {
    const r = autoscalingSchema.safeParse({
      min_replicas: 0,
      max_replicas: 2,
      rules: [
        { metric_source: 'GATEWAY', metric_name: 'cpu_percent', threshold: 1, comparator: 'gt', step_size: 1, cooldown_seconds: 0 },
        { metric_source: 'PROMETHEUS', metric_name: 'vllm:num_requests_waiting', threshold: 1, comparator: 'gt', step_size: 0, cooldown_seconds: 0 },
      ],
    });
    expect(r.error!.issues.map((i) => i.path.join('.'))).toEqual(['rules.0.metric_name', 'rules.1.step_size']);
    expect(autoscalingSchema.safeParse({ min_replicas: 0, max_replicas: 2 }).error!.issues[0].path).toEqual(['target_in_flight']);
  });
});

describe('decide', () => {
  const t0 = 1_000_000;

  it('scales to ceil(average in-flight / target) over the stable window', () => {
    const s = spec({ min_replicas: 1, max_replicas: 10, target_in_flight: 2, stable_window_s: 10, panic_window_s: 2, scale_down_delay_s: 0 });
    const r = run(s, initialState(t0, 1, s), t0, 20, (_t, d) => load(5, { ready: d }));
    expect(r.desired).toBe(3);
    expect(r.panicking).toBe(false);
    expect(r.reason).toContain('target 2');
  });

  it('averages: a short spike under the panic threshold moves the count little', () => {
    const s = spec({ min_replicas: 1, max_replicas: 10, target_in_flight: 10, stable_window_s: 10, panic_window_s: 2, scale_down_delay_s: 0 });
    let st = run(s, initialState(t0, 2, s), t0, 10, () => load(10, { ready: 2 })).state;
    // One second at 30 in flight: the stable average is 12 → 2 replicas; the panic average 20 → 2 (< 2 × 2 ready).
    const d = decide(t0 + 10_000, load(30, { ready: 2 }), st, s);
    expect(d.panicking).toBe(false);
    expect(d.desired).toBe(2);
    st = d.nextState;
  });

  it('panics on a burst: follows the panic window up at once and never scales down while panicking', () => {
    const s = spec({ min_replicas: 1, max_replicas: 20, target_in_flight: 1, stable_window_s: 10, panic_window_s: 2, scale_down_delay_s: 0 });
    const calm = run(s, initialState(t0, 1, s), t0, 10, () => load(1, { ready: 1 }));
    expect(calm.desired).toBe(1);
    const burst = decide(t0 + 10_000, load(8, { ready: 1 }), calm.state, s);
    expect(burst.panicking).toBe(true);
    // panic window [t0+9s, t0+10s]: samples 1 and 8 → 4.5 → 5 (the stable window alone would say 2).
    expect(burst.desired).toBe(5);
    expect(burst.reason).toMatch(/^panic/);
    // The burst ends: still panicking, so the count holds.
    const after = run(s, burst.nextState, t0 + 11_000, 5, () => load(0, { ready: 5 }));
    expect(after.panicking).toBe(true);
    expect(after.history.every((d) => d === 5)).toBe(true);
    // A whole stable window without a new burst ends the panic; then the count comes down.
    const later = run(s, after.state, t0 + 16_000, 12, () => load(0, { ready: 5 }));
    expect(later.panicking).toBe(false);
    expect(later.desired).toBe(1);
  });

  it('waits scale_down_delay_s before scaling down', () => {
    const s = spec({ min_replicas: 1, max_replicas: 10, target_in_flight: 1, stable_window_s: 2, panic_window_s: 1, scale_down_delay_s: 5 });
    const high = run(s, initialState(t0, 1, s), t0, 4, () => load(3, { ready: 3 }));
    expect(high.desired).toBe(3);
    const low = run(s, high.state, t0 + 4_000, 8, () => load(1, { ready: 3 }));
    // 3 was last proposed at t0+3 s: the 5 s delay holds it until t0+8 s (index 4), then 2, then 1.
    expect(low.history).toEqual([3, 3, 3, 3, 2, 1, 1, 1]);
    expect(low.desired).toBe(1);
  });

  it('clamps to [min, max]', () => {
    const s = spec({ min_replicas: 2, max_replicas: 4, target_in_flight: 1, stable_window_s: 2, panic_window_s: 1, scale_down_delay_s: 0 });
    expect(run(s, initialState(t0, 2, s), t0, 5, () => load(100, { ready: 4 })).desired).toBe(4);
    const r = run(s, initialState(t0, 2, s), t0, 5, () => load(0, { ready: 2, rps: 0 }));
    expect(r.desired).toBe(2);
  });

  it('goes to zero only after the grace without requests, and wakes on one waiting request', () => {
    const s = spec({ min_replicas: 0, max_replicas: 3, target_in_flight: 1, stable_window_s: 2, panic_window_s: 1, scale_down_delay_s: 0, scale_to_zero_grace_s: 5 });
    const idle = run(s, initialState(t0, 1, s), t0, 10, () => load(0, { ready: 1, rps: 0 }));
    const zeroAt = idle.history.indexOf(0);
    expect(zeroAt).toBe(5);
    expect(idle.desired).toBe(0);
    // Many decisions at zero with requests waiting: the count is 1 each time, never more starts.
    const woken = decide(t0 + 10_000, load(0, { queued: 1, ready: 0, rps: 0 }), idle.state, s);
    expect(woken.desired).toBe(1);
    expect(woken.reason).toMatch(/^wake/);
    const again = decide(t0 + 10_100, load(0, { queued: 1, ready: 0, rps: 0 }), woken.nextState, s);
    expect(again.desired).toBe(1);
  });

  it('wakes with one replica however large the waiting demand, then follows the load once it serves', () => {
    const s = spec({ min_replicas: 0, max_replicas: 5, target_in_flight: 1, stable_window_s: 2, panic_window_s: 1, scale_down_delay_s: 0, scale_to_zero_grace_s: 5 });
    const zero = { ...initialState(t0, 0, s), desired: 0 };
    const waking = run(s, zero, t0, 3, () => load(0, { queued: 20, ready: 0 }));
    expect(waking.history).toEqual([1, 1, 1]);
    const serving = decide(t0 + 3_000, load(20, { ready: 1 }), waking.state, s);
    expect(serving.desired).toBe(5);
  });

  it('keeps a replica while a request was seen within the grace', () => {
    const s = spec({ min_replicas: 0, max_replicas: 3, target_in_flight: 1, stable_window_s: 1, panic_window_s: 1, scale_down_delay_s: 0, scale_to_zero_grace_s: 5 });
    // One request per 3 s: never idle for 5 s.
    const r = run(s, initialState(t0, 1, s), t0, 20, (t) => load(0, { rps: (t - t0) % 3000 === 0 ? 1 : 0 }));
    expect(r.history.every((d) => d === 1)).toBe(true);
  });

  it('fires rules with their cooldowns and clamps them at their bounds', () => {
    const s = spec({
      min_replicas: 1,
      max_replicas: 10,
      scale_down_delay_s: 0,
      rules: [
        { metric_source: 'GATEWAY', metric_name: 'rps', threshold: 10, comparator: 'gt', step_size: 2, cooldown_seconds: 3, min_replicas: 1, max_replicas: 5 },
        { metric_source: 'GATEWAY', metric_name: 'rps', threshold: 1, comparator: 'lt', step_size: -1, cooldown_seconds: 0 },
      ],
    });
    const busy = run(s, initialState(t0, 1, s), t0, 10, () => load(0, { rps: 50 }));
    // Fires at 0 s, 3 s, 6 s: 3, 5, then clamped at 5 (not skipped); never faster than the cooldown.
    expect(busy.history).toEqual([3, 3, 3, 5, 5, 5, 5, 5, 5, 5]);
    expect(busy.reason).toContain('rule 0');
    const quiet = run(s, busy.state, t0 + 10_000, 6, () => load(0, { rps: 0.5 }));
    expect(quiet.history).toEqual([4, 3, 2, 1, 1, 1]);
  });

  it('clamps a rule whose step overshoots its bound instead of skipping it', () => {
    const s = spec({
      min_replicas: 1,
      max_replicas: 10,
      rules: [{ metric_source: 'REPLICA', metric_name: 'cpu_percent', threshold: 80, comparator: 'ge', step_size: 4, cooldown_seconds: 60, max_replicas: 3 }],
    });
    const d = decide(t0, load(0, { replica: { cpu_percent: 95 } }), initialState(t0, 1, s), s);
    expect(d.desired).toBe(3);
    expect(d.reason).toContain('clamped');
    // No REPLICA data: the rule is not evaluated.
    expect(decide(t0, load(0), initialState(t0, 1, s), s).desired).toBe(1);
  });

  it('with both parts, the larger count wins', () => {
    const s = spec({
      min_replicas: 1,
      max_replicas: 10,
      target_in_flight: 1,
      stable_window_s: 1,
      panic_window_s: 1,
      rules: [{ metric_source: 'PROMETHEUS', metric_name: 'vllm:num_requests_waiting', threshold: 5, comparator: 'gt', step_size: 3, cooldown_seconds: 60 }],
    });
    const d = decide(t0, load(2, { prometheus: { 'vllm:num_requests_waiting': 9 } }), initialState(t0, 1, s), s);
    expect(d.desired).toBe(4);
    const k = decide(t0, load(6, { ready: 3, prometheus: { 'vllm:num_requests_waiting': 9 } }), initialState(t0, 1, s), s);
    expect(k.desired).toBe(6);
  });
});
