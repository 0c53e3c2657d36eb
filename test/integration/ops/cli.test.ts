import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TEST_ADMIN_TOKEN, type TestGateway } from '../../support/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../../support/upstream.js';
import { eventually } from '../../support/eventually.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `modelgate ...` the way a user does: a separate node process on src/main.ts. */
function modelgate(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
      cwd: process.cwd(),
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('modelgate CLI against a running gateway', { timeout: 120_000 }, () => {
  let gw: TestGateway;
  let up: TestUpstream;
  let env: Record<string, string>;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startUpstream();
    env = { ADMIN_TOKEN: TEST_ADMIN_TOKEN };
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('--help lists the commands', async () => {
    const r = await modelgate(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['endpoint', 'routes', 'token', 'service']) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
  });

  it('endpoint put / ls / get / rm, as tables and as JSON', async () => {
    const admin = ['--admin-url', gw.adminUrl];
    const put = await modelgate(['endpoint', 'put', 'cli-ep', '--public', '--route', `r1=${up.url},weight=2`, ...admin], env);
    expect(put.stderr).toContain('endpoint cli-ep created');
    expect(put.code).toBe(0);
    expect(put.stdout).toMatch(/^NAME\s+ID\s+PUBLIC\s+VERSION\s+HEALTHY\s+URL/m);
    expect(put.stdout).toMatch(/^r1\s+healthy\s+2\s+http:\/\/127\.0\.0\.1/m);

    const ls = await modelgate(['endpoint', 'ls', ...admin], env);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^cli-ep\s+yes\s+1\s+1\/1\s+http:\/\/cli-ep\.localhost:/m);

    const json = await modelgate(['endpoint', 'get', 'cli-ep', '--json', ...admin], env);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout);
    expect(parsed).toMatchObject({ name: 'cli-ep', public: true, version: 1 });
    expect(parsed.routes[0]).toMatchObject({ id: 'r1', weight: 2 });

    // The endpoint answers through the gateway.
    expect((await fetch(`${gw.url}/e/cli-ep/x`)).status).toBe(200);

    const routes = await modelgate(['routes', 'set', 'cli-ep', '--route', `r2=${up.url}`, '--expected-version', '1', '--json', ...admin], env);
    expect(routes.code).toBe(0);
    expect(JSON.parse(routes.stdout).routes.map((r: { id: string }) => r.id)).toEqual(['r2']);

    const conflict = await modelgate(['routes', 'set', 'cli-ep', '--route', up.url, '--expected-version', '1', ...admin], env);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr.trim().split('\n')).toHaveLength(1);
    expect(conflict.stderr).toMatch(/^modelgate routes: ADM_CONFLICT/);

    const rm = await modelgate(['endpoint', 'rm', 'cli-ep', ...admin], env);
    expect(rm.code).toBe(0);
    const gone = await modelgate(['endpoint', 'get', 'cli-ep', ...admin], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^modelgate endpoint: ADM_NOT_FOUND/);
  });

  it('token create works with the other commands', async () => {
    const admin = ['--admin-url', gw.adminUrl];
    expect((await modelgate(['endpoint', 'put', 'cli-priv', '--route', up.url, ...admin], env)).code).toBe(0);
    const tok = await modelgate(['token', 'create', '--endpoint', 'cli-priv', '--ttl', '1h', ...admin], env);
    expect(tok.code).toBe(0);
    const token = tok.stdout.trim();
    expect((await fetch(`${gw.url}/e/cli-priv/`, { headers: { authorization: `BackendAI ${token}` } })).status).toBe(200);
  });

  it('token create sets priority and rate limits, enforced by the gateway', async () => {
    const admin = ['--admin-url', gw.adminUrl];
    expect((await modelgate(['endpoint', 'put', 'cli-rl', '--route', up.url, ...admin], env)).code).toBe(0);
    const tok = await modelgate(['token', 'create', '--endpoint', 'cli-rl', '--priority', '8', '--requests-per-minute', '2', '--tokens-per-minute', '900', '--json', ...admin], env);
    expect(tok.code).toBe(0);
    const issued = JSON.parse(tok.stdout);
    expect(issued).toMatchObject({ priority: 8, rate_limit: { requests_per_minute: 2, tokens_per_minute: 900 } });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(`${gw.url}/e/cli-rl/`, { headers: { authorization: `BackendAI ${issued.token}` } })).status);
    expect(statuses).toEqual([200, 200, 429]);
    const bad = await modelgate(['token', 'create', '--endpoint', 'cli-rl', '--priority', 'high', ...admin], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--priority must be a whole number');
    const outOfRange = await modelgate(['token', 'create', '--endpoint', 'cli-rl', '--priority', '12', ...admin], env);
    expect(outOfRange.code).toBe(1);
    expect(outOfRange.stderr).toContain('priority');
  });

  it('fails with one clear line and a non-zero status', async () => {
    const badToken = await modelgate(['endpoint', 'ls', '--admin-url', gw.adminUrl], { ADMIN_TOKEN: 'wrong-token-0123456789' });
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toMatch(/^modelgate endpoint: ADM_UNAUTHORIZED: .*\n$/);
    const noToken = await modelgate(['endpoint', 'ls', '--admin-url', gw.adminUrl]);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/no admin token/);
    const port = await closedPort();
    const down = await modelgate(['endpoint', 'ls', '--admin-url', `http://127.0.0.1:${port}`], env);
    expect(down.code).toBe(1);
    expect(down.stderr).toBe(`modelgate endpoint: cannot reach the admin API at http://127.0.0.1:${port}: ECONNREFUSED\n`);
    const usage = await modelgate(['endpoint', 'frob'], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr.trim().split('\n')).toHaveLength(1);
    const invalid = await modelgate(['endpoint', 'put', 'Bad_Name', '--admin-url', gw.adminUrl], env);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^modelgate endpoint: ADM_INVALID/);
  });

  it('service ls talks to the services API (controller disabled here: a clear error)', async () => {
    const r = await modelgate(['service', 'ls', '--admin-url', gw.adminUrl], env);
    // CONTROLLER_ENABLED=false in test gateways: the services routes are not mounted.
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^modelgate service: ADM_NOT_FOUND/);
    const usage = await modelgate(['service', 'create', 'x'], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--model-folder DIR is required/);
  });
});

