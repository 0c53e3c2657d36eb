import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAdminApp } from '../../../src/admin/app.js';
import type { AdminApp } from '../../../src/admin/mount.js';
import { endpointsRoutes } from '../../../src/admin/endpoints-routes.js';
import { tokensRoutes } from '../../../src/admin/tokens-routes.js';
import { createAuth, type Auth } from '../../../src/auth/create-auth.js';
import { GatewayError } from '../../../src/errors/gateway-error.js';
import { silentLogger } from '../../../src/obs/logger.js';
import { Metrics } from '../../../src/obs/metrics.js';
import { loadSettings } from '../../../src/config/settings.js';
import type { RouteTable } from '../../../src/schema/route-table.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { eventually } from '../../support/eventually.js';

const ADMIN = 'admin-token-for-tests-0123456789';
const SECRET = 'token-secret-for-tests-0123456789abcdef';

let store: MemoryStore;
let auth: Auth;
let app: AdminApp;

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function tableOf(name: string): Promise<RouteTable> {
  return JSON.parse((await store.getEndpointRaw(name))!) as RouteTable;
}

async function gate(table: RouteTable, token: string): Promise<string> {
  try {
    await auth.checker.check(table, { authorization: `BackendAI ${token}`, remoteAddress: '127.0.0.1', xForwardedFor: undefined, isPreflight: false });
    return 'ok';
  } catch (err) {
    return (err as GatewayError).code;
  }
}

beforeEach(async () => {
  store = await MemoryStore.open({ dataDir: null, logger: silentLogger() });
  const settings = loadSettings({ env: { TOKEN_MAX_LIFETIME_SECONDS: String(30 * 86_400) } });
  auth = await createAuth({ settings, tokenSecret: SECRET, store, logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }) });
  await auth.checker.start();
  app = createAdminApp({ adminToken: ADMIN, bodyLimitBytes: 1 << 20, logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }) }, [
    endpointsRoutes({ store, endpointUrl: (n) => `http://${n}.localhost:8080/`, checkCidrs: auth.checkCidrs }),
    tokensRoutes({ store, issuer: auth.issuer, maxLifetimeSeconds: auth.maxLifetimeSeconds, revocations: auth.revocations }),
  ]);
  expect((await call('PUT', '/v1/endpoints/llm', {})).status).toBe(201);
});

afterEach(async () => {
  auth.checker.stop();
  await store.close();
});

describe('POST /v1/endpoints/{name}/tokens', () => {
  it('issues a token once: 201 {token, jti, expires_at, sub}; the gateway accepts it', async () => {
    const before = Date.now();
    const res = await call('POST', '/v1/endpoints/llm/tokens', { duration: '1h', sub: 'ci-bot' });
    expect(res.status).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(['expires_at', 'jti', 'sub', 'token']);
    expect(res.body.sub).toBe('ci-bot');
    const exp = Date.parse(res.body.expires_at);
    expect(exp).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 3600_000);
    expect(exp).toBeLessThanOrEqual(before + 3600_000 + 1000);
    expect(await gate(await tableOf('llm'), res.body.token)).toBe('ok');
  });

  it('accepts each expiry form and an empty body (default 30 days, capped by the max)', async () => {
    for (const body of [{ expires_at: new Date(Date.now() + 86_400_000).toISOString() }, { ttl_seconds: 600 }, { duration: 90 }, { duration: '7d' }, { valid_until: Math.floor(Date.now() / 1000) + 100 }, {}]) {
      const res = await call('POST', '/v1/endpoints/llm/tokens', body);
      expect(res.status, JSON.stringify(body)).toBe(201);
      expect(res.body.sub).toBe('anonymous');
    }
    const res = await call('POST', '/v1/endpoints/llm/tokens');
    expect(res.status).toBe(201);
  });

  it.each([
    [{ duration: '1h', ttl_seconds: 5 }, 'duration'],
    [{ expires_at: '2001-01-01T00:00:00Z' }, 'expires_at'],
    [{ valid_until: 10 }, 'valid_until'],
    [{ duration: '1y' }, 'duration'],
    [{ ttl_seconds: 1.5 }, 'ttl_seconds'],
    [{ duration: 'soon' }, 'duration'],
    [{ sub: '' }, 'sub'],
    [{ sub: 'a"b' }, 'sub'],
    [{ scope: 'all' }, 'body'],
  ])('refuses %j with ADM_INVALID naming %s', async (body, field) => {
    const res = await call('POST', '/v1/endpoints/llm/tokens', body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('ADM_INVALID');
    expect(res.body.error.details.map((d: { field: string }) => d.field)).toContain(field);
  });

  it('refuses a body that is not JSON', async () => {
    const res = await call('POST', '/v1/endpoints/llm/tokens', '{nope');
    expect(res.body.error.code).toBe('ADM_INVALID');
  });

  it('unknown endpoint → ADM_NOT_FOUND; bad name → ADM_INVALID', async () => {
    expect((await call('POST', '/v1/endpoints/nope/tokens', {})).body.error.code).toBe('ADM_NOT_FOUND');
    expect((await call('POST', '/v1/endpoints/Bad_Name/tokens', {})).body.error.code).toBe('ADM_INVALID');
  });

  it('needs the admin token', async () => {
    const res = await app.request('/v1/endpoints/llm/tokens', { method: 'POST', body: '{}' });
    expect(res.status).toBe(401);
  });
});

