import { GatewayError, type GatewayErrorCode } from '../errors/gateway-error.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { RouteTable } from '../schema/route-table.js';
import type { Store, StoreEvent } from '../store/store.js';
import type { AccessChecker, AccessRequest } from './access.js';
import { isWellFormedToken, tokenFromAuthorization } from './authorization-header.js';
import { CidrError, CidrList } from './cidr.js';
import { ClientAddressResolver } from './client-address.js';
import { SYSTEM_CLOCK, type Clock } from './clock.js';
import type { AuthFailureCode } from './jose-errors.js';
import { RevocationSet } from './revocation-set.js';
import type { CachedToken, TokenCache } from './token-cache.js';
import { TokenRejected, type TokenVerifier } from './verifier.js';

/** Why a request was refused; each maps to one prebuilt GatewayError per endpoint. */
type Refusal = 'missing' | 'invalid' | 'expired' | 'revoked' | 'forbidden' | 'address';

const REFUSAL_CODE: Record<Refusal, GatewayErrorCode> = {
  missing: 'GW_AUTH_MISSING',
  invalid: 'GW_AUTH_INVALID',
  expired: 'GW_AUTH_EXPIRED',
  revoked: 'GW_AUTH_REVOKED',
  forbidden: 'GW_AUTH_FORBIDDEN',
  address: 'GW_AUTH_FORBIDDEN',
};

const REFUSAL_BY_FAILURE: Record<AuthFailureCode, Refusal> = {
  GW_AUTH_INVALID: 'invalid',
  GW_AUTH_EXPIRED: 'expired',
};

function buildError(realm: string, refusal: Refusal): GatewayError {
  switch (refusal) {
    case 'missing':
      return new GatewayError('GW_AUTH_MISSING', { realm });
    case 'invalid':
      return new GatewayError('GW_AUTH_INVALID', { realm, challengeError: 'invalid_token' });
    case 'expired':
      return new GatewayError('GW_AUTH_EXPIRED', { realm, challengeError: 'invalid_token', challengeDescription: 'token expired' });
    case 'revoked':
      return new GatewayError('GW_AUTH_REVOKED', { realm, challengeError: 'invalid_token', challengeDescription: 'token revoked' });
    case 'forbidden':
      return new GatewayError('GW_AUTH_FORBIDDEN', { realm, challengeError: 'insufficient_scope' });
    case 'address':
      return new GatewayError('GW_AUTH_FORBIDDEN', { realm, message: 'client address is not allowed for this endpoint' });
  }
}

/** Built once per route table object (WeakMap), never per request. */
class EndpointPolicy {
  readonly #errors: Partial<Record<Refusal, GatewayError>> = {};
  constructor(
    readonly realm: string,
    /** null: no address restriction. */
    readonly cidrs: CidrList | null,
  ) {}

  /** The endpoint's error for a refusal; one shared instance (its stack trace is not meaningful). */
  error(refusal: Refusal): GatewayError {
    return (this.#errors[refusal] ??= buildError(this.realm, refusal));
  }
}

export interface TokenAccessCheckerOptions {
  verifier: TokenVerifier;
  cache: TokenCache;
  revocations?: RevocationSet;
  /** Feeds the revocation set (events + resync); omit in tests that add revocations directly. */
  store?: Store;
  /** TRUSTED_PROXIES, compiled. */
  trustedProxies?: CidrList | null;
  logger: Logger;
  metrics: Metrics;
  clock?: Clock;
  /** Periodic revocation resync (pub/sub is at-most-once); RESYNC_INTERVAL_MS. */
  resyncIntervalMs?: number;
  /** Applied to a revoke event that carries no exp (TOKEN_MAX_LIFETIME_SECONDS). */
  maxLifetimeSeconds?: number;
  /** Fetches remote key sets at start (TOKEN_JWKS_URL). */
  warmers?: (() => Promise<void>)[];
}

const ADDRESS = new Uint32Array(4);

/**
 * The data plane's access decision (DESIGN "Authentication"). Order:
 * 1. `allowed_cidrs` (when the table has a non-empty list): the client address, from the
 *    socket peer or, when the peer is a trusted proxy, from X-Forwarded-For → GW_AUTH_FORBIDDEN.
 * 2. public endpoint → allowed (Authorization passes through; the proxy does that).
 * 3. CORS preflight → allowed.
 * 4. the token (Authorization `BackendAI`/`Bearer`, or the WebSocket query token):
 *    missing/unknown scheme → GW_AUTH_MISSING; malformed, bad signature or algorithm →
 *    GW_AUTH_INVALID; exp + 30 s passed → GW_AUTH_EXPIRED; jti revoked → GW_AUTH_REVOKED;
 *    aud ≠ the endpoint's id → GW_AUTH_FORBIDDEN.
 * A cached token is decided synchronously (returns undefined, no crypto); a new token returns
 * a promise. Failures are thrown (sync) or rejected (async) as GatewayErrors carrying the
 * endpoint's realm.
 */
export class TokenAccessChecker implements AccessChecker {
  readonly #verifier: TokenVerifier;
  readonly #cache: TokenCache;
  readonly #revocations: RevocationSet;
  readonly #store: Store | undefined;
  readonly #clients: ClientAddressResolver;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #resyncIntervalMs: number;
  readonly #maxLifetimeSeconds: number;
  readonly #warmers: (() => Promise<void>)[];
  readonly #policies = new WeakMap<RouteTable, EndpointPolicy>();
  readonly #inflight = new Map<string, Promise<CachedToken>>();
  readonly #hit;
  readonly #miss;
  readonly #negativeHit;
  readonly #failures: Record<GatewayErrorCode, { inc(): void } | undefined>;
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #resyncing: Promise<void> | undefined;

