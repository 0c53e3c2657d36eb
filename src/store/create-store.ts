import type { Settings } from '../config/settings.js';
import type { Logger } from '../obs/logger.js';
import { MemoryStore } from './memory-store.js';
import { isSentinelUrl } from '../config/redis-url.js';
import { RedisStore } from './redis-store.js';
import type { Store } from './store.js';

/** Redis when REDIS_URL is set; otherwise the embedded store, durable unless ephemeral. Call start() next. */
export function createStore(settings: Settings, logger: Logger): Store {
  if (settings.REDIS_URL) {
    return new RedisStore({
      url: settings.REDIS_URL,
      prefix: settings.REDIS_PREFIX,
      logger,
      waitReplicas: settings.REDIS_WAIT_REPLICAS ?? (isSentinelUrl(settings.REDIS_URL) ? 1 : 0),
      waitTimeoutMs: settings.REDIS_WAIT_TIMEOUT_MS,
    });
  }
  const dataDir = settings.ephemeral || settings.DATA_DIR === '' ? null : settings.DATA_DIR;
  return new MemoryStore({ dataDir, logger });
}
