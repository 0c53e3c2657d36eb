import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { CachedToken } from '../auth/token-cache.js';
import { DEFAULT_PRIORITY } from '../auth/token-cache.js';
import { GatewayError } from '../errors/gateway-error.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { Store } from '../store/store.js';
import type { Balancer, Candidates } from '../upstream/balancer.js';
import type { RouteState } from '../upstream/route-state.js';
import { remaining, type LimitDecision, type LimiterSpec } from './gcra.js';
import { MINUTE_MS, isCompletionPath, type LlmMetrics, type TrafficPolicy } from './policy.js';
import { RateLimiter } from './rate-limiter.js';
import { IpcSharedLimits, type LimitsChannel } from './ipc-limits.js';
import { FallbackFlag, RedisLink } from './redis-link.js';
import { RedisSharedLimits, type SharedLimits } from './shared-limits.js';
import { BODY_INSPECT_MAX_BYTES, inspectCompletion, readBodyBounded } from './request-body.js';
import { MeterMode, ResponseMeter, meterModeFor } from './response-meter.js';
import { SlotManager, NO_ROUTE, type AcquireResult, type SlotHolder } from './slots.js';
import { UsageRecorder } from './usage-recorder.js';
import { WaitQueue, type Waiter } from './wait-queue.js';

/** What traffic control needs from the request it works for (the Exchange). */
export interface TrafficHost {
  readonly requestId: string;
  /** Rate limits passed (and the body was read if needed): go on to pick a route. */
  trafficAdmitted(): void;
  /** A slot was taken on this route: send the request there. */
  trafficDispatch(route: RouteState): void;
  /** No usable route at all: wait in the hold queue as any request would. */
  trafficHold(): void;
  fail(err: unknown): void;
}

/** What the data plane knows about the endpoint when it asks. */
export interface TrafficEndpoint {
  readonly traffic: TrafficPolicy;
  readonly candidates: Candidates;
  readonly balancer: Balancer;
}

/** How often queued requests retry when slots are shared through Redis (a slot may free elsewhere). */
const SHARED_QUEUE_POLL_MS = 25;
const NO_TOKEN = '-';

/**
 * The traffic state of one request: created only for requests that need it (an endpoint with a
 * cap or limits, a token with limits, or a metered POST), so everything else pays nothing.
 */
export class TrafficTicket implements Waiter, SlotHolder {
  seq = 0;
  queued = false;
  slotRoute: RouteState | null = null;
  leaseId = '';
  leaseKey = '';
  host: TrafficHost | null = null;
  endpoint: TrafficEndpoint | null = null;
  skipA: RouteState | null = null;
  skipB: RouteState | null = null;
  waitTimer: NodeJS.Timeout | null = null;
  /** Body to forward instead of the request stream (read for inspection). */
  body: Buffer | Readable | null = null;
  /** Tokens reserved under tokens-per-minute limits, settled from the metered usage. */
  reserved = 0;
  tpmSpecs: LimiterSpec[] | null = null;
  /** RateLimit-Policy / RateLimit values for the response. */
  rateHeaders: string[] | null = null;
  injectedUsage = false;
  meter: ResponseMeter | null = null;
  firstByteMs = -1;
  startMs = 0;
  prompt = -1;
  completion = -1;
  finished = false;

  constructor(
    readonly policy: TrafficPolicy,
    readonly priority: number,
    readonly token: CachedToken | undefined,
    readonly tokenKey: string,
    readonly sub: string,
    readonly method: string,
    readonly path: string,
  ) {}
}

class EndpointGate {
  readonly queue = new WaitQueue<TrafficTicket>();
  pumping = false;
  again = false;
  poll: NodeJS.Timeout | null = null;
}

export interface TrafficControlOptions {
  store: Store;
  logger: Logger;
  metrics: Metrics;
  /** Shared limits through Redis (REDIS_URL); absent = this instance alone. */
  redis?: { url: string; prefix: string };
  /** Cluster worker on the embedded store: limits shared through the primary. */
  ipc?: LimitsChannel;
  bodyLimitBytes: number;
}

