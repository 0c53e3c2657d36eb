import { describe, expect, it } from 'vitest';
import { DEFAULT_REDIS_PORT, DEFAULT_SENTINEL_PORT, isSentinelUrl, parseRedisUrl } from '../../../src/config/redis-url.js';
import { loadSettings } from '../../../src/config/settings.js';

describe('REDIS_URL parsing', () => {
  it('passes a plain redis:// URL through and names its address', () => {
    expect(parseRedisUrl('redis://10.0.0.5:6380/2')).toEqual({ kind: 'single', url: 'redis://10.0.0.5:6380/2', where: 'Redis at 10.0.0.5:6380' });
    expect(parseRedisUrl('rediss://cache.internal').where).toBe(`Redis at cache.internal:${DEFAULT_REDIS_PORT}`);
  });

  it('reads sentinels, master name, credentials, db and TLS from redis+sentinel://', () => {
    const parsed = parseRedisUrl('redis+sentinel://app:s%40cret@h1:26400,h2,[::1]:26380/mymaster?db=3&sentinel_password=sp');
    expect(parsed.kind).toBe('sentinel');
    if (parsed.kind !== 'sentinel') return;
    expect(parsed.masterName).toBe('mymaster');
    expect(parsed.options.sentinels).toEqual([
      { host: 'h1', port: 26400 },
      { host: 'h2', port: DEFAULT_SENTINEL_PORT },
      { host: '::1', port: 26380 },
    ]);
    expect(parsed.options).toMatchObject({ name: 'mymaster', username: 'app', password: 's@cret', db: 3, sentinelPassword: 'sp' });
    expect(parsed.options.tls).toBeUndefined();
    expect(parseRedisUrl('rediss+sentinel://h1:26400/m').kind === 'sentinel' && (parseRedisUrl('rediss+sentinel://h1:26400/m') as { options: { tls?: object } }).options.tls).toEqual({});
    expect(isSentinelUrl('redis+sentinel://h:1/m')).toBe(true);
    expect(isSentinelUrl('redis://h:1')).toBe(false);
  });

  it.each([
    ['http://h:6380', 'redis://, rediss:// or redis+sentinel://'],
    ['redis+sentinel://h1:26400', 'master name'],
    ['redis+sentinel://h1:26400/', 'master name'],
    ['redis+sentinel://h1:notaport/m', 'is not host:port'],
    ['redis+sentinel://h1:26400,,h2/m', 'empty sentinel'],
    ['redis+sentinel://h1/m?db=x', 'db must be'],
  ])('refuses %s clearly', (url, message) => {
    expect(() => parseRedisUrl(url)).toThrow(message);
  });

  it('a bad REDIS_URL stops start-up with one line naming the setting', () => {
    expect(() => loadSettings({ env: { REDIS_URL: 'redis+sentinel://h1:26400', TOKEN_SECRET: 'x'.repeat(32) } })).toThrow(
      /REDIS_URL: redis\+sentinel:\/\/ needs the master name/,
    );
    expect(loadSettings({ env: { REDIS_URL: 'redis+sentinel://h1,h2/mymaster', TOKEN_SECRET: 'x'.repeat(32) } }).REDIS_URL).toBe(
      'redis+sentinel://h1,h2/mymaster',
    );
  });
});