  constructor(opts: TokenAccessCheckerOptions) {
    this.#verifier = opts.verifier;
    this.#cache = opts.cache;
    this.#revocations = opts.revocations ?? new RevocationSet();
    this.#store = opts.store;
    this.#clients = new ClientAddressResolver(opts.trustedProxies ?? null);
    this.#logger = opts.logger;
    this.#clock = opts.clock ?? SYSTEM_CLOCK;
    this.#resyncIntervalMs = opts.resyncIntervalMs ?? 10_000;
    this.#maxLifetimeSeconds = opts.maxLifetimeSeconds ?? 366 * 24 * 3600;
    this.#warmers = opts.warmers ?? [];
    this.#hit = opts.metrics.tokenCache.labels('hit');
    this.#miss = opts.metrics.tokenCache.labels('miss');
    this.#negativeHit = opts.metrics.tokenCache.labels('negative_hit');
    const failures = {} as Record<GatewayErrorCode, { inc(): void } | undefined>;
    for (const code of ['GW_AUTH_MISSING', 'GW_AUTH_INVALID', 'GW_AUTH_EXPIRED', 'GW_AUTH_REVOKED', 'GW_AUTH_FORBIDDEN'] as const) {
      failures[code] = opts.metrics.authFailures.labels(code);
    }
    this.#failures = failures;
  }

  get revocations(): RevocationSet {
    return this.#revocations;
  }

  check(endpoint: RouteTable, request: AccessRequest): void | Promise<void> {
    const policy = this.#policies.get(endpoint) ?? this.#compile(endpoint);
    if (policy.cidrs !== null) {
      if (!this.#clients.resolveInto(request.remoteAddress, request.xForwardedFor, ADDRESS) || !policy.cidrs.matchesWords(ADDRESS)) {
        throw this.#refuse(policy, 'address');
      }
    }
    if (endpoint.public || request.isPreflight) return undefined;

    const token =
      request.authorization !== undefined ? tokenFromAuthorization(request.authorization) : request.queryToken || undefined;
    if (token === undefined) throw this.#refuse(policy, 'missing');

    const cached = this.#cache.get(token);
    if (cached !== undefined) {
      this.#hit.inc();
      this.#admit(cached, endpoint, policy, request);
      return undefined;
    }
    const failed = this.#cache.getFailure(token);
    if (failed !== undefined) {
      this.#negativeHit.inc();
      throw this.#refuse(policy, REFUSAL_BY_FAILURE[failed]);
    }
    this.#miss.inc();
    if (!isWellFormedToken(token)) throw this.#refuse(policy, 'invalid');
    return this.#verifyThenAdmit(token, endpoint, policy, request);
  }

  async #verifyThenAdmit(token: string, endpoint: RouteTable, policy: EndpointPolicy, request: AccessRequest): Promise<void> {
    let entry: CachedToken;
    try {
      entry = await this.#verifyShared(token, endpoint);
    } catch (err) {
      throw this.#refuse(policy, REFUSAL_BY_FAILURE[(err as TokenRejected).code]);
    }
    this.#admit(entry, endpoint, policy, request);
  }

