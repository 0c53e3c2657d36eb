import { gcraLocal, gcraSettleLocal, type LimitDecision, type LimiterSpec } from './gcra.js';
import { localLimiterState, type RecentMap } from './rate-limiter.js';
import type { SharedLimits } from './shared-limits.js';

/**
 * Slots and rate limits shared by the data-plane workers of one machine (WORKERS > 1 on the
 * embedded store): the cluster primary counts them, the workers ask over the IPC channel. A
 * worker that exits has its slots freed by the primary at once (no lease needed).
 */

/** The ends of a cluster IPC channel (same shape as the store's). */
export interface LimitsChannel {
  send?(message: unknown): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

type Call =
  | { mg: 'limits.call'; id: number; op: 'acquire'; keys: string[]; cap: number; member: string }
  | { mg: 'limits.call'; id: number; op: 'check'; specs: LimiterSpec[] }
  | { mg: 'limits.call'; id: number; op: 'settle'; spec: LimiterSpec; delta: number }
  | { mg: 'limits.release'; key: string; member: string };
type Reply = { mg: 'limits.reply'; id: number; value: unknown };

function isMsg(m: unknown, kind: string): boolean {
  return typeof m === 'object' && m !== null && (m as { mg?: unknown }).mg === kind;
}

/** The primary's counters, shared by every worker. */
export class PrimaryLimits {
  readonly slots = new Map<string, Set<string>>();
  // Built on first use (a primary whose workers limit nothing keeps none).
  #gcraState: RecentMap | null = null;

  get #gcra(): RecentMap {
    return (this.#gcraState ??= localLimiterState());
  }

  acquire(keys: string[], cap: number, member: string): number {
    for (let i = 0; i < keys.length; i++) {
      let holders = this.slots.get(keys[i]);
      if (holders === undefined) this.slots.set(keys[i], (holders = new Set()));
      if (holders.size < cap) {
        holders.add(member);
        return i + 1;
      }
    }
    return 0;
  }

  release(key: string, member: string): void {
    const holders = this.slots.get(key);
    if (holders === undefined) return;
    holders.delete(member);
    if (holders.size === 0) this.slots.delete(key);
  }

  check(specs: LimiterSpec[]): LimitDecision {
    return gcraLocal(this.#gcra, specs, Date.now());
  }

  settle(spec: LimiterSpec, delta: number): void {
    gcraSettleLocal(this.#gcra, spec.key, spec, delta, Date.now());
  }
}

/** Primary side for one worker; the returned function frees what the worker held (call on exit). */
export function serveLimitsOverIpc(limits: PrimaryLimits, channel: LimitsChannel): () => void {
  const held = new Map<string, string>();
  const reply = (id: number, value: unknown) => {
    try {
      channel.send?.({ mg: 'limits.reply', id, value } satisfies Reply);
    } catch {
      // The worker is gone; its exit frees its slots.
    }
  };
  const onMessage = (raw: unknown) => {
    if (isMsg(raw, 'limits.release')) {
      const m = raw as Extract<Call, { mg: 'limits.release' }>;
      limits.release(m.key, m.member);
      held.delete(m.member);
      return;
    }
    if (!isMsg(raw, 'limits.call')) return;
    const m = raw as Extract<Call, { mg: 'limits.call' }>;
    switch (m.op) {
      case 'acquire': {
        const i = limits.acquire(m.keys, m.cap, m.member);
        if (i > 0) held.set(m.member, m.keys[i - 1]);
        reply(m.id, i);
        return;
      }
      case 'check':
        reply(m.id, limits.check(m.specs));
        return;
      case 'settle':
        limits.settle(m.spec, m.delta);
        reply(m.id, null);
        return;
    }
  };
  channel.on('message', onMessage);
  return () => {
    channel.off('message', onMessage);
    for (const [member, key] of held) limits.release(key, member);
    held.clear();
  };
}

/** Worker side. A call with no answer in time fails (the caller then counts locally). */
export class IpcSharedLimits implements SharedLimits {
  readonly prefix = '';
  readonly leasesExpire = false;
  readonly #channel: LimitsChannel;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  #nextId = 1;

  constructor(channel: LimitsChannel, private readonly timeoutMs = 1000) {
    this.#channel = channel;
    channel.on('message', this.#onMessage);
  }

  get ready(): boolean {
    return this.#channel.send !== undefined;
  }

  readonly #onMessage = (m: unknown): void => {
    if (!isMsg(m, 'limits.reply')) return;
    const r = m as Reply;
    const p = this.#pending.get(r.id);
    if (p === undefined) return;
    this.#pending.delete(r.id);
    clearTimeout(p.timer);
    p.resolve(r.value);
  };

  #call(message: Record<string, unknown>): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error('the cluster primary did not answer'));
      }, this.timeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve, reject, timer });
      try {
        this.#channel.send!({ mg: 'limits.call', id, ...message });
      } catch (err) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(err as Error);
      }
    });
  }

  async acquireSlot(keys: string[], cap: number, member: string): Promise<number> {
    return Number(await this.#call({ op: 'acquire', keys, cap, member }));
  }

  releaseSlot(key: string, member: string): void {
    try {
      this.#channel.send?.({ mg: 'limits.release', key, member });
    } catch {
      // The primary is gone: nothing left to release.
    }
  }

  renewSlots(): void {
    // The primary frees a dead worker's slots itself.
  }

  async checkLimits(specs: readonly LimiterSpec[]): Promise<LimitDecision> {
    return (await this.#call({ op: 'check', specs })) as LimitDecision;
  }

  async settleLimit(spec: LimiterSpec, delta: number): Promise<void> {
    await this.#call({ op: 'settle', spec, delta });
  }

  close(): void {
    this.#channel.off('message', this.#onMessage);
  }
}