describe('modelgate service against a gateway running the controller', { timeout: 120_000 }, () => {
  let gw: TestGateway;
  const env = { ADMIN_TOKEN: TEST_ADMIN_TOKEN };

  beforeAll(async () => {
    gw = await startTestGateway({ CONTROLLER_ENABLED: 'true' });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('service create / ls / get / rm', async () => {
    const admin = ['--admin-url', gw.adminUrl];
    const created = await modelgate(['service', 'create', 'web', '--model-folder', 'config/examples/simple-http-server', '--public', ...admin], env);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^NAME\s+STATUS\s+REPLICAS\s+PUBLIC\s+URL\s+MODEL FOLDER/m);
    expect(created.stdout).toMatch(/^web\s+PROVISIONING\s+0\/1\s+yes\s+http:\/\/web\.localhost:/m);

    await eventually(async () => (await gw.admin('GET', '/v1/services/web')).body.status === 'HEALTHY', { what: 'web HEALTHY', timeoutMs: 20_000 });

    const ls = await modelgate(['service', 'ls', ...admin], env);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^web\s+HEALTHY\s+1\/1\s+yes\s+http:\/\/web\.localhost:/m);

    const get = await modelgate(['service', 'get', 'web', '--json', ...admin], env);
    expect(get.code).toBe(0);
    const view = JSON.parse(get.stdout);
    expect(view).toMatchObject({ name: 'web', status: 'HEALTHY', replicas: 1 });
    expect(view.routes[0]).toMatchObject({ status: 'healthy' });

    const table = await modelgate(['service', 'get', 'web', ...admin], env);
    expect(table.stdout).toMatch(/^ROUTE\s+STATUS\s+PORT\s+PID\s+RESTARTS\s+LAST ERROR\s+RUNTIME\s+NODE\s+HOST$/m);
    expect(table.stdout).toMatch(/\s-\s+process\s+\S+\s+127\.0\.0\.1$/m);

    const rm = await modelgate(['service', 'rm', 'web', ...admin], env);
    expect(rm.code).toBe(0);
    expect(rm.stdout).toBe('service web stopped and removed\n');
    const gone = await modelgate(['service', 'get', 'web', ...admin], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^modelgate service: ADM_NOT_FOUND/);
  });
});
