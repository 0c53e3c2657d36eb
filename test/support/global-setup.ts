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
  };
}
