/**
 * `npm run bench` (about 8 minutes) / `npm run bench -- --quick` (under 2 minutes) /
 * `npm run bench -- --profile` (a CPU profile of the public endpoint under load, summarised) /
 * `npm run bench -- failover` (one of three routes killed and restarted under load) /
 * `npm run bench -- scale` (memory and lookups with up to 1,000,000 endpoints in Redis, bench/scale.ts) /
 * `npm run bench -- traffic` (the hot-path cost of caps, rate limits and metering, bench/traffic.ts) /
 * `npm run bench -- autoscale [--ramp-seconds 180]` (burst → new replica, failed requests over a ramp) /
 * `npm run bench -- side-by-side [--base REV] [--path /16k]` (two builds' CPU per request under one load, bench/side-by-side.ts).
 *
 * Every system runs in its own process against the same upstream process, on loopback. Systems
 * are primed, then measured in alternating rounds (rotated order) and the median of the rounds
 * is reported; ratios are only ever taken within one run. Writes bench/results/latest.md
 * (bench/results/quick.md for --quick).
 */
import { execSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { TokenIssuer } from '../src/auth/issuer.js';
import { startRedis } from '../test/support/redis-server.js';
import { buildGateway, fixedRate, killAll, median, ROOT, spawnGateway, spawnScript, TOKEN_SECRET, type Gateway } from './lib.js';
import { closedLoop, type Sample, type Target } from './load.js';
import { measurePropagation } from './propagation.js';
import { CACHE_MAX, measureScale, writeEndpoints, type ScaleRow } from './scale.js';
import { measureSse } from './sse.js';
import { profile } from './profile.js';
import { pinned, type PinnedOptions } from './pinned.js';

const quick = process.argv.includes('--quick');
const C = quick
  ? { warm: 1, round: 1, rounds: 4, connections: 50, latencySeconds: 2, sse: 100, scale: [1_000, 100_000], touch: 5_000, lookups: 100, changes: 50 }
  : { warm: 3, round: 2, rounds: 8, connections: 50, latencySeconds: 5, sse: 300, scale: [1_000, 100_000, 1_000_000], touch: 100_000, lookups: 300, changes: 200 };

const PINNED: PinnedOptions = quick ? { rounds: 1, seconds: 3, rate: 2000, rateSeconds: 3, sse: 20 } : { rounds: 3, seconds: 5, rate: 2000, rateSeconds: 5, sse: 30 };

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
const pass = (ok: boolean) => (ok ? '**pass**' : '**miss**');

async function gatewaySystem(name: string, upstream: string, env: Record<string, string>, privateToo = false): Promise<{ gw: Gateway; pub: Target; priv?: Target }> {
  const gw = await spawnGateway(env);
  const origin = `http://127.0.0.1:${gw.port}`;
  const put = await gw.admin('PUT', '/v1/endpoints/bench', { public: true, routes: [{ id: 'u', url: upstream }] });
  if (put.status >= 300) throw new Error(`PUT bench: ${put.status} ${JSON.stringify(put.body)}`);
  const pub: Target = { name, origin, path: '/', headers: { host: 'bench.localhost' } };
  if (!privateToo) return { gw, pub };
  const putp = await gw.admin('PUT', '/v1/endpoints/benchp', { public: false, routes: [{ id: 'u', url: upstream }] });
  if (putp.status >= 300) throw new Error(`PUT benchp: ${putp.status} ${JSON.stringify(putp.body)}`);
  const issued = await new TokenIssuer(TOKEN_SECRET).issue({ endpointId: putp.body.id, sub: 'bench', exp: Math.floor(Date.now() / 1000) + 3600 });
  return { gw, pub, priv: { name: 'modelgate private', origin, path: '/', headers: { host: 'benchp.localhost', authorization: `BackendAI ${issued.token}` } } };
}

/** Primes every target, then runs `rounds` rotated rounds; returns the median sample per target. */
type Summary = Sample & { rounds: number[] };

async function rounds(targets: Target[], path: string): Promise<Map<string, Summary>> {
  const t = targets.map((x) => ({ ...x, path }));
  for (const x of t) await closedLoop(x, C.warm, C.connections);
  const samples = new Map<string, Sample[]>(t.map((x) => [x.name, []]));
  for (let r = 0; r < C.rounds; r++) {
    for (let k = 0; k < t.length; k++) {
      const x = t[(k + r) % t.length];
      const s = await closedLoop(x, C.round, C.connections);
      samples.get(x.name)!.push(s);
      log(`  ${path} round ${r + 1} ${x.name}: ${fmt(s.rps)} req/s p50 ${s.p50} ms p99 ${s.p99} ms${s.errors ? ` errors ${s.errors}` : ''}`);
    }
  }
  const out = new Map<string, Summary>();
  for (const [name, ss] of samples) {
    out.set(name, {
      rps: median(ss.map((s) => s.rps)),
      p50: median(ss.map((s) => s.p50)),
      p99: median(ss.map((s) => s.p99)),
      errors: ss.reduce((a, s) => a + s.errors, 0),
      rounds: ss.map((s) => Math.round(s.rps)),
    });
  }
  return out;
}

function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown';
  let nproc = String(cpus().length);
  try {
    nproc = execSync('nproc').toString().trim();
  } catch {
    // keep os.cpus()
  }
  return `${nproc} cores (nproc), ${cpu}, Node ${process.version}, ${process.platform} ${process.arch}, ${Math.round(Number(execSync('grep MemTotal /proc/meminfo').toString().split(/\s+/)[1]) / 1024 / 1024)} GiB RAM`;
}