  /** One verification per distinct token in flight: a burst of the same token costs one. */
  #verifyShared(token: string, endpoint: RouteTable): Promise<CachedToken> {
    let pending = this.#inflight.get(token);
    if (pending === undefined) {
      pending = this.#verifyOnce(token, endpoint);
      this.#inflight.set(token, pending);
      const forget = () => {
        this.#inflight.delete(token);
      };
      pending.then(forget, forget);
    }
    return pending;
  }

  /** Verifies and caches the outcome; rejects with a TokenRejected. */
  async #verifyOnce(token: string, endpoint: RouteTable): Promise<CachedToken> {
    try {
      return this.#cache.remember(token, await this.#verifier.verify(token), this.#clock.now());
    } catch (err) {
      let rejected: TokenRejected;
      if (err instanceof TokenRejected) {
        rejected = err;
      } else {
        this.#logger.error({ err, endpoint: endpoint.name }, 'token verification failed unexpectedly');
        rejected = new TokenRejected('GW_AUTH_INVALID', 'unexpected error', true);
      }
      this.#cache.rememberFailure(token, rejected.code, rejected.transient);
      if (this.#logger.isLevelEnabled('debug')) {
        this.#logger.debug({ endpoint: endpoint.name, err_code: rejected.code, reason: rejected.reason }, 'token rejected');
      }
      throw rejected;
    }
  }

  /** Claim checks done on every request, cached or not. */
  #admit(entry: CachedToken, endpoint: RouteTable, policy: EndpointPolicy, request: AccessRequest): void {
    if (this.#clock.now() > entry.expiredAfterMs) throw this.#refuse(policy, 'expired');
    if (entry.jti !== undefined && this.#revocations.has(entry.jti)) throw this.#refuse(policy, 'revoked');
    const aud = entry.aud;
    if (aud !== endpoint.id && (typeof aud === 'string' || !aud.includes(endpoint.id))) throw this.#refuse(policy, 'forbidden');
    request.token = entry;
  }

  #refuse(policy: EndpointPolicy, refusal: Refusal): GatewayError {
    this.#failures[REFUSAL_CODE[refusal]]?.inc();
    return policy.error(refusal);
  }

  #compile(endpoint: RouteTable): EndpointPolicy {
    let cidrs: CidrList | null = null;
    const list = endpoint.allowed_cidrs;
    if (list !== undefined && list.length > 0) {
      try {
        cidrs = CidrList.compile(list);
      } catch (err) {
        // Fail safe: keep the valid entries (dropping one can only deny more, never allow more).
        const valid = list.filter((c) => {
          try {
            CidrList.compile([c]);
            return true;
          } catch {
            return false;
          }
        });
        this.#logger.error(
          { endpoint: endpoint.name, version: endpoint.version, problem: err instanceof CidrError ? err.message : String(err) },
          'allowed_cidrs has invalid entries; they are ignored (the endpoint admits only the valid ones)',
        );
        cidrs = CidrList.compile(valid);
      }
    }
    const policy = new EndpointPolicy(endpoint.name, cidrs);
    this.#policies.set(endpoint, policy);
    return policy;
  }

  /** Subscribes to store events, loads the revoked list and warms remote key sets. */
  async start(): Promise<void> {
    if (this.#store !== undefined && this.#unsubscribe === undefined) {
      this.#unsubscribe = this.#store.subscribe(this.#onEvent);
      this.#timer = setInterval(this.#onTimer, this.#resyncIntervalMs);
      this.#timer.unref();
    }
    await Promise.all([this.resync(), ...this.#warmers.map((warm) => warm())]);
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Rebuilds the revocation set from the store (merging: revocations are never undone). */
  resync(): Promise<void> {
    if (this.#store === undefined) return Promise.resolve();
    this.#resyncing ??= this.#loadRevoked(this.#store).finally(() => {
      this.#resyncing = undefined;
    });
    return this.#resyncing;
  }

  async #loadRevoked(store: Store): Promise<void> {
    try {
      const list = await store.listRevoked();
      this.#revocations.merge(list, Math.floor(this.#clock.now() / 1000));
    } catch (err) {
      this.#logger.warn({ err }, 'cannot read revoked tokens from the store; keeping the revocations known so far');
    }
  }

  readonly #onEvent = (event: StoreEvent): void => {
    if (event.kind === 'revoke') {
      const exp = event.exp ?? Math.floor(this.#clock.now() / 1000) + this.#maxLifetimeSeconds;
      this.#revocations.add(event.jti, exp);
    } else if (event.kind === 'resync') {
      void this.resync();
    }
  };

  readonly #onTimer = (): void => {
    this.#revocations.sweep(Math.floor(this.#clock.now() / 1000));
    void this.resync();
  };
}
