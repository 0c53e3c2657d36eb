import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { FIXTURES } from './controller-harness.js';
import { eventually } from '../support/eventually.js';

/**
 * Two gateway instances on one Redis: A runs the controller, B only the data plane. Load seen
 * by B counts (its reports reach A's controller through Redis), a request held by B wakes the
 * service at zero (a wake event over pub/sub), and B's counts vanish when B is gone.
 */

const prefix = `as-${randomBytes(4).toString('hex')}:`;
let a: TestGateway;
let b: TestGateway;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mg-as-redis-'));
  const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix, HOLD_TIMEOUT_MS: '15000' };
  a = await startTestGateway({ ...env, CONTROLLER_ENABLED: 'true', CONTROLLER_PORT_RANGE: '25800-25899', CONTROLLER_WORK_DIR: join(dir, 'work') });
  b = await startTestGateway({ ...env, CONTROLLER_ENABLED: 'false' });
});
afterAll(async () => {
  await b?.stop();
  await a?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('autoscaling across gateway instances (Redis)', () => {
  it('wakes from another instance, counts its load, and forgets a dead instance', async () => {
    const startLog = join(dir, 'starts');
    const created = await a.admin('POST', '/v1/services', {
      name: 'shared',
      model_folder: join(FIXTURES, 'autoscale-server'),
      public: true,
      env: { START_LOG: startLog },
      autoscaling: { min_replicas: 0, max_replicas: 3, target_in_flight: 2, stable_window_s: 2, panic_window_s: 1, scale_down_delay_s: 1, scale_to_zero_grace_s: 2 },
    });
    expect(created.status).toBe(201);
    await eventually(async () => {
      const s = (await a.admin('GET', '/v1/services/shared')).body;
      return s.status === 'IDLE' && s.routes.length === 0;
    }, { what: 'IDLE', timeoutMs: 20_000, stepMs: 100 });
    const before = readFileSync(startLog, 'utf8').split('\n').filter(Boolean).length;

    // Held on B, woken by A's controller.
    const woken = await Promise.all(Array.from({ length: 10 }, () => fetch(`${b.url}/e/shared/work?ms=20`).then((r) => r.status)));
    expect(woken).toEqual(Array(10).fill(200));
    expect(readFileSync(startLog, 'utf8').split('\n').filter(Boolean).length).toBe(before + 1);

    // Load through B only: A's controller sees it and scales up.
    let running = true;
    const statuses: number[] = [];
    const loops = Array.from({ length: 6 }, async () => {
      while (running) statuses.push(await fetch(`${b.url}/e/shared/work?ms=300`).then(async (r) => (await r.arrayBuffer(), r.status)));
    });
    await eventually(async () => (await a.admin('GET', '/v1/services/shared')).body.autoscaling.status.desired >= 3, { what: 'scale-up from B load', timeoutMs: 20_000, stepMs: 100 });
    // The reports live in Redis under the documented keys, one per instance, with a short TTL.
    const redis = new Redis(inject('redisUrl'));
    try {
      const instances = await redis.zrange(`${prefix}load:shared`, '0', '-1');
      expect(instances.length).toBeGreaterThanOrEqual(1);
      const ttl = await redis.pttl(`${prefix}load:shared:${instances[0]}`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(3_000);
      // B stops (as if it died): its counts vanish within the TTL.
      running = false;
      await Promise.all(loops);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      const bInstance = b.running.gateway!.loadReporter.instance;
      await b.stop();
      await eventually(async () => (await redis.get(`${prefix}load:shared:${bInstance}`)) === null, { what: "B's report expired", timeoutMs: 10_000, stepMs: 100 });
    } finally {
      redis.disconnect();
    }
    await eventually(async () => (await a.admin('GET', '/v1/services/shared')).body.autoscaling.status.desired <= 1, { what: 'back down without B', timeoutMs: 30_000, stepMs: 100 });
    expect((await a.admin('DELETE', '/v1/services/shared')).status).toBe(204);
  }, 90_000);
});