/**
 * Memory and lookups with 1,000 / 100,000 / 1,000,000 endpoints (quick: up to 100,000) written
 * into `redisUrl`, a dedicated redis-server; a fresh gateway per size (bench/scale.ts). Leaves
 * Redis empty.
 */
async function measureScaleRows(redisUrl: string, upUrl: string): Promise<{ md: string[]; summary: string[][] }> {
  const md: string[] = [];
  const summary: string[][] = [];
  const rows: ScaleRow[] = [];
  const client = new Redis(redisUrl);
  let written = 0;
  for (const n of C.scale) {
    const t0 = performance.now();
    await writeEndpoints(client, written, n, upUrl);
    written = n;
    log(`  wrote ${n} endpoints (${fmt((performance.now() - t0) / 1000, 1)} s)`);
    const row = await measureScale(redisUrl, n, C.touch, C.lookups);
    rows.push(row);
    log(`  ${n}: rss ${fmt(row.rssMiB)} MiB, touched ${row.touched} in ${fmt(row.touchSeconds, 1)} s, cold p50 ${fmt(row.coldP50, 3)} ms, hot p50 ${fmt(row.hotP50, 3)} ms`);
  }
  await client.flushall();
  await client.quit();
  md.push(`## Memory and lookups with many endpoints in Redis`, '', `A fresh gateway per row (WORKERS=1, ENDPOINT_CACHE_MAX=${CACHE_MAX}, the default); "touched" endpoints were requested once (each loaded from Redis and compiled; the LRU keeps the last ${CACHE_MAX}); RSS read from /proc after that. Cold = first request for an endpoint (one Redis GET + validation + compile); hot = served from memory. ${C.lookups} sequential requests each.`, '');
  md.push('| endpoints in Redis | touched | gateway RSS MiB | Redis used MiB | cold p50 / p99 ms | hot p50 / p99 ms | touch rate /s |', '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) md.push(`| ${r.endpoints.toLocaleString('en')} | ${r.touched.toLocaleString('en')} | ${fmt(r.rssMiB)} | ${fmt(r.redisMiB)} | ${fmt(r.coldP50, 3)} / ${fmt(r.coldP99, 3)} | ${fmt(r.hotP50, 3)} / ${fmt(r.hotP99, 3)} | ${fmt(r.touched / r.touchSeconds)} |`);
  md.push('');
  const biggest = rows[rows.length - 1];
  summary.push([`gateway RSS with ${biggest.endpoints.toLocaleString('en')} endpoints in Redis (${biggest.touched.toLocaleString('en')} touched, LRU of ${CACHE_MAX.toLocaleString('en')})`, '≤ 200 MB', `${fmt(biggest.rssMiB)} MiB`, pass(biggest.rssMiB * 1.048576 <= 200)]);
  return { md, summary };
}

/** `npm run bench -- scale [--quick]`: the memory and lookup rows alone, into bench/results/scale.md. */
async function scaleOnly(): Promise<void> {
  buildGateway();
  const loadStart = loadavg()[0];
  const upstream = await spawnScript('upstream.ts');
  const redis = await startRedis();
  let scale: { md: string[]; summary: string[][] };
  try {
    scale = await measureScaleRows(redis.url, `http://127.0.0.1:${upstream.port}`);
  } finally {
    await redis.stop();
    await upstream.stop();
  }
  const out = [
    `# modelgate scale benchmark${quick ? ' (quick)' : ''}`,
    '',
    `- machine: ${machine()}`,
    `- date: ${new Date().toISOString()}, command \`npm run bench -- scale${quick ? ' --quick' : ''}\`, 1-minute load average ${loadStart.toFixed(2)} at the start, ${loadavg()[0].toFixed(2)} at the end`,
    '',
    '| figure | target | measured | |',
    '| --- | --- | --- | --- |',
    ...scale.summary.map((r) => `| ${r.join(' | ')} |`),
    '',
    ...scale.md,
  ].join('\n');
  const file = join(ROOT, 'bench/results', quick ? 'scale-quick.md' : 'scale.md');
  writeFileSync(file, out + '\n');
  log(`wrote ${file}`);
}

async function main(): Promise<void> {
  buildGateway();
  if (process.argv.includes('--profile')) {
    await profile();
    return;
  }
  const started = Date.now();
  const loadStart = loadavg()[0];
  log(`machine: ${machine()}`);
  // The headline: the referee's pinned method with `npm start` settings (bench/pinned.ts).
  log('pinned comparison with the bare proxy (wrk, taskset, nginx origin)');
  const head = await pinned(PINNED);
  const md: string[] = [...head.md];
  const summary: string[][] = [...head.summary];
  const upstream = await spawnScript('upstream.ts');
  const upUrl = `http://127.0.0.1:${upstream.port}`;
  const direct: Target = { name: 'upstream direct', origin: upUrl, path: '/', headers: {} };
  const bare = await spawnScript('bare-proxy.ts', { UPSTREAM: upUrl });
  const hono = await spawnScript('hono-proxy.ts', { UPSTREAM: upUrl });
  const bareT: Target = { name: 'bare proxy', origin: `http://127.0.0.1:${bare.port}`, path: '/', headers: {} };
  const honoT: Target = { name: 'hono proxy', origin: `http://127.0.0.1:${hono.port}`, path: '/', headers: {} };
  const one = await gatewaySystem('modelgate public', upUrl, {}, true);
  const logged = await gatewaySystem('modelgate public, access log on', upUrl, { ACCESS_LOG: 'true' });
  let workers: { gw: Gateway; pub: Target } | null = null;
  try {
    workers = await gatewaySystem('modelgate WORKERS=0', upUrl, { WORKERS: '0' });
  } catch (err) {
    log(`WORKERS=0 did not start: ${(err as Error).message}`);
  }
  const systems: Target[] = [direct, bareT, honoT, one.pub, one.priv!, logged.pub, ...(workers ? [workers.pub] : [])];

  log('throughput, 64 B bodies');
  const small = await rounds(systems, '/');
  log('throughput, 16 KiB bodies');
  const big = await rounds([direct, bareT, one.pub, one.priv!], '/16k');

  /**
   * Ratio of two systems as the median of their per-round ratios: both ran within the same
   * round (seconds apart), so load from outside the benchmark cancels out better than in a
   * ratio of medians.
   */
  const ratio = (res: Map<string, Summary>, a: string, b: string) => median(res.get(a)!.rounds.map((r, i) => r / res.get(b)!.rounds[i]));
  const rows = (res: Map<string, Summary>) =>
    [...res].map(([name, s]) => `| ${name} | ${fmt(s.rps)} | ${fmt(ratio(res, name, 'bare proxy') * 100, 1)}% | ${s.p50} | ${s.p99} | ${s.rounds.join(', ')} | ${s.errors} |`);
  md.push(`## Throughput, 64-byte JSON body`, '', `autocannon, ${C.connections} connections, ${C.rounds} rounds of ${C.round} s after ${C.warm} s of priming each, order rotated per round; median of the rounds. "vs bare proxy" is the median of the per-round ratios. Latency from autocannon (whole milliseconds).`, '');
  md.push('| system | req/s | vs bare proxy | p50 ms | p99 ms | rounds (req/s) | errors |', '| --- | ---: | ---: | ---: | ---: | --- | ---: |', ...rows(small), '');
  md.push(`## Throughput, 16 KiB body`, '', '| system | req/s | vs bare proxy | p50 ms | p99 ms | rounds (req/s) | errors |', '| --- | ---: | ---: | ---: | ---: | --- | ---: |', ...rows(big), '');

  const pubRatio = ratio(small, 'modelgate public', 'bare proxy');
  const privRatio = ratio(small, 'modelgate private', 'bare proxy');
  summary.push(['public endpoint throughput vs bare proxy (64 B)', '≥ 85%', `${fmt(pubRatio * 100, 1)}%`, pass(pubRatio >= 0.85)]);
  summary.push(['private endpoint (token) throughput vs bare proxy (64 B)', '≥ 80%', `${fmt(privRatio * 100, 1)}%`, pass(privRatio >= 0.8)]);
  const pub16 = ratio(big, 'modelgate public', 'bare proxy');
  summary.push(['public endpoint throughput vs bare proxy (16 KiB)', '≥ 85%', `${fmt(pub16 * 100, 1)}%`, pass(pub16 >= 0.85)]);
  const honoRatio = ratio(small, 'hono proxy', 'bare proxy');
  const logRatio = ratio(small, 'modelgate public, access log on', 'modelgate public');
  if (workers) {
    const w = ratio(small, 'modelgate WORKERS=0', 'modelgate public');
    md.push(`WORKERS=0 (${cpus().length} workers) vs WORKERS=1: ${fmt(w, 2)}× (median of per-round ratios). On 2 cores the load generator, the upstream and the gateway already share both cores; see docs/performance.md.`, '');
  }
  md.push(`Data-plane framework decision: hono on @hono/node-server proxying with undici ran at ${fmt(honoRatio * 100, 1)}% of the bare node:http + undici proxy in this run; the data plane stays on node:http (hono serves the admin API).`, '');
  md.push(`Access log (ACCESS_LOG=true, pino to a file) ran at ${fmt(logRatio * 100, 1)}% of the same gateway with ACCESS_LOG=false in this run (median of per-round ratios).`, '');

  log('latency at half the maximum rate');
  const rate = Math.round(small.get('modelgate public')!.rps / 2);
  const lat: Record<string, { p50: number[]; p99: number[]; errors: number }> = {};
  const latTargets = [direct, bareT, one.pub, one.priv!];
  for (let r = 0; r < 2; r++) {
    for (const t of latTargets) {
      const res = await fixedRate(t.origin, t.headers, '/', rate, C.latencySeconds);
      const e = (lat[t.name] ??= { p50: [], p99: [], errors: 0 });
      e.p50.push(res.p50);
      e.p99.push(res.p99);
      e.errors += res.errors;
      log(`  ${t.name} @ ${rate}/s: p50 ${fmt(res.p50, 3)} ms p99 ${fmt(res.p99, 3)} ms`);
    }
  }
  const lp = (n: string) => ({ p50: median(lat[n].p50), p99: median(lat[n].p99) });
  md.push(`## Latency at half the maximum rate`, '', `Open loop at ${rate} req/s (half the public endpoint's median), ${C.latencySeconds} s × 2 rounds, each request timed from its scheduled send to its last byte (performance.now()); median of the rounds.`, '');
  md.push('| system | p50 ms | p99 ms | p99 added over direct ms |', '| --- | ---: | ---: | ---: |');
  for (const t of latTargets) md.push(`| ${t.name} | ${fmt(lp(t.name).p50, 3)} | ${fmt(lp(t.name).p99, 3)} | ${t === direct ? '' : fmt(lp(t.name).p99 - lp(direct.name).p99, 3)} |`);
  md.push('');
  const addedPub = lp('modelgate public').p99 - lp(direct.name).p99;
  const addedPriv = lp('modelgate private').p99 - lp(direct.name).p99;
  summary.push(['p99 added over direct at half max rate (public)', '≤ 1 ms', `${fmt(addedPub, 3)} ms`, pass(addedPub <= 1)]);
  summary.push(['p99 added over direct at half max rate (private)', '≤ 1 ms', `${fmt(addedPriv, 3)} ms`, pass(addedPriv <= 1)]);

  log('SSE time to first event');
  const sse = await measureSse(upstream.port, one.gw.port, 'bench.localhost', C.sse);
  md.push(`## SSE time to first event`, '', `${C.sse} streams each, alternating direct and through the gateway, one at a time.`, '');
  md.push('| path | p50 ms | p99 ms |', '| --- | ---: | ---: |', `| direct | ${fmt(sse.directP50, 3)} | ${fmt(sse.directP99, 3)} |`, `| modelgate | ${fmt(sse.gatewayP50, 3)} | ${fmt(sse.gatewayP99, 3)} |`, '');
  const sseAdded = sse.gatewayP50 - sse.directP50;
  summary.push(['first SSE event, added over direct (p50; p99 in brackets)', '≤ 2 ms', `${fmt(sseAdded, 3)} ms (${fmt(sse.gatewayP99 - sse.directP99, 3)} ms)`, pass(sseAdded <= 2)]);

  for (const p of [one.gw, logged.gw, workers?.gw, bare, hono]) await p?.stop();

  log('Redis scale');
  const redis = await startRedis();
  try {
    const scale = await measureScaleRows(redis.url, upUrl);
    md.push(...scale.md);
    summary.push(...scale.summary);

    log('route-change propagation');
    const prop = await measurePropagation(redis.url, C.changes);
    md.push(`## Route-change propagation across instances`, '', `Two gateways on one Redis; ${prop.changes} route changes written through instance A's admin API while a request loop on instance B watches which upstream answers.`, '');
    md.push('| measured from | p50 ms | p99 ms |', '| --- | ---: | ---: |', `| admin call sent on A | ${fmt(prop.fromSendP50, 2)} | ${fmt(prop.fromSendP99, 2)} |`, `| admin call acknowledged by A | ${fmt(prop.fromAckP50, 2)} | ${fmt(prop.fromAckP99, 2)} |`, '');
    summary.push(['route-change propagation p99 (from the admin call)', '≤ 50 ms', `${fmt(prop.fromSendP99, 2)} ms`, pass(prop.fromSendP99 <= 50)]);
  } finally {
    await redis.stop();
  }
  await upstream.stop();

  const out = [
    `# modelgate benchmark${quick ? ' (quick)' : ''}`,
    '',
    `- machine: ${machine()}`,
    `- date: ${new Date().toISOString()}, duration ${Math.round((Date.now() - started) / 1000)} s, command \`npm run bench${quick ? ' -- --quick' : ''}\``,
    `- 1-minute load average: ${loadStart.toFixed(2)} at the start, ${loadavg()[0].toFixed(2)} at the end (other work on the machine shows up here and in the spread of the rounds)`,
    `- every system in its own process, nothing pinned; load generator, upstream and system share the ${cpus().length} cores (ratios are what carry over to other machines, not absolute numbers)`,
    '',
    '## Targets',
    '',
    '| figure | target | measured | |',
    '| --- | --- | --- | --- |',
    ...summary.map((r) => `| ${r.join(' | ')} |`),
    '',
    ...md,
    '## Performance (section text for the README)',
    '',
    `Measured with \`npm run bench\` on ${machine()}, every system in its own process on loopback, ratios taken within one run (full report: [bench/results/latest.md](bench/results/latest.md), method and profile: [docs/performance.md](docs/performance.md)).`,
    '',
    '| figure | target | measured | |',
    '| --- | --- | --- | --- |',
    ...summary.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
  const file = join(ROOT, 'bench/results', quick ? 'quick.md' : 'latest.md');
  writeFileSync(file, out + '\n');
  log(`wrote ${file}`);
}

/** `npm run bench -- pinned`: the pinned comparison alone, into bench/results/pinned.md. */
async function pinnedOnly(): Promise<void> {
  buildGateway();
  const loadStart = loadavg()[0];
  const { md, summary } = await pinned(PINNED);
  const out = [
    `# modelgate pinned benchmark${quick ? ' (quick)' : ''}`,
    '',
    `- machine: ${machine()}`,
    `- date: ${new Date().toISOString()}, command \`npm run bench -- pinned${quick ? ' --quick' : ''}\`, 1-minute load average ${loadStart.toFixed(2)} at the start, ${loadavg()[0].toFixed(2)} at the end`,
    '',
    '| figure | target | measured | |',
    '| --- | --- | --- | --- |',
    ...summary.map((r) => `| ${r.join(' | ')} |`),
    '',
    ...md,
  ].join('\n');
  const file = join(ROOT, 'bench/results', quick ? 'pinned-quick.md' : 'pinned.md');
  writeFileSync(file, out + '\n');
  log(`wrote ${file}`);
}

// `npm run bench -- failover`: the kill-a-route-under-load run (bench/failover.ts) on its own;
// `npm run bench -- autoscale`: burst and load ramp against an autoscaled service (bench/autoscale.ts);
// `npm run bench -- pinned`: the pinned comparison alone (bench/pinned.ts);
// `npm run bench -- scale`: memory and lookups with up to 1,000,000 endpoints in Redis alone (bench/scale.ts);
// `npm run bench -- tls`: TLS HTTP/1.1 and HTTP/2 against nginx with the same certificate (bench/tls.ts);
// `npm run bench -- traffic`: the hot-path cost of caps, rate limits and metering (bench/traffic.ts);
// `npm run bench -- traffic --pinned`: the same cost by the referee's method (bench/traffic-pinned.ts);
// `npm run bench -- traffic --profile [--capped]`: where that cost goes (bench/traffic-profile.ts);
// `npm run bench -- side-by-side [--base REV] [--path /16k]`: two builds' CPU per request under one load (bench/side-by-side.ts).
const run = process.argv.includes('failover')
  ? () => import('./failover.js').then(() => undefined)
  : process.argv.includes('side-by-side')
    ? () => import('./side-by-side.js').then(() => undefined)
    : process.argv.includes('autoscale')
      ? () => import('./autoscale.js').then(() => undefined)
      : process.argv.includes('tls')
        ? () => import('./tls.js').then(() => new Promise<void>(() => {}))
        : process.argv.includes('pinned')
          ? pinnedOnly
          : process.argv.includes('scale')
            ? scaleOnly
            : process.argv.includes('traffic')
              ? () => import(process.argv.includes('--profile') ? './traffic-profile.js' : process.argv.includes('--pinned') ? './traffic-pinned.js' : './traffic.js').then(() => undefined)
              : main;

run().then(
  () => {
    if (run !== main && run !== pinnedOnly && run !== scaleOnly) return;
    process.exit(0);
  },
  (err) => {
    log(`failed: ${(err as Error).stack}`);
    killAll();
    process.exit(1);
  },
);