/**
 * Traffic control for model endpoints (docs/traffic-control.md): per-route concurrency caps
 * with a priority queue, rate limits per token and per endpoint, and LLM usage metering. The
 * Exchange calls it at admission (rate limits), at route pick (slots), on the response bytes
 * (metering) and at the end (release, settle, record).
 */
export class TrafficControl {
  readonly #metrics: Metrics;
  readonly #logger: Logger;
  readonly #link: RedisLink | null;
  readonly #ipc: IpcSharedLimits | null;
  readonly #slots: SlotManager;
  readonly #limiter: RateLimiter;
  readonly #recorder: UsageRecorder;
  readonly #gates = new Map<string, EndpointGate>();
  readonly #llmMetrics = new Map<string, LlmMetrics>();
  /** Limiter plans by token (or by policy for requests without one); see #planFor. */
  readonly #plans = new WeakMap<object, LimiterPlan>();
  readonly #bodyLimit: number;

  constructor(opts: TrafficControlOptions) {
    this.#metrics = opts.metrics;
    this.#logger = opts.logger.child({ component: 'traffic' });
    this.#bodyLimit = opts.bodyLimitBytes;
    this.#link = opts.redis ? new RedisLink({ url: opts.redis.url, prefix: opts.redis.prefix, logger: this.#logger }) : null;
    this.#ipc = this.#link === null && opts.ipc ? new IpcSharedLimits(opts.ipc) : null;
    const shared: SharedLimits | null = this.#link ? new RedisSharedLimits(this.#link) : this.#ipc;
    const slotsFlag = shared ? new FallbackFlag('slots', this.#logger, opts.metrics.trafficLocalFallback.labels('slots')) : null;
    const rateFlag = shared ? new FallbackFlag('rate', this.#logger, opts.metrics.trafficLocalFallback.labels('rate')) : null;
    this.#slots = new SlotManager(shared, slotsFlag, randomBytes(6).toString('hex'));
    this.#limiter = new RateLimiter(shared, rateFlag);
    const failures = opts.metrics.usageFlushFailures;
    this.#recorder = new UsageRecorder(opts.store, this.#logger, () => failures.inc());
  }

  start(): void {
    this.#link?.start();
  }

  async stop(): Promise<void> {
    this.#slots.stop();
    for (const gate of this.#gates.values()) if (gate.poll !== null) clearInterval(gate.poll);
    await this.#recorder.stop();
    await this.#link?.close();
    this.#ipc?.close();
  }

  /** Writes pending usage now (tests, drain). */
  flushUsage(): Promise<void> {
    return this.#recorder.flush();
  }

  /**
   * The ticket for a request, or null when traffic control has nothing to do for it (the
   * common case: checked with a few field reads, no allocation).
   */
  ticketFor(policy: TrafficPolicy, token: CachedToken | undefined, method: string, path: string): TrafficTicket | null {
    const meter = policy.meter && method === 'POST';
    if (!policy.always && !meter && (token === undefined || (token.rpm === 0 && token.tpm === 0))) return null;
    const tokenKey = token?.jti ?? token?.sub ?? NO_TOKEN;
    const ticket = new TrafficTicket(policy, token?.priority ?? DEFAULT_PRIORITY, token, tokenKey, token?.sub ?? NO_TOKEN, method, path);
    ticket.startMs = performance.now();
    return ticket;
  }

  // ---- admission: rate limits (and the body, when it must be read) ----

  admit(ticket: TrafficTicket, host: TrafficHost, req: IncomingMessage, contentLength: number, hasBody: boolean): void {
    ticket.host = host;
    const policy = ticket.policy;
    const token = ticket.token;
    const tpm = policy.tpm > 0 || (token !== undefined && token.tpm > 0);
    const readBody =
      hasBody &&
      ticket.method === 'POST' &&
      (tpm || policy.requestInStream) &&
      contentLength <= BODY_INSPECT_MAX_BYTES &&
      isCompletionPath(ticket.path);
    if (!readBody) {
      this.#limit(ticket, host);
      return;
    }
    readBodyBounded(req, BODY_INSPECT_MAX_BYTES, this.#bodyLimit).then(
      (read) => {
        if (read.buffer !== null) {
          const inspected = inspectCompletion(read.buffer, policy.requestInStream);
          ticket.reserved = tpm ? inspected.maxTokens : 0;
          ticket.injectedUsage = inspected.injectedUsage;
          ticket.body = inspected.rewritten ?? read.buffer;
        } else {
          ticket.body = read.stream;
        }
        this.#limit(ticket, host);
      },
      (err) => host.fail(err),
    );
  }

  #limit(ticket: TrafficTicket, host: TrafficHost): void {
    const plan = this.#planFor(ticket);
    if (plan === null) {
      host.trafficAdmitted();
      return;
    }
    const specs = plan.specsFor(ticket.reserved);
    const decided = this.#limiter.check(specs);
    if (decided instanceof Promise) decided.then((d) => this.#decided(ticket, host, plan, specs, d), (err) => host.fail(err));
    else this.#decided(ticket, host, plan, specs, decided);
  }

  /**
   * The limiters of a request: built once per (token, endpoint policy) and kept with the token
   * (or the policy, without one), so a request reuses the same key strings (V8 caches a string's
   * hash in it: no concatenation and rehash per request) and the same RateLimit-Policy value.
   * Only tokens-per-minute costs differ per request.
   */
  #planFor(ticket: TrafficTicket): LimiterPlan | null {
    const policy = ticket.policy;
    const token = ticket.token;
    if (policy.rpm === 0 && policy.tpm === 0 && (token === undefined || (token.rpm === 0 && token.tpm === 0))) return null;
    const owner: object = token ?? policy;
    let plan = this.#plans.get(owner);
    if (plan === undefined || plan.policy !== policy) {
      plan = new LimiterPlan(policy, token, ticket.tokenKey);
      this.#plans.set(owner, plan);
    }
    return plan;
  }

  #decided(ticket: TrafficTicket, host: TrafficHost, plan: LimiterPlan, specs: LimiterSpec[], d: LimitDecision): void {
    const stateHeader = rateLimitState(specs, d);
    if (!d.allowed) {
      let waitMs = 0;
      for (const s of d.states) if (s.waitMs > waitMs) waitMs = s.waitMs;
      this.#metrics.trafficRejected.labels('rate_limited').inc();
      host.fail(
        new GatewayError('GW_RATE_LIMITED', {
          retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
          headers: { 'ratelimit-policy': plan.policyHeader, ratelimit: stateHeader },
        }),
      );
      return;
    }
    ticket.rateHeaders = ['ratelimit-policy', plan.policyHeader, 'ratelimit', stateHeader];
    if (plan.tpm) ticket.tpmSpecs = specs.filter((s) => s.name.endsWith('-tokens'));
    host.trafficAdmitted();
  }

  // ---- route pick: slots under max_in_flight_per_route ----

  /** Picks a route and takes a slot on it, or queues the request. */
  pick(ticket: TrafficTicket, endpoint: TrafficEndpoint, skipA: RouteState | null, skipB: RouteState | null): void {
    ticket.endpoint = endpoint;
    ticket.skipA = skipA;
    ticket.skipB = skipB;
    const host = ticket.host!;
    const policy = endpoint.traffic;
    if (policy.cap === 0) {
      const route = endpoint.balancer.pick(endpoint.candidates, Date.now(), skipA, skipB);
      if (route === null) host.trafficHold();
      else host.trafficDispatch(route);
      return;
    }
    const gate = this.#gate(policy);
    // Others are already waiting: take a place behind them instead of overtaking.
    if (gate.queue.size > 0) {
      this.#enqueue(ticket, gate, policy);
      return;
    }
    const got = this.#slots.acquire(ticket, policy.endpointId, policy.cap, endpoint.candidates, endpoint.balancer, Date.now(), skipA, skipB);
    if (got instanceof Promise) got.then((r) => this.#picked(ticket, gate, r), (err) => host.fail(err));
    else this.#picked(ticket, gate, got);
  }

  #picked(ticket: TrafficTicket, gate: EndpointGate, got: AcquireResult): void {
    const host = ticket.host!;
    if (ticket.finished) {
      if (got) this.#releaseSlot(ticket);
      return;
    }
    if (got === NO_ROUTE) host.trafficHold();
    else if (got === null) this.#enqueue(ticket, gate, ticket.policy);
    else host.trafficDispatch(got);
  }

  #enqueue(ticket: TrafficTicket, gate: EndpointGate, policy: TrafficPolicy): void {
    const host = ticket.host!;
    if (gate.queue.size >= policy.queueMax || policy.maxWaitMs === 0) {
      this.#metrics.trafficRejected.labels('queue_full').inc();
      host.fail(new GatewayError('GW_OVERLOADED', { retryAfterSeconds: 1, detail: 'traffic queue full' }));
      return;
    }
    gate.queue.push(ticket);
    this.#metrics.trafficQueued.inc();
    ticket.waitTimer = setTimeout(() => {
      ticket.waitTimer = null;
      if (!gate.queue.remove(ticket)) return;
      this.#metrics.trafficQueued.dec();
      this.#metrics.trafficRejected.labels('queue_timeout').inc();
      host.fail(new GatewayError('GW_OVERLOADED', { retryAfterSeconds: Math.max(1, Math.ceil(policy.maxWaitMs / 1000)), detail: 'waited too long for a slot' }));
    }, policy.maxWaitMs);
    if (this.#slots.shared && gate.poll === null) {
      gate.poll = setInterval(() => void this.#pump(gate), SHARED_QUEUE_POLL_MS);
      gate.poll.unref();
    }
    // A slot may have freed between the failed acquire and now.
    void this.#pump(gate);
  }

  /** Grants freed slots to queued requests, best first, until one does not fit. */
  async #pump(gate: EndpointGate): Promise<void> {
    if (gate.pumping) {
      gate.again = true;
      return;
    }
    gate.pumping = true;
    try {
      do {
        gate.again = false;
        for (;;) {
          const next = gate.queue.peek();
          if (next === undefined) break;
          const ep = next.endpoint!;
          const policy = ep.traffic;
          let got = this.#slots.acquire(next, policy.endpointId, policy.cap, ep.candidates, ep.balancer, Date.now(), next.skipA, next.skipB);
          if (got instanceof Promise) got = await got;
          if (got === null) break;
          if (!gate.queue.take(next)) {
            // It left (timed out, client gone) while we asked Redis.
            if (got) this.#releaseSlot(next);
            continue;
          }
          this.#metrics.trafficQueued.dec();
          if (next.waitTimer !== null) clearTimeout(next.waitTimer);
          next.waitTimer = null;
          if (got === NO_ROUTE) next.host!.trafficHold();
          else next.host!.trafficDispatch(got);
        }
      } while (gate.again);
    } finally {
      gate.pumping = false;
      if (gate.queue.size === 0 && gate.poll !== null) {
        clearInterval(gate.poll);
        gate.poll = null;
      }
    }
  }

