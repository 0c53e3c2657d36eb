import { clamp, decide, initialState, type AutoscaleState, type MetricsSnapshot } from './decide.js';
import type { AutoscalingSpec } from './spec.js';

/**
 * One service's decision state between ticks: feeds each snapshot to decide() and keeps what
 * it returns. The controller applies `desired` (service-controller.ts).
 */

export interface LastDecision {
  at: string;
  from: number;
  to: number;
  reason: string;
}

export class ServiceAutoscaler {
  #spec: AutoscalingSpec;
  #state: AutoscaleState;
  lastDecision: LastDecision | null = null;
  panicking = false;

  constructor(spec: AutoscalingSpec, desired: number, now = Date.now()) {
    this.#spec = spec;
    this.#state = initialState(now, desired, spec);
  }

  get spec(): AutoscalingSpec {
    return this.#spec;
  }

  get desired(): number {
    return this.#state.desired;
  }

  /** A changed `autoscaling`: windows start over, the count is kept within the new bounds. */
  setSpec(spec: AutoscalingSpec, now = Date.now()): void {
    this.#spec = spec;
    this.#state = initialState(now, this.#state.desired, spec);
  }

  /** One decision; returns the change, or null when the count stays. */
  tick(now: number, snapshot: MetricsSnapshot): LastDecision | null {
    const from = this.#state.desired;
    const d = decide(now, snapshot, this.#state, this.#spec);
    this.#state = d.nextState;
    this.panicking = d.panicking;
    if (d.desired === from) return null;
    this.lastDecision = { at: new Date(now).toISOString(), from, to: d.desired, reason: d.reason };
    return this.lastDecision;
  }
}

export { clamp };
