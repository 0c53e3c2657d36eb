import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '../obs/logger.js';
import type { LeaseStore } from '../store/store.js';

/**
 * Which controller acts. With a shared store (Redis) exactly one instance holds the lease
 * `{prefix}controller:lease` and may start, stop and scale replicas; the others only serve the
 * API and write desired state. The holder renews well within the TTL; an instance that cannot
 * renew before the lease would expire steps down on its own (it cannot know whether Redis still
 * counts it), and every write it makes carries the lease value as a fence, so a leader that was
 * paused past its lease cannot overwrite its successor's tables.
 *
 * The embedded store has one process by construction: `SoleLeadership` always leads.
 */

export interface LeadershipInfo {
  /** "lease" with a shared store, "sole" with the embedded one. */
  mode: 'lease' | 'sole';
  /** This instance's id. */
  instance: string;
  is_leader: boolean;
  /** The current leader's instance id, null when nobody holds the lease. */
  leader: string | null;
  /** Fencing number of the current term (grows with every new leader). */
  term: number | null;
  lease_ttl_ms: number | null;
}

export interface Leadership {
  readonly instance: string;
  readonly isLeader: boolean;
  /** Lease value to fence writes with; undefined when not leading (or sole). */
  readonly fence: string | undefined;
  /** Called with true when this instance starts leading, false when it stops. */
  onChange(listener: (leading: boolean) => void): void;
  start(): void;
  /** Stops renewing and releases the lease so another instance takes over at once. */
  stop(): Promise<void>;
  info(): Promise<LeadershipInfo>;
}

export function newInstanceId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export class SoleLeadership implements Leadership {
  readonly instance = newInstanceId();
  readonly isLeader = true;
  readonly fence = undefined;
  onChange(): void {}
  start(): void {}
  async stop(): Promise<void> {}
  async info(): Promise<LeadershipInfo> {
    return { mode: 'sole', instance: this.instance, is_leader: true, leader: this.instance, term: null, lease_ttl_ms: null };
  }
}

export interface LeaseLeadershipOptions {
  store: LeaseStore;
  logger: Logger;
  /** Lease time (≤ 15 s by contract). */
  ttlMs?: number;
  /** How often the holder renews and the others try to take it. */
  renewMs?: number;
  instance?: string;
}

function parseLease(value: string): { term: number; holder: string } | null {
  const at = value.indexOf(':');
  if (at <= 0) return null;
  const term = Number(value.slice(0, at));
  return Number.isInteger(term) ? { term, holder: value.slice(at + 1) } : null;
}

export class LeaseLeadership implements Leadership {
  readonly instance: string;
  readonly #store: LeaseStore;
  readonly #logger: Logger;
  readonly #ttlMs: number;
  readonly #renewMs: number;
  readonly #listeners = new Set<(leading: boolean) => void>();
  #value: string | undefined;
  /** When our lease surely ends by our own clock (measured from before the renew was sent). */
  #validUntil = 0;
  #timer: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #ticking = false;
  #stopped = true;

  constructor(opts: LeaseLeadershipOptions) {
    this.#store = opts.store;
    this.#logger = opts.logger.child({ component: 'leadership' });
    this.#ttlMs = opts.ttlMs ?? 10_000;
    this.#renewMs = opts.renewMs ?? Math.max(250, Math.floor(this.#ttlMs / 4));
    this.instance = opts.instance ?? newInstanceId();
  }

  get isLeader(): boolean {
    return this.#value !== undefined && Date.now() < this.#validUntil;
  }

  get fence(): string | undefined {
    return this.isLeader ? this.#value : undefined;
  }

  onChange(listener: (leading: boolean) => void): void {
    this.#listeners.add(listener);
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    void this.#tick();
    this.#timer = setInterval(() => void this.#tick(), this.#renewMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    const value = this.#value;
    this.#lose('shutting down');
    if (value) await this.#store.releaseLease(value).catch(() => undefined);
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#stopped) return;
    this.#ticking = true;
    const sentAt = Date.now();
    try {
      if (this.#value) {
        if (await this.#store.renewLease(this.#value, this.#ttlMs)) this.#extend(sentAt);
        else this.#lose('lease taken by another instance');
      } else {
        const value = await this.#store.acquireLease(this.instance, this.#ttlMs);
        if (value && !this.#stopped) {
          this.#value = value;
          this.#extend(sentAt);
          this.#logger.info({ instance: this.instance, term: parseLease(value)?.term }, 'controller leadership acquired');
          this.#emit(true);
        }
      }
    } catch (err) {
      // Redis unreachable: keep what we have until our own clock says the lease is over.
      this.#logger.debug({ err_message: (err as Error).message }, 'lease round failed');
    } finally {
      this.#ticking = false;
    }
  }

  #extend(sentAt: number): void {
    // A margin under the TTL: Redis may count from a little later than we do, never earlier.
    this.#validUntil = sentAt + this.#ttlMs - Math.min(1_000, this.#ttlMs / 10);
    if (this.#deadline) clearTimeout(this.#deadline);
    this.#deadline = setTimeout(() => this.#lose('lease not renewed in time'), this.#validUntil - Date.now());
    this.#deadline.unref();
  }

  #lose(reason: string): void {
    if (this.#deadline) clearTimeout(this.#deadline);
    if (this.#value === undefined) return;
    this.#value = undefined;
    this.#validUntil = 0;
    this.#logger.warn({ instance: this.instance, reason }, 'controller leadership lost');
    this.#emit(false);
  }

  #emit(leading: boolean): void {
    for (const listener of this.#listeners) {
      try {
        listener(leading);
      } catch (err) {
        this.#logger.error({ err }, 'leadership listener threw');
      }
    }
  }

  async info(): Promise<LeadershipInfo> {
    const lease = await this.#store.readLease();
    const parsed = lease ? parseLease(lease.value) : null;
    return {
      mode: 'lease',
      instance: this.instance,
      is_leader: this.isLeader,
      leader: parsed?.holder ?? null,
      term: parsed?.term ?? null,
      lease_ttl_ms: lease?.ttl_ms ?? null,
    };
  }
}
