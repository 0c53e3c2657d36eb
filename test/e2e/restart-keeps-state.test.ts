import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall, spawnGateway, type SpawnedGateway } from '../support/gateway.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { eventually } from '../support/eventually.js';

/**
 * Issue 9 end to end: a gateway on the embedded store, with generated secrets, restarted —
 * endpoints, routes, tokens (issued and revoked) and a running model service all come back.
 */
describe('restart on the embedded store loses nothing', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mg-restart-'));
  // Replica folders under the test's own temp dir (the default keeps them in /tmp for a restart).
  const workDir = mkdtempSync(join(tmpdir(), 'mg-restart-work-'));
  const env = { DATA_DIR: dataDir, ADMIN_TOKEN: '', TOKEN_SECRET: '', CONTROLLER_ENABLED: 'true', CONTROLLER_WORK_DIR: workDir };
  let gw: SpawnedGateway | null = null;
  let up: TestUpstream;

  const admin = (method: string, path: string, body?: unknown) =>
    adminCall(gw!.adminUrl, readFileSync(join(dataDir, 'admin-token'), 'utf8').trim(), method, path, body);
  const call = (path: string, token?: string) => fetch(`${gw!.url}${path}`, { headers: token ? { authorization: `BackendAI ${token}` } : {} });

  beforeAll(async () => {
    up = await startUpstream(undefined, { name: 'kept' });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
    for (const dir of [dataDir, workDir]) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps endpoints, tokens, revocations, secrets and services across a restart', { timeout: 90_000 }, async () => {
    gw = await spawnGateway(env);
    const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    expect(adminToken.length).toBeGreaterThanOrEqual(32);
    expect(gw.lines.join('\n')).toContain(adminToken); // printed once on first start

    const ep = await admin('PUT', '/v1/endpoints/kept', { routes: [{ id: 'r1', url: up.url }] });
    expect(ep.status).toBe(201);
    const good = (await admin('POST', '/v1/endpoints/kept/tokens', { ttl_seconds: 3600, sub: 'alice' })).body;
    const bad = (await admin('POST', '/v1/endpoints/kept/tokens', { duration: '1h', sub: 'bob' })).body;
    expect((await admin('DELETE', `/v1/endpoints/kept/tokens/${bad.jti}`)).status).toBe(204);
    const folder = resolve('config/examples/sse-chat');
    const svc = await admin('POST', '/v1/services', { name: 'svc', model_folder: folder, replicas: 1, public: true });
    expect(svc.status).toBe(201);
    await eventually(async () => (await admin('GET', '/v1/services/svc')).body.status === 'HEALTHY', { timeoutMs: 30_000, stepMs: 200 });
    expect((await call('/e/kept/', good.token)).status).toBe(200);
    expect((await call('/e/kept/', bad.token)).status).toBe(401);

    expect(await gw.stop('SIGTERM')).toBe(0);
    gw = await spawnGateway(env);
    expect(gw.lines.join('\n')).not.toContain(adminToken); // not printed again
    expect(readFileSync(join(dataDir, 'admin-token'), 'utf8').trim()).toBe(adminToken);

    const after = await admin('GET', '/v1/endpoints/kept');
    expect(after.status).toBe(200);
    expect(after.body.id).toBe(ep.body.id);
    expect(after.body.routes).toEqual(ep.body.routes);
    const ok = await call('/e/kept/', good.token);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as any).upstream).toBe('kept');
    const revoked = await call('/e/kept/', bad.token);
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as any).error.code).toBe('GW_AUTH_REVOKED');
    const tokens = (await admin('GET', '/v1/endpoints/kept/tokens')).body.tokens;
    expect(tokens.map((t: any) => t.jti)).toContain(good.jti);

    await eventually(async () => (await admin('GET', '/v1/services/svc')).body.status === 'HEALTHY', { timeoutMs: 30_000, stepMs: 200 });
    const restored = (await admin('GET', '/v1/services/svc')).body;
    expect(restored.endpoint_id).toBe(svc.body.endpoint_id);
    const chat = await call('/e/svc/v1/chat/completions');
    expect(chat.status).toBeLessThan(500);
  });
});
