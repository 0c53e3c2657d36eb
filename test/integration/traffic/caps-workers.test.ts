import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnGateway, type SpawnedGateway } from '../../support/gateway.js';
import { startOpenAiUpstream, type OpenAiUpstream } from '../../support/openai-upstream.js';
import { eventually } from '../../support/eventually.js';
import { issueToken } from './support.js';

/** A chat completion on a fresh connection, so cluster spreads the requests over both workers. */
async function post(url: string, token?: string): Promise<number> {
  const { request } = await import('node:http');
  const u = new URL(`${url}/e/wcap/v1/chat/completions`);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent: false, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      },
    );
    req.on('error', reject);
    req.end('{"model":"m"}');
  });
}

describe('WORKERS=2 on the embedded store: caps and limits are counted once, by the primary', () => {
  let gw: SpawnedGateway;
  let up: OpenAiUpstream;

  beforeAll(async () => {
    up = await startOpenAiUpstream();
    gw = await spawnGateway({ WORKERS: '2' });
  }, 60_000);
  afterAll(async () => {
    up.holding = false;
    up.release();
    await gw?.stop('SIGKILL');
    await up?.close();
  });

  it('keeps the replica at the cap while both workers take requests', async () => {
    expect((await gw.admin('PUT', '/v1/endpoints/wcap', { public: true, routes: [{ url: up.url }], limits: { max_in_flight_per_route: 2 } })).status).toBe(201);
    up.holding = true;
    const all = Array.from({ length: 10 }, () => post(gw.url));
    await eventually(() => up.inFlight === 2, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(up.inFlight).toBe(2);
    up.holding = false;
    up.release();
    expect(await Promise.all(all)).toEqual(Array(10).fill(200));
    expect(up.maxInFlight).toBe(2);
  }, 30_000);

  it('holds a token rate limit across workers', async () => {
    await gw.admin('PUT', '/v1/endpoints/wcap', { routes: [{ url: up.url }] });
    const token = await issueToken({ admin: gw.admin } as never, 'wcap', { rate_limit: { requests_per_minute: 4 } });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push(await post(gw.url, token));
    expect(statuses.filter((s) => s === 200)).toHaveLength(4);
    expect(statuses.filter((s) => s === 429)).toHaveLength(4);
  }, 30_000);
});
