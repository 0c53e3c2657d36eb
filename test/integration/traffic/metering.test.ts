import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startOpenAiUpstream, type OpenAiUpstream } from '../../support/openai-upstream.js';
import { eventually } from '../../support/eventually.js';
import { chat, issueToken, metric } from './support.js';

function events(text: string): string[] {
  return text
    .split('\n\n')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
}

/** Reads a few bytes of a streamed response, then drops the connection. */
function disconnectMidStream(url: string, token: string): Promise<void> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-test-delay-ms': '20', 'x-test-tokens': '20' } },
      (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      },
    );
    req.on('error', () => resolve());
    req.end(JSON.stringify({ model: 'm', stream: true, stream_options: { include_usage: true } }));
  });
}

for (const storeKind of ['memory', 'redis'] as const) {
  describe(`LLM usage metering (${storeKind} store)`, () => {
    let gw: TestGateway;
    let up: OpenAiUpstream;
    let attempts = 0;

    beforeAll(async () => {
      gw = await startTestGateway(storeKind === 'redis' ? { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `tmeter-${randomBytes(4).toString('hex')}:` } : {});
      up = await startOpenAiUpstream();
    });
    afterAll(async () => {
      await gw?.stop();
      await up?.close();
    });

    it('meters exactly what the upstream reported over 1,000 mixed requests (JSON, SSE with and without usage, malformed, disconnects)', async () => {
      // Its own endpoint and baseline per attempt: vitest retries integration tests once, on the same gateway.
      const ep = `meter-${++attempts}`;
      const reported = { ...up.reported };
      await gw.admin('PUT', `/v1/endpoints/${ep}`, { routes: [{ url: up.url }, { url: up.url.replace('127.0.0.1', 'localhost') }] });
      const alice = await issueToken(gw, ep, { sub: 'alice' });
      const bob = await issueToken(gw, ep, { sub: 'bob' });
      const bob2 = await issueToken(gw, ep, { sub: 'bob' });
      const tokens = [alice, bob, bob2];
      let disconnects = 0;
      const run = async (i: number) => {
        const token = tokens[i % 3];
        switch (i % 10) {
          case 0:
          case 1:
          case 2:
            return chat(gw.url, ep, { token });
          case 3:
          case 4:
            return chat(gw.url, ep, { token, stream: true, includeUsage: true });
          case 5:
            return chat(gw.url, ep, { token, stream: true });
          case 6:
            return chat(gw.url, ep, { token, stream: true, extraHeaders: { 'x-test-usage-in-last': '1' } });
          case 7:
            return chat(gw.url, ep, { token, usage: ['absent', 'null', 'malformed', 'strings'][(i / 10) % 4 | 0] });
          case 8:
            return chat(gw.url, ep, { token, stream: true, includeUsage: true, usage: ['absent', 'null', 'malformed'][(i / 10) % 3 | 0] });
          default:
            // Events 3 ms apart: a generation long enough to give a tokens-per-second figure.
            if (i % 100 === 19) return chat(gw.url, ep, { token, stream: true, includeUsage: true, tokens: 4, extraHeaders: { 'x-test-delay-ms': '3' } });
            if (i % 50 === 9) {
              disconnects++;
              await disconnectMidStream(`${gw.url}/e/${ep}/v1/chat/completions`, token);
              return { status: 200, text: '', headers: new Headers() };
            }
            return chat(gw.url, ep, { token, stream: true, includeUsage: true });
        }
      };
      const N = 1000;
      const results: { status: number; text: string }[] = [];
      for (let start = 0; start < N; start += 25) {
        results.push(...(await Promise.all(Array.from({ length: Math.min(25, N - start) }, (_, k) => run(start + k)))));
      }
      expect(results.filter((r) => r.status !== 200)).toEqual([]);
      // Malformed or absent usage never broke the response: bodies arrive whole, as the upstream sent them.
      for (const [i, r] of results.entries()) {
        if (i % 10 < 3) expect(() => JSON.parse(r.text)).not.toThrow();
        if (i % 10 === 7) expect(r.text.startsWith('{"id":"c1","object":"chat.completion"') && r.text.endsWith('}')).toBe(true);
        if (i % 10 === 8) expect(events(r.text).at(-1)).toBe('data: [DONE]');
      }
      await eventually(() => up.inFlight === 0);
      const expectedRequests = up.reported.requests - reported.requests;
      const prompt = up.reported.prompt - reported.prompt;
      const completion = up.reported.completion - reported.completion;
      const usage = await eventually(async () => {
        const res = await gw.admin('GET', `/v1/endpoints/${ep}/usage`);
        return res.body.requests === expectedRequests ? res.body : null;
      }, 10_000);
      expect(usage.prompt_tokens).toBe(prompt);
      expect(usage.completion_tokens).toBe(completion);
      expect(disconnects).toBeGreaterThan(0);

      const bySub = (await gw.admin('GET', `/v1/endpoints/${ep}/usage?group_by=sub`)).body;
      const subs = Object.fromEntries(bySub.groups.map((g: any) => [g.sub, g]));
      expect(Object.keys(subs).sort()).toEqual(['alice', 'bob']);
      expect(subs.alice.prompt_tokens + subs.bob.prompt_tokens).toBe(prompt);
      expect(subs.alice.requests + subs.bob.requests).toBe(expectedRequests);
      const byToken = (await gw.admin('GET', `/v1/endpoints/${ep}/usage?group_by=token`)).body;
      expect(byToken.groups).toHaveLength(3);
      expect(byToken.groups.reduce((s: number, g: any) => s + g.completion_tokens, 0)).toBe(completion);
      expect(byToken.groups.map((g: any) => g.sub).sort()).toEqual(['alice', 'bob', 'bob']);
      const bobTokens = byToken.groups.filter((g: any) => g.sub === 'bob');
      expect(bobTokens[0].requests + bobTokens[1].requests).toBe(subs.bob.requests);

      expect(await metric(gw, 'modelgate_llm_tokens_total', { endpoint: ep, kind: 'prompt' })).toBe(prompt);
      expect(await metric(gw, 'modelgate_llm_tokens_total', { endpoint: ep, kind: 'completion' })).toBe(completion);
      expect(await metric(gw, 'modelgate_llm_time_to_first_token_seconds_count', { endpoint: ep })).toBeGreaterThan(0);
      // At least the ten delayed generations; the rest arrive within a millisecond and give no rate.
      expect(await metric(gw, 'modelgate_llm_output_tokens_per_second_count', { endpoint: ep })).toBeGreaterThanOrEqual(10);

      // A time range before any of it: nothing.
      const empty = (await gw.admin('GET', `/v1/endpoints/${ep}/usage?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z`)).body;
      expect(empty).toMatchObject({ prompt_tokens: 0, completion_tokens: 0, requests: 0 });
    }, 120_000);

    it('asks for the usage chunk with usage.request_in_stream and hides it from clients that did not ask', async () => {
      await gw.admin('PUT', '/v1/endpoints/instream', { routes: [{ url: up.url }], usage: { request_in_stream: true } });
      const token = await issueToken(gw, 'instream', { sub: 'carol' });
      up.bodies.length = 0;
      const before = { ...up.reported };
      const plain = await chat(gw.url, 'instream', { token, stream: true, tokens: 4 });
      expect(plain.status).toBe(200);
      expect((up.bodies[0] as any).stream_options).toEqual({ include_usage: true });
      const evs = events(plain.text);
      expect(evs).toHaveLength(5); // 4 content chunks + [DONE], no usage-only chunk
      expect(evs.at(-1)).toBe('data: [DONE]');
      expect(evs.some((e) => e.includes('"choices":[]'))).toBe(false);

      // A client that asked for usage still gets its chunk.
      const asked = await chat(gw.url, 'instream', { token, stream: true, includeUsage: true, tokens: 2 });
      expect(events(asked.text).some((e) => e.includes('"choices":[]') && e.includes('"usage":{'))).toBe(true);

      const usage = await eventually(async () => {
        const res = await gw.admin('GET', '/v1/endpoints/instream/usage');
        return res.body.requests === 2 ? res.body : null;
      });
      expect(usage.completion_tokens).toBe(6);
      expect(usage.prompt_tokens).toBe(up.reported.prompt - before.prompt);

      // A non-streamed request is forwarded unchanged.
      up.bodies.length = 0;
      await chat(gw.url, 'instream', { token });
      expect((up.bodies[0] as any).stream_options).toBeUndefined();
    });

    it('refuses bad usage queries with ADM_INVALID naming the field, and unknown endpoints with 404', async () => {
      const bad = await gw.admin('GET', '/v1/endpoints/meter/usage?group_by=model');
      expect(bad.status).toBe(400);
      expect(bad.body.error.details[0].field).toBe('group_by');
      const badTime = await gw.admin('GET', '/v1/endpoints/meter/usage?from=yesterday');
      expect(badTime.status).toBe(400);
      expect(badTime.body.error.details[0].field).toBe('from');
      expect((await gw.admin('GET', '/v1/endpoints/nowhere/usage')).status).toBe(404);
    });
  });
}
