import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServiceController, type ServiceControllerOptions } from '../../src/controller/service-controller.js';
import { silentLogger } from '../../src/obs/logger.js';
import { parseStoredRouteTable, type RouteTable } from '../../src/schema/route-table.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { Store } from '../../src/store/store.js';

/** Shared by the controller-*.test.ts files: real processes, a real MemoryStore, short timings. */

export const ROOT = join(import.meta.dirname, '../..');
export const EXAMPLES = join(ROOT, 'config/examples');
export const FIXTURES = join(ROOT, 'test/fixtures/models');

export interface Harness {
  store: Store;
  workDir: string;
  controller: ServiceController;
  newController(): ServiceController;
  close(): Promise<void>;
}

export async function harness(portRange: string, extra: Partial<ServiceControllerOptions> = {}): Promise<Harness> {
  const logger = silentLogger();
  const store = await MemoryStore.open({ dataDir: null, logger });
  const workDir = mkdtempSync(join(tmpdir(), 'mg-ctl-'));
  const controllers: ServiceController[] = [];
  const newController = () => {
    const c = new ServiceController({
      store,
      logger,
      settings: { CONTROLLER_PORT_RANGE: portRange, CONTROLLER_WORK_DIR: workDir, DATA_DIR: '', ephemeral: true },
      policy: { backoffBaseMs: 200, backoffMaxMs: 1_000, startAttempts: 2, stopGraceMs: 2_000 },
      drainGraceMs: 300,
      reconcileIntervalMs: 500,
      ...extra,
    });
    controllers.push(c);
    return c;
  };
  const controller = newController();
  await controller.start();
  return {
    store,
    workDir,
    controller,
    newController,
    async close() {
      for (const c of controllers) await c.stop();
      await store.close();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function table(store: Store, name: string): Promise<RouteTable | null> {
  const raw = await store.getEndpointRaw(name);
  if (raw === null) return null;
  const parsed = parseStoredRouteTable(raw);
  return parsed.ok ? parsed.table : null;
}