describe('GET /v1/endpoints/{name}/tokens', () => {
  it('lists metadata only, never the token strings', async () => {
    const a = await call('POST', '/v1/endpoints/llm/tokens', { sub: 'a', duration: '1h' });
    await call('POST', '/v1/endpoints/llm/tokens', { sub: 'b', duration: '2h' });
    await call('PUT', '/v1/endpoints/other', {});
    await call('POST', '/v1/endpoints/other/tokens', { sub: 'c' });
    const res = await call('GET', '/v1/endpoints/llm/tokens');
    expect(res.status).toBe(200);
    expect(res.body.tokens).toHaveLength(2);
    expect(res.body.tokens.map((t: { sub: string }) => t.sub).sort()).toEqual(['a', 'b']);
    for (const t of res.body.tokens) expect(Object.keys(t).sort()).toEqual(['created_at', 'expires_at', 'jti', 'revoked', 'sub']);
    expect(JSON.stringify(res.body)).not.toContain(a.body.token);
    expect((await call('GET', '/v1/endpoints/nope/tokens')).body.error.code).toBe('ADM_NOT_FOUND');
  });
});

describe('DELETE /v1/endpoints/{name}/tokens/{jti}', () => {
  it('revokes: 204, the cached token stops at once, the list marks it', async () => {
    const issued = (await call('POST', '/v1/endpoints/llm/tokens', { duration: '1h' })).body;
    const table = await tableOf('llm');
    expect(await gate(table, issued.token)).toBe('ok');
    const res = await app.request(`/v1/endpoints/llm/tokens/${issued.jti}`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(res.status).toBe(204);
    expect(await gate(table, issued.token)).toBe('GW_AUTH_REVOKED');
    const list = (await call('GET', '/v1/endpoints/llm/tokens')).body.tokens;
    expect(list.find((t: { jti: string }) => t.jti === issued.jti).revoked).toBe(true);
    expect(await store.listRevoked()).toEqual([expect.objectContaining({ jti: issued.jti })]);
  });

  it('a revocation reaches another checker through store events, and a fresh one through resync', async () => {
    const issued = (await call('POST', '/v1/endpoints/llm/tokens', { duration: '1h' })).body;
    const table = await tableOf('llm');
    const settings = loadSettings({ env: {} });
    const peer = await createAuth({ settings, tokenSecret: SECRET, store, logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }) });
    await peer.checker.start();
    const peerGate = async () => {
      try {
        await peer.checker.check(table, { authorization: `Bearer ${issued.token}`, remoteAddress: '::1', xForwardedFor: undefined, isPreflight: false });
        return 'ok';
      } catch (err) {
        return (err as GatewayError).code;
      }
    };
    expect(await peerGate()).toBe('ok');
    await call('DELETE', `/v1/endpoints/llm/tokens/${issued.jti}`);
    // The peer learns of the revocation from the store's event.
    await eventually(async () => (await peerGate()) === 'GW_AUTH_REVOKED', { stepMs: 10 });
    peer.checker.stop();

    const late = await createAuth({ settings, tokenSecret: SECRET, store, logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }) });
    await late.checker.start();
    expect(late.revocations.has(issued.jti)).toBe(true);
    late.checker.stop();
  });

  it('404 for an unknown jti or a jti of another endpoint; ADM_INVALID for a malformed one', async () => {
    await call('PUT', '/v1/endpoints/other', {});
    const other = (await call('POST', '/v1/endpoints/other/tokens', {})).body;
    expect((await call('DELETE', '/v1/endpoints/llm/tokens/00000000-0000-4000-8000-000000000000')).body.error.code).toBe('ADM_NOT_FOUND');
    expect((await call('DELETE', `/v1/endpoints/llm/tokens/${other.jti}`)).body.error.code).toBe('ADM_NOT_FOUND');
    expect((await call('DELETE', '/v1/endpoints/llm/tokens/a%20b')).body.error.code).toBe('ADM_INVALID');
    expect((await call('DELETE', `/v1/endpoints/nope/tokens/${other.jti}`)).body.error.code).toBe('ADM_NOT_FOUND');
  });
});

describe('endpoint deletion', () => {
  it('a token of a deleted and recreated endpoint is refused (new id), even from the cache', async () => {
    const issued = (await call('POST', '/v1/endpoints/llm/tokens', { duration: '1h' })).body;
    expect(await gate(await tableOf('llm'), issued.token)).toBe('ok');
    expect((await app.request('/v1/endpoints/llm', { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(204);
    await call('PUT', '/v1/endpoints/llm', {});
    expect(await gate(await tableOf('llm'), issued.token)).toBe('GW_AUTH_FORBIDDEN');
    expect((await call('GET', '/v1/endpoints/llm/tokens')).body.tokens).toEqual([]);
  });

  it('allowed_cidrs are validated by the auth module', async () => {
    const res = await call('PATCH', '/v1/endpoints/llm', { allowed_cidrs: ['10.0.0.0/8', '10.0.0.0/99'] });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].field).toBe('allowed_cidrs.1');
  });
});
