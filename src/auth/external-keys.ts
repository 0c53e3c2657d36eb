import { readFile } from 'node:fs/promises';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from 'jose';
import type { Logger } from '../obs/logger.js';
import { SYSTEM_CLOCK, type Clock } from './clock.js';
import { errorCodeOf, isKeyFetchFailure } from './jose-errors.js';

/**
 * Keys of external issuers: TOKEN_PUBLIC_KEY_FILE (PEM SPKI / certificate, one JWK, or a JWK
 * set) and TOKEN_JWKS_URL (one jose remote key set, created at boot). Only asymmetric
 * algorithms are ever accepted with these keys; HS256 is only ever checked with TOKEN_SECRET.
 */

export const ASYMMETRIC_ALGORITHMS: readonly string[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];

export interface ExternalKeySource {
  /** The setting it came from, for logs. */
  readonly label: 'TOKEN_PUBLIC_KEY_FILE' | 'TOKEN_JWKS_URL';
  readonly algorithms: readonly string[];
  readonly key: KeyObject | JWTVerifyGetKey;
  /** Fetches a remote key set ahead of the first token (errors are logged, not thrown). */
  warm?(): Promise<void>;
}

/** Thrown by the remote key set while it is cooling down after a failed fetch. */
export class JwksUnavailableError extends Error {
  readonly code = 'ERR_JWKS_UNAVAILABLE';
  constructor(cause?: unknown) {
    super('the JWKS endpoint cannot be reached', cause === undefined ? undefined : { cause });
    this.name = 'JwksUnavailableError';
  }
}

function algorithmsFor(key: KeyObject, where: string): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1' || curve === 'P-256') return ['ES256'];
      if (curve === 'secp384r1' || curve === 'P-384') return ['ES384'];
      if (curve === 'secp521r1' || curve === 'P-521') return ['ES512'];
      throw new Error(`${where}: unsupported EC curve ${String(curve)}`);
    }
    case 'ed25519':
      return ['EdDSA', 'Ed25519'];
    case 'ed448':
      return ['EdDSA'];
    default:
      throw new Error(`${where}: unsupported key type ${String(key.asymmetricKeyType)} (use RSA, EC P-256/384/521 or Ed25519)`);
  }
}

function assertPublicJwk(jwk: JWK, where: string): void {
  if (jwk.kty === 'oct') throw new Error(`${where}: symmetric (oct) keys are not accepted; HS256 uses TOKEN_SECRET only`);
  if (jwk.d !== undefined || jwk.p !== undefined) throw new Error(`${where}: contains a private key; give the public key only`);
}

/** Parses the text of TOKEN_PUBLIC_KEY_FILE. Throws `TOKEN_PUBLIC_KEY_FILE: <problem>`. */
export function parsePublicKeyText(text: string, where = 'TOKEN_PUBLIC_KEY_FILE'): ExternalKeySource {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let doc: unknown;
    try {
      doc = JSON.parse(trimmed);
    } catch {
      throw new Error(`${where}: not valid JSON (expected a JWK or a JWK set)`);
    }
    const keys = (doc as { keys?: unknown }).keys;
    if (Array.isArray(keys)) {
      if (keys.length === 0) throw new Error(`${where}: the JWK set has no keys`);
      for (const k of keys) assertPublicJwk(k as JWK, where);
      return { label: 'TOKEN_PUBLIC_KEY_FILE', algorithms: ASYMMETRIC_ALGORITHMS, key: createLocalJWKSet(doc as JSONWebKeySet) };
    }
    const jwk = doc as JWK;
    assertPublicJwk(jwk, where);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch (err) {
      throw new Error(`${where}: not a usable public JWK (${(err as Error).message})`);
    }
    const algorithms = algorithmsFor(key, where);
    if (typeof jwk.alg === 'string') {
      if (!algorithms.includes(jwk.alg)) throw new Error(`${where}: alg ${jwk.alg} does not fit the key type`);
      return { label: 'TOKEN_PUBLIC_KEY_FILE', algorithms: [jwk.alg], key };
    }
    return { label: 'TOKEN_PUBLIC_KEY_FILE', algorithms, key };
  }
  if (trimmed.includes('PRIVATE KEY')) throw new Error(`${where}: contains a private key; give the public key only`);
  if (!trimmed.startsWith('-----BEGIN ')) throw new Error(`${where}: expected a PEM public key (-----BEGIN PUBLIC KEY-----) or a JWK`);
  let key: KeyObject;
  try {
    key = createPublicKey(trimmed);
  } catch (err) {
    throw new Error(`${where}: not a usable PEM public key (${(err as Error).message})`);
  }
  return { label: 'TOKEN_PUBLIC_KEY_FILE', algorithms: algorithmsFor(key, where), key };
}

