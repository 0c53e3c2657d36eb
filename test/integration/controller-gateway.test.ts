import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { EXAMPLES, FIXTURES, pidAlive } from './controller-harness.js';
import { eventually } from '../support/eventually.js';

/** The services API and the data plane together: a whole gateway in this process. */

let gw: TestGateway;
let workDir: string;
beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'mg-ctl-gw-'));
  gw = await startTestGateway({ CONTROLLER_ENABLED: 'true', CONTROLLER_PORT_RANGE: '24000-24999', CONTROLLER_WORK_DIR: workDir, HOLD_TIMEOUT_MS: '10000' });
});
afterAll(async () => {
  await gw?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

async function serviceHealthy(name: string) {
  return eventually(async () => {
    const res = await gw.admin('GET', `/v1/services/${name}`);
    return res.body.status === 'HEALTHY' && res.body.routes.every((r: { status: string }) => r.status === 'healthy') ? res.body : null;
  }, { what: `${name} HEALTHY`, timeoutMs: 20_000 });
}

async function readNdjson(res: Response): Promise<any[]> {
  const text = await res.text();
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

describe('services API through a running gateway', () => {
  it('creates a service that is an endpoint reachable through the gateway', async () => {
    const res = await gw.admin('POST', '/v1/services', { name: 'web', model_folder: join(EXAMPLES, 'simple-http-server'), replicas: 2, public: true });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ name: 'web', replicas: 2, public: true, status: 'PROVISIONING', url: expect.stringContaining('web.localhost') });
    const view = await serviceHealthy('web');
    expect(view.routes).toHaveLength(2);
    const endpoint = await gw.admin('GET', '/v1/endpoints/web');
    expect(endpoint.body.id).toBe(view.endpoint_id);
    const page = await fetch(`${gw.url}/e/web/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('hello from simple-http-server');
    const list = await gw.admin('GET', '/v1/services');
    expect(list.body.services.map((s: { name: string }) => s.name)).toEqual(['web']);
  });

  it('refuses a taken name, a bad definition and bad fields with clear errors', async () => {
    expect((await gw.admin('POST', '/v1/services', { name: 'web', model_folder: join(EXAMPLES, 'simple-http-server') })).status).toBe(409);
    expect((await gw.admin('PUT', '/v1/endpoints/plain', { routes: [] })).status).toBe(201);
    const taken = await gw.admin('POST', '/v1/services', { name: 'plain', model_folder: join(EXAMPLES, 'simple-http-server') });
    expect(taken.status).toBe(409);
    expect(taken.body.error.code).toBe('ADM_CONFLICT');

    const bad = await gw.admin('POST', '/v1/services', { name: 'bad', model_folder: join(FIXTURES, 'unknown-action') });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details).toEqual([{ field: 'models[0].service.pre_start_actions[0].action', message: expect.stringContaining('unknown action') }]);
    expect((await gw.admin('GET', '/v1/endpoints/bad')).status).toBe(404);

    const fields = await gw.admin('POST', '/v1/services', { name: 'Bad_Name', model_folder: '', replicas: 0, resources: { cpu: 0, memory: 'lots' }, extra: 1 });
    expect(fields.status).toBe(400);
    const named = fields.body.error.details.map((d: { field: string }) => d.field);
    expect(named).toEqual(expect.arrayContaining(['name', 'model_folder', 'replicas', 'resources.cpu', 'resources.memory', 'body']));

    expect((await gw.admin('GET', '/v1/services/nope')).status).toBe(404);
    expect((await gw.admin('POST', '/v1/services/nope/errors/clear')).status).toBe(404);
    expect((await gw.admin('PATCH', '/v1/services/nope', { replicas: 2 })).status).toBe(404);
  });

  it('records resources and says what is enforced', async () => {
    const res = await gw.admin('PATCH', '/v1/services/web', { resources: { cpu: 0.5, memory: '256m' } });
    expect(res.status).toBe(200);
    expect(res.body.resources).toEqual({ cpu: 0.5, memory: '256m', memory_bytes: 256 * 1024 * 1024 });
    // The change rolls the replicas: wait until every route runs the new generation.
    const view = await eventually(async () => {
      const v = await serviceHealthy('web');
      return v.routes.length > 0 && v.routes.every((r: { generation: number }) => r.generation === 2) ? v : null;
    }, { what: 'web rolled to generation 2', timeoutMs: 30_000 });
    expect(typeof view.resources_enforced.memory).toBe('boolean');
  });

  // SIGKILL can land while a request is inside the killed process: the design retries only
  // connections that failed before any request byte was sent, so those few in-flight requests
  // (at most one per client) may fail. Everything after the kill instant must succeed: the
  // replica leaves the table at once and the others carry the traffic while it restarts.
  it('no request fails after a replica is killed under steady traffic', async () => {
    const view = await serviceHealthy('web');
    let ok = 0;
    let killedAt = 0;
    const failures: string[] = [];
    const lateFailures: string[] = [];
    let running = true;
    const worker = async () => {
      while (running) {
        try {
          const res = await fetch(`${gw.url}/e/web/`);
          const body = await res.text();
          if (res.status === 200 && body.includes('hello')) ok++;
          else (killedAt && Date.now() - killedAt > 100 ? lateFailures : failures).push(`${res.status} ${body.slice(0, 120)}`);
        } catch (err) {
          (killedAt && Date.now() - killedAt > 100 ? lateFailures : failures).push(String(err));
        }
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    await eventually(() => ok >= 12, { what: 'traffic flowing' });
    killedAt = Date.now();
    process.kill(view.routes[0].pid, 'SIGKILL');
    await eventually(async () => {
      const v = (await gw.admin('GET', '/v1/services/web')).body;
      return v.status === 'HEALTHY' && v.routes.some((r: { restarts: number }) => r.restarts === 1);
    }, { what: 'web recovered', timeoutMs: 20_000 });
    const recoveredAt = ok;
    await eventually(() => ok >= recoveredAt + 12, { what: 'traffic after the recovery' });
    running = false;
    await Promise.all(workers);
    expect(lateFailures).toEqual([]);
    expect(failures.length).toBeLessThanOrEqual(4);
    expect(ok).toBeGreaterThan(20);
  });

  it('makes a service private and public again', async () => {
    expect((await gw.admin('PATCH', '/v1/services/web', { public: false })).body.public).toBe(false);
    await eventually(async () => (await fetch(`${gw.url}/e/web/`)).status === 401, { what: 'private', timeoutMs: 5_000 });
    await gw.admin('PATCH', '/v1/services/web', { public: true });
    await eventually(async () => (await fetch(`${gw.url}/e/web/`)).status === 200, { what: 'public', timeoutMs: 5_000 });
  });

  it('validate streams log lines then a Finished result, and stops the replica', async () => {
    const res = await fetch(`${gw.adminUrl}/v1/services/validate`, {
      method: 'POST',
      headers: { authorization: `Bearer test-admin-token-0123456789`, 'content-type': 'application/json' },
      body: JSON.stringify({ model_folder: join(EXAMPLES, 'simple-http-server') }),
    });
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const events = await readNdjson(res);
    expect(events.filter((e) => e.type === 'log').length).toBeGreaterThan(2);
    expect(events.some((e) => e.type === 'log' && e.line.includes('[pre-start] mkdir'))).toBe(true);
    expect(events.at(-1)).toEqual({ type: 'result', status: 'Finished', healthy: true, error: null });
    const pidLine = events.find((e) => e.type === 'log' && /exec/.test(e.line));
    expect(pidLine).toBeDefined();
    expect((await gw.admin('GET', '/v1/services')).body.services).toHaveLength(1);

    const failing = await fetch(`${gw.adminUrl}/v1/services/validate`, {
      method: 'POST',
      headers: { authorization: `Bearer test-admin-token-0123456789`, 'content-type': 'application/json' },
      body: JSON.stringify({ model_folder: join(FIXTURES, 'exits-at-once') }),
    });
    const result = (await readNdjson(failing)).at(-1);
    expect(result).toMatchObject({ type: 'result', status: 'Finished', healthy: false, error: expect.stringMatching(/exited with code 3/) });

    const invalid = await fetch(`${gw.adminUrl}/v1/services/validate`, {
      method: 'POST',
      headers: { authorization: `Bearer test-admin-token-0123456789`, 'content-type': 'application/json' },
      body: JSON.stringify({ model_folder: join(FIXTURES, 'yaml-syntax') }),
    });
    expect((await readNdjson(invalid)).at(-1)).toMatchObject({ healthy: false, details: [{ field: 'model_definition', message: expect.stringContaining('line') }] });
  });

  it('DELETE drains and stops the service and removes its endpoint', async () => {
    const view = (await gw.admin('GET', '/v1/services/web')).body;
    const pids = view.routes.map((r: { pid: number }) => r.pid);
    expect((await gw.admin('DELETE', '/v1/services/web')).status).toBe(204);
    expect(pids.filter(pidAlive)).toEqual([]);
    expect((await gw.admin('GET', '/v1/services/web')).status).toBe(404);
    expect((await gw.admin('GET', '/v1/endpoints/web')).status).toBe(404);
    await eventually(async () => (await fetch(`${gw.url}/e/web/`)).status === 404, { what: 'endpoint gone from the data plane', timeoutMs: 5_000 });
    expect((await gw.admin('DELETE', '/v1/services/web')).status).toBe(404);
  });

  it('deleting a service endpoint through the endpoints API terminates the service', async () => {
    await gw.admin('POST', '/v1/services', { name: 'chat', model_folder: join(EXAMPLES, 'sse-chat'), replicas: 1, public: true });
    const view = await serviceHealthy('chat');
    expect((await gw.admin('DELETE', '/v1/endpoints/chat')).status).toBe(204);
    expect(pidAlive(view.routes[0].pid)).toBe(false);
    expect((await gw.admin('GET', '/v1/services/chat')).status).toBe(404);
  });
});
