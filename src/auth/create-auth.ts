import { SettingsError, type Settings } from '../config/settings.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { Store } from '../store/store.js';
import { TokenAccessChecker } from './access-checker.js';
import { CidrError, CidrList, checkCidrs } from './cidr.js';
import { SYSTEM_CLOCK, type Clock } from './clock.js';
import { loadPublicKeyFile, remoteJwksSource, type ExternalKeySource } from './external-keys.js';
import { TokenIssuer } from './issuer.js';
import { RevocationSet } from './revocation-set.js';
import { TokenCache } from './token-cache.js';
import { EXP_LEEWAY_SECONDS, TokenVerifier } from './verifier.js';

export type AuthSettings = Pick<
  Settings,
  | 'TOKEN_JWKS_URL'
  | 'TOKEN_PUBLIC_KEY_FILE'
  | 'TOKEN_ISSUERS'
  | 'TOKEN_MAX_LIFETIME_SECONDS'
  | 'TOKEN_CACHE_MAX'
  | 'TRUSTED_PROXIES'
  | 'RESYNC_INTERVAL_MS'
>;

export interface AuthDeps {
  settings: AuthSettings;
  /** TOKEN_SECRET, or the one generated and saved in DATA_DIR. */
  tokenSecret: string;
  store: Store;
  logger: Logger;
  metrics: Metrics;
  clock?: Clock;
}

export interface Auth {
  /** For the proxy: `checker.check(table, request)`; `start()` before serving, `stop()` on drain. */
  checker: TokenAccessChecker;
  issuer: TokenIssuer;
  verifier: TokenVerifier;
  revocations: RevocationSet;
  maxLifetimeSeconds: number;
  clock: Clock;
  /** For the admin endpoints routes (`allowed_cidrs` validation). */
  checkCidrs: typeof checkCidrs;
}

/**
 * Builds the token life cycle from settings. Throws SettingsError (one line naming the
 * setting) for an unreadable TOKEN_PUBLIC_KEY_FILE or a bad TRUSTED_PROXIES entry. Does not
 * touch the network: call `checker.start()` to load revocations and fetch a remote key set.
 */
export async function createAuth(deps: AuthDeps): Promise<Auth> {
  const { settings, logger } = deps;
  const clock = deps.clock ?? SYSTEM_CLOCK;

  const external: ExternalKeySource[] = [];
  if (settings.TOKEN_PUBLIC_KEY_FILE) {
    try {
      external.push(await loadPublicKeyFile(settings.TOKEN_PUBLIC_KEY_FILE));
    } catch (err) {
      throw new SettingsError(`invalid settings: ${(err as Error).message}`);
    }
  }
  if (settings.TOKEN_JWKS_URL) external.push(remoteJwksSource(settings.TOKEN_JWKS_URL, { logger, clock }));

  let trustedProxies: CidrList | null = null;
  try {
    trustedProxies = settings.TRUSTED_PROXIES.length > 0 ? CidrList.compile(settings.TRUSTED_PROXIES) : null;
  } catch (err) {
    if (err instanceof CidrError) throw new SettingsError(`invalid settings: TRUSTED_PROXIES: ${err.message}`);
    throw err;
  }

  const verifier = new TokenVerifier({ secret: deps.tokenSecret, external, issuers: settings.TOKEN_ISSUERS, clock, leewaySeconds: EXP_LEEWAY_SECONDS });
  const revocations = new RevocationSet(EXP_LEEWAY_SECONDS);
  const checker = new TokenAccessChecker({
    verifier,
    cache: new TokenCache({ max: settings.TOKEN_CACHE_MAX, leewaySeconds: EXP_LEEWAY_SECONDS }),
    revocations,
    store: deps.store,
    trustedProxies,
    logger,
    metrics: deps.metrics,
    clock,
    resyncIntervalMs: settings.RESYNC_INTERVAL_MS,
    maxLifetimeSeconds: settings.TOKEN_MAX_LIFETIME_SECONDS,
    warmers: external.flatMap((s) => (s.warm ? [() => s.warm!()] : [])),
  });
  if (external.length > 0) {
    logger.info({ sources: external.map((s) => s.label), issuers: settings.TOKEN_ISSUERS }, 'external token issuers enabled');
  }
  return {
    checker,
    issuer: new TokenIssuer(deps.tokenSecret, clock),
    verifier,
    revocations,
    maxLifetimeSeconds: settings.TOKEN_MAX_LIFETIME_SECONDS,
    clock,
    checkCidrs,
  };
}
