import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { checkResponse, checkSchema } from '../../support/openapi-check.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';

describe('OpenAPI document vs live admin responses', () => {
  let gw: TestGateway;
  let up: TestUpstream;
  let doc: any;
  const problems: string[] = [];

  /** Calls the admin API and checks the answer against the document. */
  async function call(method: string, path: string, template: string, body?: unknown, expectStatus?: number) {
    const res = await gw.admin(method, path, body);
    if (expectStatus !== undefined) expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBe(expectStatus);
    problems.push(...checkResponse(doc, template, method, res.status, res.body));
    // Request bodies must be valid per the document too (so the document describes what works).
    const op = doc.paths[template][method.toLowerCase()];
    const reqSchema = op.requestBody?.content?.['application/json']?.schema;
    if (reqSchema && body !== undefined && res.status < 400) problems.push(...checkSchema(doc, reqSchema, body, `request ${method} ${template}`));
    return res;
  }

  beforeAll(async () => {
    gw = await startTestGateway({ CONTROLLER_ENABLED: 'true', CONTROLLER_WORK_DIR: '' });
    up = await startUpstream();
    const res = await fetch(`${gw.adminUrl}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    doc = await res.json();
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('is an OpenAPI 3.1 document with every admin route and resolvable references', () => {
    expect(doc.openapi).toBe('3.1.0');
    for (const p of [
      '/v1/endpoints',
      '/v1/endpoints/{name}',
      '/v1/endpoints/{name}/routes',
      '/v1/endpoints/{name}/routes/{route_id}',
      '/v1/endpoints/{name}/tokens',
      '/v1/endpoints/{name}/tokens/{jti}',
      '/v1/endpoints/{name}/stats',
      '/v1/services',
      '/v1/services/{name}',
      '/v1/services/validate',
      '/v1/services/{name}/errors/clear',
      '/v1/services/{name}/events',
    ]) {
      expect(doc.paths[p], p).toBeDefined();
    }
    const refs = JSON.stringify(doc).match(/"\$ref":"#\/components\/schemas\/[A-Za-z]+"/g) ?? [];
    for (const r of refs) expect(doc.components.schemas[r.split('/').pop()!.replace('"', '')], r).toBeDefined();
  });

  it('every admin route answers as the document says', async () => {
    await call('PUT', '/v1/endpoints/doc', '/v1/endpoints/{name}', { public: false, routes: [{ id: 'r1', url: up.url, weight: 2 }] }, 201);
    await call('PUT', '/v1/endpoints/doc', '/v1/endpoints/{name}', { routes: [{ id: 'r1', url: up.url }], timeouts: { first_byte_ms: 1000 } }, 200);
    await call('PATCH', '/v1/endpoints/doc', '/v1/endpoints/{name}', { public: true }, 200);
    await call('GET', '/v1/endpoints', '/v1/endpoints', undefined, 200);
    await call('GET', '/v1/endpoints/doc', '/v1/endpoints/{name}', undefined, 200);
    await call('GET', '/v1/endpoints/none', '/v1/endpoints/{name}', undefined, 404);
    await call('PUT', '/v1/endpoints/Bad_Name', '/v1/endpoints/{name}', {}, 400);
    await call('PUT', '/v1/endpoints/doc/routes', '/v1/endpoints/{name}/routes', { routes: [{ id: 'r2', url: up.url }], expected_version: 3 }, 200);
    await call('PUT', '/v1/endpoints/doc/routes', '/v1/endpoints/{name}/routes', { routes: [], expected_version: 1 }, 409);
    await call('PATCH', '/v1/endpoints/doc/routes/r2', '/v1/endpoints/{name}/routes/{route_id}', { weight: 5, status: 'unhealthy' }, 200);
    const issued = await call('POST', '/v1/endpoints/doc/tokens', '/v1/endpoints/{name}/tokens', { ttl_seconds: 3600, sub: 'docs' }, 201);
    await call('POST', '/v1/endpoints/doc/tokens', '/v1/endpoints/{name}/tokens', { duration: '7d' }, 201);
    await call('GET', '/v1/endpoints/doc/tokens', '/v1/endpoints/{name}/tokens', undefined, 200);
    await call('GET', '/v1/endpoints/doc/stats', '/v1/endpoints/{name}/stats', undefined, 200);
    await call('GET', '/v1/endpoints/none/stats', '/v1/endpoints/{name}/stats', undefined, 404);
    await call('DELETE', `/v1/endpoints/doc/tokens/${issued.body.jti}`, '/v1/endpoints/{name}/tokens/{jti}', undefined, 204);
    await call('DELETE', '/v1/endpoints/doc/tokens/nope', '/v1/endpoints/{name}/tokens/{jti}', undefined, 404);
    await call('GET', '/v1/services', '/v1/services', undefined, 200);
    await call('GET', '/v1/services/none', '/v1/services/{name}', undefined, 404);
    await call('POST', '/v1/services', '/v1/services', { name: 'svc', replicas: 0 }, 400);
    await call('DELETE', '/v1/endpoints/doc', '/v1/endpoints/{name}', undefined, 204);

    const unauthorized = await fetch(`${gw.adminUrl}/v1/endpoints`);
    problems.push(...checkResponse(doc, '/v1/endpoints', 'GET', unauthorized.status, await unauthorized.json()));
    const health = await fetch(`${gw.adminUrl}/healthz`);
    problems.push(...checkResponse(doc, '/healthz', 'GET', health.status, await health.json()));

    expect(problems).toEqual([]);
  });

  it('the checker itself catches a mismatch (so a pass means something)', () => {
    expect(checkResponse(doc, '/v1/endpoints/{name}', 'GET', 200, { name: 1 }).length).toBeGreaterThan(1);
    expect(checkResponse(doc, '/v1/endpoints/{name}', 'GET', 418, {})).toHaveLength(1);
    expect(checkResponse(doc, '/v1/endpoints', 'GET', 401, { error: { code: 'NOPE', message: '', request_id: 'x' } })).toHaveLength(1);
  });
});
