/**
 * Heap cost of upstream pools for a route table with many distinct origins (issue 21 #8):
 * one undici Pool per origin built up front (what the gateway did) versus the PoolRegistry's
 * pools built on first use. Run: `node --expose-gc --import tsx bench/pool-memory.ts [N]`.
 */
import { Pool } from 'undici';
import { PoolRegistry } from '../src/upstream/pool-registry.js';

const N = Number(process.argv[2] ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const origin = (i: number) => `http://10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8000`;
const defaults = { connections: 128, connectTimeoutMs: 5_000, headersTimeoutMs: 300_000, bodyTimeoutMs: 300_000 };
const heap = () => {
  gc();
  return process.memoryUsage().heapUsed;
};

let base = heap();
const eager: Pool[] = [];
for (let i = 0; i < N; i++) {
  const pool = new Pool(origin(i), { connections: 128, pipelining: 1, connect: { timeout: 5_000 }, maxHeaderSize: 64 * 1024 });
  pool.on('connectionError', () => {});
  eager.push(pool);
}
const eagerBytes = heap() - base;
await Promise.all(eager.map((p) => p.close()));
eager.length = 0;

base = heap();
const registry = new PoolRegistry(defaults);
const handles = [];
for (let i = 0; i < N; i++) handles.push(registry.acquire(origin(i)));
const lazyBytes = heap() - base;

const mib = (b: number) => (b / 1024 / 1024).toFixed(1);
console.log(`${N} origins: eager pools ${mib(eagerBytes)} MiB heap, pools on first use ${mib(lazyBytes)} MiB (${registry.open} built, ${handles.length} handles)`);
await registry.closeAll();
