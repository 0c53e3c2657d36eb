import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnGateway } from '../../support/gateway.js';

// Modules a start-up does not need are loaded on the path that needs them (memory: see
// docs/performance.md "Memory with many endpoints"). These tests pin both halves: they are not
// loaded at start, and the feature still works when asked for.
const hook = pathToFileURL(fileURLToPath(new URL('../../fixtures/record-modules.mjs', import.meta.url))).href;
const dir = mkdtempSync(join(tmpdir(), 'mg-lazy-modules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const loaded = (log: string) => readFileSync(log, 'utf8').split('\n');
const has = (log: string, part: string) => loaded(log).some((url) => url.includes(part));

describe('lazily loaded modules', () => {
  it('without the controller, no controller module is loaded; /openapi.json loads its module on first request', async () => {
    const log = join(dir, 'no-controller.txt');
    const gw = await spawnGateway({ CONTROLLER_ENABLED: 'false', MODULES_LOG: log, NODE_OPTIONS: `--import ${hook}` });
    try {
      expect(has(log, '/src/proxy/gateway-server.ts')).toBe(true); // the hook sees the app's modules
      expect(has(log, '/src/controller/')).toBe(false);
      expect(has(log, '/src/admin/services-routes.ts')).toBe(false);
      expect(has(log, '/src/admin/openapi.ts')).toBe(false);
      expect((await gw.admin('GET', '/v1/services')).status).toBe(404);
      const doc = await fetch(`${gw.adminUrl}/openapi.json`);
      expect(doc.status).toBe(200);
      expect(((await doc.json()) as { openapi: string }).openapi).toMatch(/^3\./);
      expect(has(log, '/src/admin/openapi.ts')).toBe(true);
    } finally {
      await gw.stop();
    }
  });

  it('with the controller, its modules load at start and the services API answers', async () => {
    const log = join(dir, 'controller.txt');
    const gw = await spawnGateway({ CONTROLLER_ENABLED: 'true', CONTROLLER_WORK_DIR: join(dir, 'work'), MODULES_LOG: log, NODE_OPTIONS: `--import ${hook}` });
    try {
      expect(has(log, '/src/controller/service-controller.ts')).toBe(true);
      const list = await gw.admin('GET', '/v1/services');
      expect(list.status).toBe(200);
    } finally {
      await gw.stop();
    }
  });
});
