import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { SEED_EXAMPLE } from '../support/seed-example.js';
import { eventually } from '../support/eventually.js';

/**
 * The seed system's model-definition example, unmodified (`python -m http.server --directory
 * /home/work 8000`), served with two replicas side by side — on a PATH that has only python3,
 * as on a stock Debian machine.
 */

describe('the seed guide example, unmodified', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mg-seed-'));
  const folder = join(dir, 'model');
  const bin = join(dir, 'bin');
  let gw: TestGateway;

  beforeAll(async () => {
    mkdirSync(folder);
    writeFileSync(join(folder, 'model-definition.yml'), SEED_EXAMPLE);
    mkdirSync(bin);
    const python3 = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
    symlinkSync(python3, join(bin, 'python3'));
    // Route URLs name the host other gateway instances would use (CONTROLLER_ADVERTISE_HOST).
    gw = await startTestGateway({ CONTROLLER_ENABLED: 'true', CONTROLLER_PORT_RANGE: '35000-35099', CONTROLLER_ADVERTISE_HOST: 'localhost' });
  });
  afterAll(async () => {
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs two replicas of it and serves them through the endpoint', { timeout: 60_000 }, async () => {
    const created = await gw.admin('POST', '/v1/services', { name: 'seed', model_folder: folder, replicas: 2, public: true, env: { PATH: `${bin}:/usr/bin:/bin` } });
    expect(created.status).toBe(201);
    const view = await eventually(async () => {
      const v = (await gw.admin('GET', '/v1/services/seed')).body;
      return v.status === 'HEALTHY' ? v : null;
    }, { timeoutMs: 30_000, stepMs: 200 });
    expect(view.routes).toHaveLength(2);
    expect(new Set(view.routes.map((r: { port: number }) => r.port)).size).toBe(2);
    expect(view.routes[0].log_tail.join('\n')).toContain('python not found on PATH; running python3');
    const table = (await gw.admin('GET', '/v1/endpoints/seed')).body;
    expect(table.routes.map((r: { url: string }) => new URL(r.url).hostname)).toEqual(['localhost', 'localhost']);
    const res = await fetch(`${gw.url}/e/seed/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('Directory listing');
  });
});