  #gate(policy: TrafficPolicy): EndpointGate {
    let gate = this.#gates.get(policy.endpointId);
    if (gate === undefined) {
      gate = new EndpointGate();
      this.#gates.set(policy.endpointId, gate);
    }
    return gate;
  }

  /** The request is done with its route (finished, or retrying elsewhere): the slot goes to the next. */
  releaseSlot(ticket: TrafficTicket): void {
    if (ticket.slotRoute === null) return;
    this.#releaseSlot(ticket);
  }

  #releaseSlot(ticket: TrafficTicket): void {
    this.#slots.release(ticket);
    const gate = this.#gates.get(ticket.policy.endpointId);
    if (gate !== undefined && gate.queue.size > 0) void this.#pump(gate);
  }

  // ---- response: metering ----

  /**
   * Response headers arrived: decides metering and returns extra headers (RateLimit) to send.
   * `contentLength` (-1: none) lets the meter recognise a body that arrives in one chunk.
   */
  onResponseHead(ticket: TrafficTicket, status: number, contentType: string | undefined, contentLength = -1): string[] | null {
    if (ticket.policy.meter && ticket.method === 'POST' && status >= 200 && status < 300) {
      const mode = meterModeFor(contentType);
      if (mode !== MeterMode.None) ticket.meter = new ResponseMeter(mode, ticket.injectedUsage, contentLength);
    }
    return ticket.rateHeaders;
  }

  /** A response chunk: returns what to write to the client (null: nothing now). */
  onResponseData(ticket: TrafficTicket, chunk: Buffer): Buffer | null {
    if (ticket.firstByteMs < 0) ticket.firstByteMs = performance.now();
    const meter = ticket.meter;
    return meter === null ? chunk : meter.onData(chunk);
  }

  /** The upstream body ended: bytes still held by the meter (an unterminated last event). */
  onResponseEnd(ticket: TrafficTicket): Buffer | null {
    return ticket.meter === null ? null : ticket.meter.end();
  }

  /**
   * The request is over (any outcome): leaves the queue, frees the slot, settles token limits and
   * records usage. `reachedUpstream`: the upstream answered (a refused request is not usage).
   */
  finish(ticket: TrafficTicket, reachedUpstream: boolean): void {
    if (ticket.finished) return;
    ticket.finished = true;
    if (ticket.waitTimer !== null) {
      clearTimeout(ticket.waitTimer);
      ticket.waitTimer = null;
    }
    // Gates exist only for endpoints that ever had a cap: the rest skip the lookup.
    const gate = this.#gates.size === 0 ? undefined : this.#gates.get(ticket.policy.endpointId);
    if (gate !== undefined && gate.queue.remove(ticket)) this.#metrics.trafficQueued.dec();
    this.releaseSlot(ticket);
    if (!reachedUpstream) {
      // Refused before the upstream saw it: give the reservation back.
      this.#settle(ticket, 0);
      return;
    }
    const usage = ticket.meter?.usage ?? null;
    const prompt = usage?.prompt ?? 0;
    const completion = usage?.completion ?? 0;
    ticket.prompt = usage === null ? -1 : prompt;
    ticket.completion = usage === null ? -1 : completion;
    this.#settle(ticket, prompt + completion);
    const policy = ticket.policy;
    if (!policy.meter || ticket.method !== 'POST') return;
    this.#recorder.record(policy.endpoint, ticket.tokenKey, ticket.sub, prompt, completion, Date.now());
    if (usage === null) return;
    const m = (policy.metrics ??= this.#metricsFor(policy.endpoint));
    if (prompt > 0) m.prompt.inc(prompt);
    if (completion > 0) m.completion.inc(completion);
    if (ticket.firstByteMs >= 0) {
      if (ticket.meter !== null && ticket.meter.events > 0) m.ttft.observe((ticket.firstByteMs - ticket.startMs) / 1000);
      const seconds = (performance.now() - ticket.firstByteMs) / 1000;
      if (completion > 0 && seconds > 0.001) m.tps.observe(completion / seconds);
    }
  }

  #settle(ticket: TrafficTicket, actual: number): void {
    const specs = ticket.tpmSpecs;
    if (specs === null) return;
    for (const spec of specs) this.#limiter.settle(spec, actual - spec.cost);
  }

  /** Endpoint label for the LLM metrics (bounded by the data plane's labeler; set by the gateway). */
  labelOf: (endpoint: string) => string = (endpoint) => endpoint;

  /** prom-client children of an endpoint label, looked up once per label (labels() hashes on every call). */
  #metricsFor(endpoint: string): LlmMetrics {
    const label = this.labelOf(endpoint);
    let m = this.#llmMetrics.get(label);
    if (m === undefined) {
      const metrics = this.#metrics;
      m = {
        prompt: metrics.llmTokens.labels(label, 'prompt'),
        completion: metrics.llmTokens.labels(label, 'completion'),
        ttft: metrics.llmTimeToFirstToken.labels(label),
        tps: metrics.llmOutputTokensPerSecond.labels(label),
      };
      this.#llmMetrics.set(label, m);
    }
    return m;
  }
}

