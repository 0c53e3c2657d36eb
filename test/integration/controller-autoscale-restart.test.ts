import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceController } from '../../src/controller/service-controller.js';
import { FIXTURES, harness, pidAlive, table, type Harness } from './controller-harness.js';
import { eventually } from '../support/eventually.js';

/**
 * A controller that stops in the middle of a scale-up: the next one resumes at the recorded
 * count, starts what is missing, and no process of the first one survives. The load signal is
 * written to the store as a gateway instance would write it (store.publishLoad).
 */

let h: Harness;
beforeAll(async () => {
  h = await harness('25700-25799', { autoscaleIntervalMs: 200 });
});
afterAll(async () => {
  await h?.close();
});

function publish(inFlight: number) {
  return h.store.publishLoad([{ instance: 'gw-a', endpoint: 'resume', in_flight: inFlight, queued: 0, requests: inFlight, p99_ms: 5, interval_ms: 1000 }], 3_000);
}

describe('controller restart during a scale-up', () => {
  it('resumes at the recorded count without leaving processes behind', async () => {
    const startLog = join(h.workDir, 'starts');
    await h.controller.terminate('resume'); // a retried attempt's leftover
    await h.controller.create({
      name: 'resume',
      model_folder: join(FIXTURES, 'autoscale-server'),
      replicas: 1,
      public: true,
      // Slow starts, so the controller is stopped while replicas are still coming up.
      env: { START_LOG: startLog, START_DELAY_MS: '1500' },
      autoscaling: { min_replicas: 1, max_replicas: 4, target_in_flight: 1, stable_window_s: 1, panic_window_s: 1, scale_down_delay_s: 30, scale_to_zero_grace_s: 30, rules: [] },
    });
    await eventually(() => h.controller.get('resume').status === 'HEALTHY', { what: 'first replica healthy', timeoutMs: 20_000, stepMs: 100 });
    // Keep reporting load, as a live gateway does every second.
    const reporter = setInterval(() => void publish(3), 300);
    try {
      await publish(3);
      await eventually(() => h.controller.get('resume').autoscaling?.status.desired === 3, { what: 'decision: 3 replicas', timeoutMs: 20_000, stepMs: 100 });
      await eventually(() => h.controller.get('resume').routes.length === 3, { what: 'three replicas starting', timeoutMs: 20_000, stepMs: 100 });
      const first = h.controller.get('resume');
      expect(first.healthy_replicas).toBeLessThan(3);
      const oldPids = () => h.controller.get('resume').routes.map((r) => r.pid).filter((p): p is number => p !== null);
      await eventually(() => oldPids().length === 3, { what: 'three processes', timeoutMs: 20_000, stepMs: 100 });
      const pids = oldPids();
      await h.controller.stop();
      for (const pid of pids) expect(pidAlive(pid)).toBe(false);

      const second: ServiceController = h.newController();
      await second.start();
      const resumed = second.get('resume');
      expect(resumed.autoscaling?.status.desired).toBe(3);
      const healthy = await eventually(() => {
        const v = second.get('resume');
        return v.healthy_replicas === 3 && v.routes.length === 3 ? v : null;
      }, { what: 'three healthy replicas after the restart', timeoutMs: 30_000, stepMs: 100 });
      expect(healthy.status).toBe('HEALTHY');
      const routes = (await table(h.store, 'resume'))!.routes;
      expect(routes.filter((r) => r.status === 'healthy')).toHaveLength(3);
      expect((await table(h.store, 'resume'))!.autoscaled).toBe(true);
      // Every process the first controller started is gone; the second started its own three.
      for (const pid of pids) expect(pidAlive(pid)).toBe(false);
      const started = readFileSync(startLog, 'utf8').split('\n').filter(Boolean).map(Number);
      const now = healthy.routes.map((r) => r.pid!);
      for (const pid of now) expect(started).toContain(pid);
      for (const pid of now) expect(pids).not.toContain(pid);
      await second.terminate('resume');
    } finally {
      clearInterval(reporter);
    }
  }, 60_000);
});
