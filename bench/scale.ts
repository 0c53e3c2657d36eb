/**
 * Memory and lookup time with many endpoints in Redis: N route tables written with a pipeline
 * into a dedicated redis-server, a fresh gateway per N, H of them touched (loaded and then
 * served from the bounded LRU), RSS read from /proc, cold (first use, one Redis GET) and hot
 * lookups timed one at a time.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { percentile, rssMiB, spawnGateway } from './lib.js';

export interface ScaleRow {
  endpoints: number;
  touched: number;
  rssMiB: number;
  redisMiB: number;
  coldP50: number;
  coldP99: number;
  hotP50: number;
  hotP99: number;
  touchSeconds: number;
}

const name = (i: number) => `ep-${i}`;

export async function writeEndpoints(redis: Redis, from: number, to: number, upstream: string): Promise<void> {
  const BATCH = 10_000;
  for (let i = from; i < to; i += BATCH) {
    const p = redis.pipeline();
    const names: string[] = [];
    for (let j = i; j < Math.min(to, i + BATCH); j++) {
      const n = name(j);
      names.push(n);
      p.set(`mg:endpoint:${n}`, JSON.stringify({ id: randomUUID(), name: n, public: true, version: 1, routes: [{ id: 'r1', url: upstream, weight: 1, status: 'healthy' }] }));
    }
    p.sadd('mg:endpoints', ...names);
    await p.exec();
  }
}

async function timeOne(pool: Pool, i: number): Promise<number> {
  const t0 = performance.now();
  const res = await pool.request({ path: '/', method: 'GET', headers: { host: `${name(i)}.localhost` } });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`ep-${i}: status ${res.statusCode}`);
  return performance.now() - t0;
}

/** Touches endpoints [from, to) with `concurrency` requests in flight. */
async function touch(pool: Pool, from: number, to: number, concurrency: number): Promise<void> {
  let next = from;
  const worker = async () => {
    while (next < to) {
      const i = next++;
      const res = await pool.request({ path: '/', method: 'GET', headers: { host: `${name(i)}.localhost` } });
      await res.body.dump();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** The gateway's default ENDPOINT_CACHE_MAX: the hot set it keeps in memory. */
export const CACHE_MAX = 25_000;

export async function measureScale(redisUrl: string, endpoints: number, touchMax: number, samples: number): Promise<ScaleRow> {
  const gw = await spawnGateway({ REDIS_URL: redisUrl, ENDPOINT_CACHE_MAX: String(CACHE_MAX) });
  const pool = new Pool(`http://127.0.0.1:${gw.port}`, { connections: 32 });
  try {
    const touched = Math.min(endpoints, touchMax);
    // Cold: endpoints beyond the touched range when there are any, else the first `samples`.
    const coldFrom = endpoints > touched + samples ? touched : 0;
    const cold: number[] = [];
    for (let k = 0; k < samples; k++) cold.push(await timeOne(pool, coldFrom + Math.floor((k * (endpoints - coldFrom)) / samples)));
    const t0 = performance.now();
    await touch(pool, 0, touched, 32);
    const touchSeconds = (performance.now() - t0) / 1000;
    const hot: number[] = [];
    // Hot = still in the LRU: the most recently touched CACHE_MAX endpoints.
    const hotFrom = touched - Math.min(touched, CACHE_MAX);
    for (let k = 0; k < samples; k++) hot.push(await timeOne(pool, hotFrom + Math.floor((k * (touched - hotFrom)) / samples)));
    await new Promise((r) => setTimeout(r, 1000));
    const rss = rssMiB(gw.child.pid!);
    const probe = new Redis(redisUrl);
    const info = await probe.info('memory');
    await probe.quit();
    const redisMiB = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0) / 1024 / 1024;
    return {
      endpoints,
      touched,
      rssMiB: rss,
      redisMiB,
      coldP50: percentile(cold, 50),
      coldP99: percentile(cold, 99),
      hotP50: percentile(hot, 50),
      hotP99: percentile(hot, 99),
      touchSeconds,
    };
  } finally {
    await pool.close();
    await gw.stop();
  }
}