export async function loadPublicKeyFile(path: string): Promise<ExternalKeySource> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`TOKEN_PUBLIC_KEY_FILE: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parsePublicKeyText(text);
}

export interface RemoteJwksOptions {
  logger: Logger;
  clock?: Clock;
  /** Per fetch (AbortSignal.timeout). */
  timeoutMs?: number;
  /** jose's cooldown before an unknown `kid` may trigger a refetch. */
  unknownKidCooldownMs?: number;
  /** How long a fetched set is used before it is refreshed. */
  maxAgeMs?: number;
  /** After a failed fetch, tokens fail fast (no fetch) for this long. */
  failureCooldownMs?: number;
}

export const JWKS_DEFAULTS = {
  timeoutMs: 3_000,
  unknownKidCooldownMs: 30_000,
  maxAgeMs: 10 * 60_000,
  failureCooldownMs: 5_000,
} as const;

/** For logs: scheme, host and path only (a query string might carry a credential). */
function safeUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

/**
 * TOKEN_JWKS_URL: one jose remote key set (single-flight fetch, timeout, unknown-kid cooldown).
 * A fetch that fails is logged at error level once per failure window; during the window
 * tokens are checked against the last fetched set if there is one, else rejected at once.
 */
export function remoteJwksSource(urlText: string, opts: RemoteJwksOptions): ExternalKeySource {
  const url = new URL(urlText);
  const clock = opts.clock ?? SYSTEM_CLOCK;
  const failureCooldownMs = opts.failureCooldownMs ?? JWKS_DEFAULTS.failureCooldownMs;
  const remote = createRemoteJWKSet(url, {
    timeoutDuration: opts.timeoutMs ?? JWKS_DEFAULTS.timeoutMs,
    cooldownDuration: opts.unknownKidCooldownMs ?? JWKS_DEFAULTS.unknownKidCooldownMs,
    cacheMaxAge: opts.maxAgeMs ?? JWKS_DEFAULTS.maxAgeMs,
  });
  const where = safeUrl(url);
  let failedUntil = 0;
  let lastGood: ReturnType<typeof createLocalJWKSet> | undefined;
  let lastGoodJwks: JSONWebKeySet | undefined;

  const fallback = (): ReturnType<typeof createLocalJWKSet> | undefined => {
    const jwks = remote.jwks();
    if (jwks !== undefined && jwks !== lastGoodJwks) {
      lastGoodJwks = jwks;
      lastGood = createLocalJWKSet(jwks);
    }
    return lastGood;
  };

  const onFetchFailure = (err: unknown) => {
    failedUntil = clock.now() + failureCooldownMs;
    opts.logger.error(
      { jwks_url: where, err_code: errorCodeOf(err), reason: (err as Error)?.message, retry_in_ms: failureCooldownMs },
      'TOKEN_JWKS_URL: cannot fetch the key set; external tokens are rejected (GW_AUTH_INVALID) until it answers',
    );
  };

  const getKey: JWTVerifyGetKey = async function jwksKey(header, token) {
    if (clock.now() < failedUntil) {
      const stale = fallback();
      if (stale) return stale(header, token);
      throw new JwksUnavailableError();
    }
    try {
      return await remote(header, token);
    } catch (err) {
      if (!isKeyFetchFailure(err)) throw err;
      onFetchFailure(err);
      const stale = fallback();
      if (stale) return stale(header, token);
      throw new JwksUnavailableError(err);
    }
  };

  return {
    label: 'TOKEN_JWKS_URL',
    algorithms: ASYMMETRIC_ALGORITHMS,
    key: getKey,
    async warm() {
      try {
        await remote.reload();
        opts.logger.info({ jwks_url: where, keys: remote.jwks()?.keys.length ?? 0 }, 'TOKEN_JWKS_URL: key set fetched');
      } catch (err) {
        onFetchFailure(err);
      }
    },
  };
}
