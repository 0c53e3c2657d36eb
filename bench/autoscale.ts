/**
 * Autoscaling under load (`npm run bench -- autoscale`): a real gateway (dist, as `npm start`
 * runs it) with its controller runs the autoscale-server test model as an autoscaled service.
 *
 * 1. Burst: one replica serves a light load; 16 clients suddenly keep requests in flight. We
 *    measure the time from the burst to the first request answered by a new replica (panic
 *    window → decision → process start → health check → route table → served).
 * 2. Ramp: clients ramp 1 → 16 → 1 over the run; every failed request is counted (goal 0)
 *    while the service scales up and back down.
 *
 *   npm run bench -- autoscale                      (ramp 40 s)
 *   npm run bench -- autoscale --ramp-seconds 180   (the 3-minute ramp)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGateway, cliArg, killAll, ROOT, sleep, spawnGateway, type Gateway } from './lib.js';

function arg(name: string, fallback: number): number {
  const v = Number(cliArg(name) ?? NaN);
  return Number.isFinite(v) ? v : fallback;
}
const RAMP_S = arg('ramp-seconds', 40);
const PEAK = arg('clients', 16);
const WORK_MS = arg('work-ms', 200);

const log = (msg: string) => process.stderr.write(`[autoscale ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Outcome {
  at: number;
  status: number;
  pid: number | null;
}

async function call(origin: string, name: string): Promise<Outcome> {
  try {
    const res = await fetch(`${origin}/e/${name}/work?ms=${WORK_MS}`);
    const text = await res.text();
    let pid: number | null = null;
    if (res.status === 200) pid = (JSON.parse(text) as { pid: number }).pid;
    return { at: performance.now(), status: res.status, pid };
  } catch {
    return { at: performance.now(), status: 0, pid: null };
  }
}

/** Closed-loop clients; `target()` says how many should be running now. */
function clients(origin: string, name: string, target: () => number) {
  const outcomes: Outcome[] = [];
  let stopped = false;
  let running = 0;
  const loops: Promise<void>[] = [];
  const spawnLoop = (index: number) =>
    (async () => {
      running++;
      while (!stopped && index < target()) outcomes.push(await call(origin, name));
      running--;
    })();
  const timer = setInterval(() => {
    for (let i = running; i < target(); i++) loops.push(spawnLoop(i));
  }, 100);
  return {
    outcomes,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all(loops);
    },
  };
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function main(): Promise<void> {
  buildGateway();
  const dir = mkdtempSync(join(tmpdir(), 'mg-bench-autoscale-'));
  let gw: Gateway | undefined;
  try {
    gw = await spawnGateway({ CONTROLLER_ENABLED: 'true', CONTROLLER_WORK_DIR: dir, CONTROLLER_PORT_RANGE: '27000-27999', HOLD_TIMEOUT_MS: '30000' });
    const origin = `http://127.0.0.1:${gw.port}`;
    const g = gw;
    const service = async (name: string) => (await g.admin('GET', `/v1/services/${name}`)).body;
    const model = join(ROOT, 'test/fixtures/models/autoscale-server');
    const autoscaling = { min_replicas: 1, max_replicas: 4, target_in_flight: 3, stable_window_s: 10, panic_window_s: 2, scale_down_delay_s: 5, scale_to_zero_grace_s: 30 };

    // ---- 1. burst
    const created = await g.admin('POST', '/v1/services', { name: 'burst', model_folder: model, public: true, autoscaling });
    if (created.status !== 201) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
    await waitFor('burst HEALTHY', async () => (await service('burst')).status === 'HEALTHY');
    const first = (await service('burst')).routes[0].pid as number;
    const light = clients(origin, 'burst', () => 1);
    await sleep(3_000);
    await light.stop();
    log(`burst: ${PEAK} clients on one replica`);
    const t0 = performance.now();
    const burst = clients(origin, 'burst', () => PEAK);
    await waitFor('a new replica serving', async () => burst.outcomes.some((o) => o.pid !== null && o.pid !== first), 60_000);
    const firstNew = burst.outcomes.find((o) => o.pid !== null && o.pid !== first)!;
    const burstMs = firstNew.at - t0;
    await sleep(2_000);
    await burst.stop();
    const burstFailed = burst.outcomes.filter((o) => o.status !== 200).length;
    const burstView = await service('burst');
    log(`burst: first request served by a new replica after ${burstMs.toFixed(0)} ms; ${burstView.autoscaling.status.desired} replicas wanted; ${burstFailed} failed`);
    await g.admin('DELETE', '/v1/services/burst');

    // ---- 2. ramp
    await g.admin('POST', '/v1/services', { name: 'ramp', model_folder: model, public: true, autoscaling });
    await waitFor('ramp HEALTHY', async () => (await service('ramp')).status === 'HEALTHY');
    log(`ramp: 1 → ${PEAK} → 1 clients over ${RAMP_S} s`);
    const start = performance.now();
    const half = (RAMP_S * 1000) / 2;
    const target = () => {
      const t = performance.now() - start;
      const f = t < half ? t / half : Math.max(0, 2 - t / half);
      return Math.max(1, Math.round(1 + f * (PEAK - 1)));
    };
    const ramp = clients(origin, 'ramp', target);
    let peakReplicas = 0;
    while (performance.now() - start < RAMP_S * 1000) {
      await sleep(1_000);
      const v = await service('ramp');
      peakReplicas = Math.max(peakReplicas, v.healthy_replicas);
    }
    await ramp.stop();
    const rampFailed = ramp.outcomes.filter((o) => o.status !== 200);
    const events = (await g.admin('GET', '/v1/services/ramp/events')).body.events as { kind: string }[];
    const decisions = events.filter((e) => e.kind === 'scale').length;
    log(`ramp: ${ramp.outcomes.length} requests, ${rampFailed.length} failed, up to ${peakReplicas} healthy replicas, ${decisions} scaling decisions`);
    await g.admin('DELETE', '/v1/services/ramp');

    const report = [
      '# Autoscaling bench',
      '',
      `\`npm run bench -- autoscale${RAMP_S === 40 ? '' : ` --ramp-seconds ${RAMP_S}`}\` (${new Date().toISOString()}): the autoscale-server test model, ${WORK_MS} ms per request, ${JSON.stringify(autoscaling)}.`,
      '',
      '| figure | goal | measured |',
      '| --- | --- | --- |',
      `| burst (${PEAK} clients) → first request served by a new replica | a few s | ${(burstMs / 1000).toFixed(2)} s |`,
      `| failed requests during the burst | 0 | ${burstFailed} of ${burst.outcomes.length} |`,
      `| failed requests over a ${RAMP_S} s ramp 1 → ${PEAK} → 1 clients | 0 | ${rampFailed.length} of ${ramp.outcomes.length} |`,
      `| healthy replicas at the ramp's peak / scaling decisions | | ${peakReplicas} / ${decisions} |`,
      '',
    ].join('\n');
    const file = join(ROOT, 'bench/results', RAMP_S >= 180 ? 'autoscale.md' : 'autoscale-quick.md');
    writeFileSync(file, report);
    process.stdout.write(report);
    log(`wrote ${file}`);
  } finally {
    await gw?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    log(`failed: ${(err as Error).stack}`);
    killAll();
    process.exit(1);
  },
);