/** The limiters that apply to one token (or to callers without one) on one endpoint policy. */
class LimiterPlan {
  readonly #specs: LimiterSpec[];
  /** Some limiter counts tokens: its cost is the request's reservation. */
  readonly tpm: boolean;
  readonly policyHeader: string;

  constructor(
    readonly policy: TrafficPolicy,
    token: CachedToken | undefined,
    tokenKey: string,
  ) {
    const id = policy.endpointId;
    const specs: LimiterSpec[] = [];
    if (token !== undefined && token.rpm > 0) {
      specs.push({ key: `rl:${id}:t:${tokenKey}:rpm`, name: 'token-requests', limit: token.rpm, windowMs: MINUTE_MS, cost: 1 });
    }
    if (token !== undefined && token.tpm > 0) specs.push({ key: `rl:${id}:t:${tokenKey}:tpm`, name: 'token-tokens', limit: token.tpm, windowMs: MINUTE_MS, cost: 0 });
    if (policy.rpm > 0) specs.push({ key: `rl:${id}:e:rpm`, name: 'endpoint-requests', limit: policy.rpm, windowMs: MINUTE_MS, cost: 1 });
    if (policy.tpm > 0) specs.push({ key: `rl:${id}:e:tpm`, name: 'endpoint-tokens', limit: policy.tpm, windowMs: MINUTE_MS, cost: 0 });
    this.#specs = specs;
    this.tpm = specs.some((s) => s.name.endsWith('-tokens'));
    this.policyHeader = rateLimitPolicy(specs);
  }

