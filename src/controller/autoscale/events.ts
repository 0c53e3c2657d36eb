/**
 * A service's recent events (GET /v1/services/{name}/events): autoscaling decisions, replica
 * restarts and health changes, newest first, bounded so a flapping replica cannot grow it.
 */

export type ServiceEventKind = 'scale' | 'restart' | 'health';

export interface ServiceEvent {
  at: string;
  kind: ServiceEventKind;
  message: string;
  /** Scale decisions. */
  from?: number;
  to?: number;
  reason?: string;
  /** Replica events. */
  replica?: string;
  status?: string;
}

export const MAX_EVENTS = 200;

export class EventLog {
  readonly #events: ServiceEvent[] = [];
  readonly #max: number;

  constructor(max = MAX_EVENTS) {
    this.#max = max;
  }

  add(event: Omit<ServiceEvent, 'at'>, at = new Date()): ServiceEvent {
    const full = { at: at.toISOString(), ...event };
    this.#events.push(full);
    if (this.#events.length > this.#max) this.#events.splice(0, this.#events.length - this.#max);
    return full;
  }

  /** Newest first. */
  list(limit = this.#max): ServiceEvent[] {
    const out: ServiceEvent[] = [];
    for (let i = this.#events.length - 1; i >= 0 && out.length < limit; i--) out.push(this.#events[i]);
    return out;
  }
}
