import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall, spawnGateway, type SpawnedGateway } from '../support/gateway.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { eventually } from '../support/eventually.js';

/**
 * The README's flows as a user runs them: a gateway started like `npm start` (generated admin
 * token in DATA_DIR), an endpoint in front of local servers called by host name and by path,
 * weighted routes, a private endpoint with a token, and a model service from the example folder.
 */
function curl(port: number, host: string, path = '/', opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<{ status: number; headers: Record<string, any>; body: string }>((resolvePromise, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: { host, ...opts.headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolvePromise({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('README walk-through', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mg-readme-'));
  // Replica folders under the test's own temp dir (the default keeps them in /tmp for a restart).
  const workDir = mkdtempSync(join(tmpdir(), 'mg-readme-work-'));
  let gw: SpawnedGateway;
  let v1: TestUpstream;
  let v2: TestUpstream;
  let host: (name: string) => string;
  const admin = (method: string, path: string, body?: unknown) =>
    adminCall(gw.adminUrl, readFileSync(join(dataDir, 'admin-token'), 'utf8').trim(), method, path, body);

  beforeAll(async () => {
    gw = await spawnGateway({ DATA_DIR: dataDir, ADMIN_TOKEN: '', TOKEN_SECRET: '', CONTROLLER_ENABLED: 'true', CONTROLLER_WORK_DIR: workDir });
    host = (name) => `${name}.localhost:${gw.port}`;
    v1 = await startUpstream((_req, res) => res.end('hello from v1\n'));
    v2 = await startUpstream((_req, res) => res.end('hello from v2\n'));
  }, 60_000);
  afterAll(async () => {
    await gw?.stop();
    await v1?.close();
    await v2?.close();
    for (const dir of [dataDir, workDir]) rmSync(dir, { recursive: true, force: true });
  });

  it('creates a public endpoint and calls it by host name and by path', async () => {
    const put = await admin('PUT', '/v1/endpoints/hello', { public: true, routes: [{ id: 'v1', url: v1.url }] });
    expect(put.status).toBe(201);
    expect(put.body.url).toBe(`http://hello.localhost:${gw.port}/`);
    expect((await curl(gw.port, host('hello'))).body).toBe('hello from v1\n');
    expect((await curl(gw.port, `localhost:${gw.port}`, '/e/hello/')).body).toBe('hello from v1\n');
  });

  it('changes routes with weights, then drains v1 with weight 0', async () => {
    await admin('PUT', '/v1/endpoints/hello/routes', { routes: [{ id: 'v1', url: v1.url, weight: 1 }, { id: 'v2', url: v2.url, weight: 3 }] });
    const seen = new Set<string>();
    await eventually(async () => {
      seen.add((await curl(gw.port, host('hello'))).body);
      return seen.size === 2;
    });
    await admin('PATCH', '/v1/endpoints/hello/routes/v1', { weight: 0 });
    await eventually(async () => {
      for (let i = 0; i < 5; i++) if ((await curl(gw.port, host('hello'))).body !== 'hello from v2\n') return false;
      return true;
    });
  });

  it('answers errors as JSON with a code and echoes X-Request-Id', async () => {
    const res = await curl(gw.port, host('nothing-here'));
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body).error.code).toBe('GW_ENDPOINT_NOT_FOUND');
    expect(res.headers['x-request-id']).toBeTruthy();
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/modelgate_requests_total\{endpoint="hello",status_class="2xx"\} \d+/);
  });

  it('calls a private endpoint with a BackendAI token, as the seed guide shows', async () => {
    await admin('PATCH', '/v1/endpoints/hello', { public: false });
    await eventually(async () => (await curl(gw.port, host('hello'))).status === 401);
    const failures = async () => {
      const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      return Number(/modelgate_auth_failures_total\{code="GW_AUTH_MISSING"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await failures();
    const missing = await curl(gw.port, host('hello'));
    expect(JSON.parse(missing.body).error.code).toBe('GW_AUTH_MISSING');
    expect(await failures()).toBe(before + 1); // counted once, by the checker
    expect(missing.headers['www-authenticate']).toBe('BackendAI realm="hello"');
    const issued = await admin('POST', '/v1/endpoints/hello/tokens', { duration: '1h' });
    expect(issued.status).toBe(201);
    const ok = await curl(gw.port, host('hello'), '/', { headers: { 'content-type': 'application/json', authorization: `BackendAI ${issued.body.token}` } });
    expect(ok.status).toBe(200);
    const bearer = await curl(gw.port, host('hello'), '/', { headers: { authorization: `Bearer ${issued.body.token}` } });
    expect(bearer.status).toBe(200);
  });

  it('serves a model in three commands', { timeout: 60_000 }, async () => {
    const created = await admin('POST', '/v1/services', { name: 'chat', model_folder: resolve('config/examples/sse-chat'), replicas: 2, public: true });
    expect(created.status).toBe(201);
    await eventually(async () => (await admin('GET', '/v1/services/chat')).body.status === 'HEALTHY', { timeoutMs: 30_000, stepMs: 200 });
    const view = (await admin('GET', '/v1/services/chat')).body;
    expect(view.routes).toHaveLength(2);
    const res = await curl(gw.port, host('chat'), '/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('text/event-stream');
    expect(res.body).toContain('data: ');
    expect(res.body).toContain('[DONE]');
  });
});
