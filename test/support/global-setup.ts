import { rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { startRedis } from './redis-server.js';

/**
 * One real redis-server for the whole run. Test files isolate themselves with a unique
 * REDIS_PREFIX (or key prefix) each, so they can run in parallel against it.
 */

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedis();
  project.provide('redisUrl', redis.url);
  return async () => {
    await redis.stop();
    // Gateways the tests started made the replicas' base dir in /tmp (src/controller/work-dir.ts)
    // and released their own folders in it; the base goes too once nothing is left (rmdir refuses
    // a non-empty one, e.g. a gateway running outside the tests).
    try {
      rmdirSync(join(tmpdir(), `modelgate-replicas-${process.getuid?.() ?? 'user'}`));
    } catch {
      // not there, or still in use
    }
  };
}