  /** The specs with this request's costs: shared when only request counts apply (cost 1). */
  specsFor(reserved: number): LimiterSpec[] {
    if (!this.tpm) return this.#specs;
    return this.#specs.map((s) => (s.name.endsWith('-tokens') ? { ...s, cost: Math.min(reserved, s.limit) } : s));
  }
}

/** IETF RateLimit-Policy field value (draft-ietf-httpapi-ratelimit-headers). */
export function rateLimitPolicy(specs: readonly LimiterSpec[]): string {
  let policy = '';
  for (let i = 0; i < specs.length; i++) {
    const s = specs[i];
    policy += `${i === 0 ? '' : ', '}"${s.name}";q=${s.limit};w=${Math.round(s.windowMs / 1000)}`;
  }
  return policy;
}

/** IETF RateLimit field value for one decision. */
export function rateLimitState(specs: readonly LimiterSpec[], d: LimitDecision): string {
  let state = '';
  for (let i = 0; i < specs.length; i++) {
    const s = specs[i];
    const st = d.states[i];
    const r = d.allowed ? remaining(s, st) : st.waitMs > 0 ? 0 : remaining(s, { waitMs: 0, usedMs: st.usedMs - s.cost * (s.windowMs / s.limit) });
    const t = Math.max(0, Math.ceil((d.allowed ? st.usedMs : st.waitMs) / 1000));
    state += `${i === 0 ? '' : ', '}"${s.name}";r=${r};t=${t}`;
  }
  return state;
}
