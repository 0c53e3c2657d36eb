import { z } from 'zod';

/**
 * The `autoscaling` field of a service (DESIGN.md "Autoscaling and scale to zero"): the KPA
 * part (target in-flight per replica, stable and panic windows, scale-down delay, scale to
 * zero) and rules in the seed system's autoscaling-rule shape, so its rules import as they are.
 */

export const METRIC_SOURCES = ['GATEWAY', 'REPLICA', 'PROMETHEUS'] as const;
export const COMPARATORS = ['gt', 'ge', 'lt', 'le'] as const;
export const GATEWAY_METRICS = ['in_flight', 'queued', 'rps', 'p99_latency_ms'] as const;
export const REPLICA_METRICS = ['cpu_percent', 'memory_bytes'] as const;
export type MetricSource = (typeof METRIC_SOURCES)[number];
export type Comparator = (typeof COMPARATORS)[number];

export const MAX_AUTOSCALE_REPLICAS = 64;
const DAY_S = 86_400;

const replicaBound = z.number().int('must be an integer').min(0, 'must be ≥ 0').max(MAX_AUTOSCALE_REPLICAS);
/** Windows are seconds > 0; fractions are allowed (tests use sub-second windows). */
const windowSeconds = z.number().gt(0, 'must be a number of seconds > 0').max(3_600, 'must be at most 3600 s');
const delaySeconds = z.number().min(0, 'must be a number of seconds ≥ 0').max(DAY_S);
/** The name of one Prometheus metric (vLLM's use `:`). */
const PROMETHEUS_NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

export const autoscalingRuleSchema = z
  .object({
    metric_source: z.enum(METRIC_SOURCES, { error: `must be one of ${METRIC_SOURCES.join(', ')}` }),
    metric_name: z.string().min(1, 'required').max(200),
    threshold: z.number({ error: 'must be a number' }),
    comparator: z.enum(COMPARATORS, { error: `must be one of ${COMPARATORS.join(', ')}` }),
    /** Replicas added (positive) or removed (negative) each time the rule fires. */
    step_size: z
      .number()
      .int('must be an integer')
      .min(-MAX_AUTOSCALE_REPLICAS)
      .max(MAX_AUTOSCALE_REPLICAS)
      .refine((v) => v !== 0, 'must not be 0 (positive adds replicas, negative removes them)'),
    cooldown_seconds: delaySeconds.default(300),
    /** The rule never takes the count below / above these (absent: the service's bounds). */
    min_replicas: replicaBound.optional(),
    max_replicas: replicaBound.optional(),
  })
  .strict()
  .superRefine((rule, ctx) => {
    if (rule.metric_source === 'GATEWAY' && !(GATEWAY_METRICS as readonly string[]).includes(rule.metric_name)) {
      ctx.addIssue({ code: 'custom', path: ['metric_name'], message: `GATEWAY metrics are ${GATEWAY_METRICS.join(', ')}` });
    }
    if (rule.metric_source === 'REPLICA' && !(REPLICA_METRICS as readonly string[]).includes(rule.metric_name)) {
      ctx.addIssue({ code: 'custom', path: ['metric_name'], message: `REPLICA metrics are ${REPLICA_METRICS.join(', ')}` });
    }
    if (rule.metric_source === 'PROMETHEUS' && !PROMETHEUS_NAME_RE.test(rule.metric_name)) {
      ctx.addIssue({ code: 'custom', path: ['metric_name'], message: 'must be a Prometheus metric name' });
    }
    if (rule.min_replicas !== undefined && rule.max_replicas !== undefined && rule.min_replicas > rule.max_replicas) {
      ctx.addIssue({ code: 'custom', path: ['min_replicas'], message: `must be ≤ max_replicas (${rule.max_replicas})` });
      ctx.addIssue({ code: 'custom', path: ['max_replicas'], message: `must be ≥ min_replicas (${rule.min_replicas})` });
    }
  });
export type AutoscalingRule = z.infer<typeof autoscalingRuleSchema>;

export const autoscalingSchema = z
  .object({
    min_replicas: replicaBound,
    max_replicas: replicaBound.min(1, 'must be ≥ 1'),
    /** In-flight requests one replica should carry; optional only when rules drive the count. */
    target_in_flight: z.number().gt(0, 'must be > 0').max(1_000_000).optional(),
    stable_window_s: windowSeconds.default(60),
    panic_window_s: windowSeconds.default(6),
    scale_down_delay_s: delaySeconds.default(30),
    scale_to_zero_grace_s: delaySeconds.default(30),
    rules: z.array(autoscalingRuleSchema).max(32).default([]),
  })
  .strict()
  // Also when other fields are bad, so one answer names every problem.
  .superRefine((a, ctx) => {
    if (typeof a !== 'object' || a === null) return;
    if (typeof a.min_replicas === 'number' && typeof a.max_replicas === 'number' && a.min_replicas > a.max_replicas) {
      ctx.addIssue({ code: 'custom', path: ['min_replicas'], message: `must be ≤ max_replicas (${a.max_replicas})` });
      ctx.addIssue({ code: 'custom', path: ['max_replicas'], message: `must be ≥ min_replicas (${a.min_replicas})` });
    }
    if (typeof a.panic_window_s === 'number' && typeof a.stable_window_s === 'number' && a.panic_window_s > a.stable_window_s) {
      ctx.addIssue({ code: 'custom', path: ['panic_window_s'], message: `must be ≤ stable_window_s (${a.stable_window_s})` });
    }
    if (a.target_in_flight === undefined && (!Array.isArray(a.rules) || a.rules.length === 0)) {
      ctx.addIssue({ code: 'custom', path: ['target_in_flight'], message: 'required unless rules are given' });
    }
  }, { when: () => true });
export type AutoscalingSpec = z.infer<typeof autoscalingSchema>;
