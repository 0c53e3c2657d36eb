import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startOpenAiUpstream, type OpenAiUpstream } from '../../support/openai-upstream.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';
import { chat, issueToken, metric } from './support.js';

function parseItems(value: string | null): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const item of (value ?? '').split(',')) {
    const [name, ...params] = item.trim().split(';');
    if (!name) continue;
    out[name.replace(/"/g, '')] = Object.fromEntries(params.map((p) => p.split('=') as [string, string]));
  }
  return out;
}

describe('rate limits', () => {
  let up: OpenAiUpstream;
  beforeAll(async () => {
    up = await startOpenAiUpstream();
  });
  afterAll(async () => {
    await up?.close();
  });

  describe('one instance', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startTestGateway();
    });
    afterAll(async () => {
      await gw?.stop();
    });

    it('refuses a token over its requests_per_minute with 429, Retry-After and the IETF RateLimit fields', async () => {
      await gw.admin('PUT', '/v1/endpoints/rl-token', { routes: [{ url: up.url }] });
      const limited = await issueToken(gw, 'rl-token', { rate_limit: { requests_per_minute: 3 } });
      const free = await issueToken(gw, 'rl-token');
      const statuses: number[] = [];
      let first: Headers | undefined;
      let refused: { status: number; headers: Headers; text: string } | undefined;
      for (let i = 0; i < 5; i++) {
        const r = await chat(gw.url, 'rl-token', { token: limited });
        statuses.push(r.status);
        first ??= r.headers;
        if (r.status === 429) refused ??= r;
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      expect(parseItems(first!.get('ratelimit-policy'))['token-requests']).toEqual({ q: '3', w: '60' });
      expect(parseItems(first!.get('ratelimit'))['token-requests'].r).toBe('2');
      expect(JSON.parse(refused!.text).error.code).toBe('GW_RATE_LIMITED');
      const retryAfter = Number(refused!.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(20);
      expect(parseItems(refused!.headers.get('ratelimit'))['token-requests'].r).toBe('0');
      // Another token of the same endpoint is not affected.
      expect((await chat(gw.url, 'rl-token', { token: free })).status).toBe(200);
      expect(await metric(gw, 'modelgate_traffic_rejected_total', { reason: 'rate_limited' })).toBeGreaterThanOrEqual(2);
    });

    it('limits all callers of an endpoint together with the endpoint rate_limit', async () => {
      await gw.admin('PUT', '/v1/endpoints/rl-endpoint', { public: true, routes: [{ url: up.url }], rate_limit: { requests_per_minute: 4 } });
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await fetch(`${gw.url}/e/rl-endpoint/`)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    });

    it('charges tokens_per_minute: reserves max_tokens on the way in, settles from the metered usage', async () => {
      await gw.admin('PUT', '/v1/endpoints/rl-tpm', { routes: [{ url: up.url }] });
      const token = await issueToken(gw, 'rl-tpm', { rate_limit: { tokens_per_minute: 100 } });
      // A reservation bigger than what is left is refused before the upstream sees it.
      const before = up.requests;
      const big = await chat(gw.url, 'rl-tpm', { token, maxTokens: 101 });
      expect(big.status).toBe(200); // capped at the limit: a request may always take the whole budget once
      // The usage it really cost (prompt + completion, at most 40 + 6) was charged instead of 101.
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await chat(gw.url, 'rl-tpm', { token, tokens: 6 })).status);
      expect(statuses).toContain(429);
      expect(statuses[0]).toBe(200);
      expect(up.requests - before).toBe(1 + statuses.filter((s) => s === 200).length);
    });
  });

  describe('two instances on one Redis', () => {
    let a: TestGateway;
    let b: TestGateway;
    beforeAll(async () => {
      const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `trl-${randomBytes(4).toString('hex')}:` };
      a = await startTestGateway(env);
      b = await startTestGateway(env);
    });
    afterAll(async () => {
      await a?.stop();
      await b?.stop();
    });

    it('holds a token limit across instances', async () => {
      await a.admin('PUT', '/v1/endpoints/rl-shared', { routes: [{ url: up.url }] });
      const token = await issueToken(a, 'rl-shared', { rate_limit: { requests_per_minute: 4 } });
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await chat(i % 2 === 0 ? a.url : b.url, 'rl-shared', { token })).status);
      expect(statuses.filter((s) => s === 200)).toHaveLength(4);
      expect(statuses.slice(4)).toEqual([429, 429, 429, 429]);
    });
  });

  describe('Redis down', () => {
    let redis: RedisServer;
    let gw: TestGateway;
    beforeAll(async () => {
      redis = await startRedis();
      gw = await startTestGateway({ REDIS_URL: redis.url, REDIS_PREFIX: `trd-${randomBytes(4).toString('hex')}:` });
    });
    afterAll(async () => {
      await gw?.stop();
      await redis?.stop();
    });

    it('falls back to per-instance limits (never refusing because the store is away) and says so in a metric', async () => {
      await gw.admin('PUT', '/v1/endpoints/rl-down', { public: true, routes: [{ url: up.url }], rate_limit: { requests_per_minute: 3 }, limits: { max_in_flight_per_route: 2 } });
      expect((await fetch(`${gw.url}/e/rl-down/`)).status).toBe(200);
      await redis.kill();
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await fetch(`${gw.url}/e/rl-down/`)).status);
      // 1 request already counted in Redis is forgotten locally: 3 more pass, then the local limit holds.
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      expect(await metric(gw, 'modelgate_traffic_local_fallback', { limiter: 'rate' })).toBe(1);
      expect(await metric(gw, 'modelgate_traffic_local_fallback', { limiter: 'slots' })).toBe(1);
    });
  });
});
