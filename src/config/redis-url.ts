import type { RedisOptions } from 'ioredis';

/**
 * REDIS_URL → how ioredis connects. Two shapes:
 * - `redis://` / `rediss://`: one server, handed to ioredis as is.
 * - `redis+sentinel://[user:password@]host:port[,host:port…]/master[?sentinel_password=…&db=N]`
 *   (also `rediss+sentinel://` for TLS to the master): ioredis asks the sentinels where the
 *   master is and asks again after every failover.
 */
export type RedisConnection =
  | { kind: 'single'; url: string; where: string }
  | { kind: 'sentinel'; options: RedisOptions; where: string; masterName: string };

const SENTINEL_SCHEMES = ['redis+sentinel:', 'rediss+sentinel:'];
/** Sentinel's own port when a sentinel address names none. */
export const DEFAULT_SENTINEL_PORT = 26_379;
/** Redis's port when a redis:// URL names none. */
export const DEFAULT_REDIS_PORT = 6_379;

export function isSentinelUrl(url: string): boolean {
  return SENTINEL_SCHEMES.some((scheme) => url.startsWith(`${scheme}//`));
}

/** Parses REDIS_URL; throws an Error whose message says what is wrong (used by settings validation too). */
export function parseRedisUrl(url: string): RedisConnection {
  if (url.startsWith('redis://') || url.startsWith('rediss://')) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error('is not a valid URL');
    }
    return { kind: 'single', url, where: `Redis at ${parsed.hostname}:${parsed.port || DEFAULT_REDIS_PORT}` };
  }
  if (!isSentinelUrl(url)) throw new Error('must be a redis://, rediss:// or redis+sentinel:// URL');
  const scheme = url.slice(0, url.indexOf('//'));
  const rest = url.slice(scheme.length + 2);
  // The host list has commas, which WHATWG URL parsing refuses, so split it by hand.
  const at = rest.lastIndexOf('@', rest.indexOf('/') === -1 ? rest.length : rest.indexOf('/'));
  const userinfo = at === -1 ? '' : rest.slice(0, at);
  const afterUser = at === -1 ? rest : rest.slice(at + 1);
  const slash = afterUser.indexOf('/');
  if (slash === -1) throw new Error('redis+sentinel:// needs the master name as its path: redis+sentinel://host:26379[,host:26379]/mymaster');
  const hostList = afterUser.slice(0, slash);
  const pathAndQuery = afterUser.slice(slash + 1);
  const q = pathAndQuery.indexOf('?');
  const masterName = decodeURIComponent(q === -1 ? pathAndQuery : pathAndQuery.slice(0, q));
  const query = new URLSearchParams(q === -1 ? '' : pathAndQuery.slice(q + 1));
  if (!/^[A-Za-z0-9._-]+$/.test(masterName)) throw new Error('redis+sentinel:// master name must be letters, digits, ".", "_" or "-"');

  const sentinels = hostList.split(',').map((entry) => parseHostPort(entry.trim()));
  if (sentinels.length === 0 || hostList.trim() === '') throw new Error('redis+sentinel:// needs at least one sentinel host:port');

  const options: RedisOptions = { sentinels, name: masterName };
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    const user = decodeURIComponent(colon === -1 ? '' : userinfo.slice(0, colon));
    const password = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(colon + 1));
    if (user) options.username = user;
    if (password) options.password = password;
  }
  const sentinelPassword = query.get('sentinel_password');
  if (sentinelPassword) options.sentinelPassword = sentinelPassword;
  const db = query.get('db');
  if (db !== null) {
    const n = Number(db);
    if (!Number.isInteger(n) || n < 0) throw new Error('redis+sentinel:// db must be a non-negative integer');
    options.db = n;
  }
  if (scheme === 'rediss+sentinel:') options.tls = {};
  const where = `Redis master "${masterName}" via sentinels ${sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
  return { kind: 'sentinel', options, where, masterName };
}

function parseHostPort(entry: string): { host: string; port: number } {
  if (entry === '') throw new Error('redis+sentinel:// has an empty sentinel address');
  let host: string;
  let portText: string | undefined;
  if (entry.startsWith('[')) {
    const end = entry.indexOf(']');
    if (end === -1) throw new Error(`redis+sentinel:// sentinel "${entry}": unclosed [`);
    host = entry.slice(1, end);
    portText = entry.slice(end + 1).startsWith(':') ? entry.slice(end + 2) : undefined;
  } else {
    const colon = entry.lastIndexOf(':');
    host = colon === -1 ? entry : entry.slice(0, colon);
    portText = colon === -1 ? undefined : entry.slice(colon + 1);
  }
  const port = portText === undefined ? DEFAULT_SENTINEL_PORT : Number(portText);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65_535) throw new Error(`redis+sentinel:// sentinel "${entry}" is not host:port`);
  return { host, port };
}
