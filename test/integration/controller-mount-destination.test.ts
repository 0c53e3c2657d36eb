import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { harness, table, type Harness } from './controller-harness.js';
import { eventually } from '../support/eventually.js';

/**
 * model_mount_destination (the seed guide's "Model Destination For Model Folder"): replicas see
 * the model folder at that path too, besides the definition's own model_path.
 */

let h: Harness;
let folder: string;
beforeAll(async () => {
  h = await harness('27000-27499');
  folder = mkdtempSync(join(tmpdir(), 'mg-mount-'));
  writeFileSync(join(folder, 'weights.txt'), 'the weights\n');
  writeFileSync(
    join(folder, 'model-definition.yaml'),
    [
      'models:',
      '  - name: mounted',
      '    model_path: /opt/model',
      '    service:',
      '      start_command: [python3, -m, http.server, --bind, 127.0.0.1, --directory, /mnt/models, "8000"]',
      '      port: 8000',
      '      health_check: {path: /weights.txt, interval: 0.5, max_retries: 3, initial_delay: 20}',
      '',
    ].join('\n'),
  );
});
afterAll(async () => {
  await h?.close();
  rmSync(folder, { recursive: true, force: true });
});

describe('model_mount_destination', () => {
  it('maps the destination to the model folder for the replica', async () => {
    const view = await h.controller.create({ name: 'mounted', model_folder: folder, model_mount_destination: '/mnt/models', replicas: 1, public: true, env: {} });
    expect(view.model_mount_destination).toBe('/mnt/models');
    const routes = await eventually(async () => {
      const t = await table(h.store, 'mounted');
      return t?.routes.length === 1 && t.routes[0].status === 'healthy' ? t.routes : null;
    }, { what: 'a healthy replica serving the folder from /mnt/models', timeoutMs: 30_000, stepMs: 100 });
    const res = await fetch(`${routes[0].url}/weights.txt`);
    expect(await res.text()).toBe('the weights\n');
  }, 40_000);

  it('keeps it in the service view and refuses a relative path', async () => {
    expect(h.controller.get('mounted').model_mount_destination).toBe('/mnt/models');
    const { createServiceSchema } = await import('../../src/controller/service-spec.js');
    const bad = createServiceSchema.safeParse({ name: 'x', model_folder: folder, model_mount_destination: 'models' });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0].path).toEqual(['model_mount_destination']);
  });
});
