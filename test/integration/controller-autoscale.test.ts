import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { startTestGateway, TEST_ADMIN_TOKEN, type TestGateway } from '../support/gateway.js';
import { checkResponse } from '../support/openapi-check.js';
import { FIXTURES } from './controller-harness.js';
import { eventually } from '../support/eventually.js';

/**
 * Autoscaling end to end: a whole gateway in this process, real replica processes (the
 * autoscale-server fixture counts its starts in a file), load through the data plane.
 * Windows are a second or two so the tests stay short.
 */

const MODEL = join(FIXTURES, 'autoscale-server');
let gw: TestGateway;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mg-autoscale-'));
  gw = await startTestGateway({ CONTROLLER_ENABLED: 'true', CONTROLLER_PORT_RANGE: '25000-25499', CONTROLLER_WORK_DIR: join(dir, 'work'), HOLD_TIMEOUT_MS: '15000' });
});
afterAll(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function starts(file: string): number {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

async function service(name: string) {
  return (await gw.admin('GET', `/v1/services/${name}`)).body;
}

/** `clients` loops of requests that each take `ms` at the replica, until stop() is called. */
function load(name: string, clients: number, ms: number) {
  const statuses: number[] = [];
  let running = true;
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      try {
        const res = await fetch(`${gw.url}/e/${name}/work?ms=${ms}`);
        await res.arrayBuffer();
        statuses.push(res.status);
      } catch {
        statuses.push(0);
      }
    }
  });
  return {
    statuses,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

function base(name: string, autoscaling: Record<string, unknown>, env: Record<string, string> = {}) {
  return { name, model_folder: MODEL, public: true, env: { START_LOG: join(dir, `${name}.starts`), ...env }, autoscaling };
}

describe('autoscaling', () => {
  it('refuses bad autoscaling input naming each field', async () => {
    const res = await gw.admin(
      'POST',
      '/v1/services',
      base('bad', {
        min_replicas: 3,
        max_replicas: 1,
        target_in_flight: 2,
        stable_window_s: -5,
        panic_window_s: 0,
        rules: [{ metric_source: 'GATEWAY', metric_name: 'in_flight', threshold: 1, comparator: 'bigger', step_size: 1, cooldown_seconds: -1 }],
      }),
    );
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('ADM_INVALID');
    const fields = res.body.error.details.map((d: { field: string }) => d.field);
    expect(fields).toEqual(
      expect.arrayContaining([
        'autoscaling.min_replicas',
        'autoscaling.max_replicas',
        'autoscaling.stable_window_s',
        'autoscaling.panic_window_s',
        'autoscaling.rules.0.comparator',
        'autoscaling.rules.0.cooldown_seconds',
      ]),
    );
    expect((await gw.admin('GET', '/v1/services/bad')).status).toBe(404);
    expect((await gw.admin('GET', '/v1/endpoints/bad')).status).toBe(404);
  });

  it('follows a step of load up and back down without a failed request', async () => {
    const name = 'step';
    await gw.admin('DELETE', `/v1/services/${name}`); // a retried attempt's leftover
    const created = await gw.admin('POST', '/v1/services', base(name, { min_replicas: 1, max_replicas: 4, target_in_flight: 2, stable_window_s: 2, panic_window_s: 1, scale_down_delay_s: 1 }));
    expect(created.status).toBe(201);
    expect(created.body.autoscaling).toMatchObject({ min_replicas: 1, max_replicas: 4, target_in_flight: 2, scale_to_zero_grace_s: 30, status: { desired: 1 } });
    await eventually(async () => (await service(name)).status === 'HEALTHY', { what: 'step HEALTHY', timeoutMs: 20_000, stepMs: 100 });

    const traffic = load(name, 6, 250);
    const up = await eventually(async () => {
      const s = await service(name);
      return s.healthy_replicas >= 3 ? s : null;
    }, { what: 'three healthy replicas', timeoutMs: 30_000, stepMs: 100 });
    expect(up.autoscaling.status.desired).toBeGreaterThanOrEqual(3);
    expect(up.autoscaling.status.last_decision).toMatchObject({ from: expect.any(Number), to: expect.any(Number), reason: expect.any(String), at: expect.any(String) });
    await traffic.stop();

    const down = await eventually(async () => {
      const s = await service(name);
      return s.autoscaling.status.desired === 1 && s.routes.length === 1 ? s : null;
    }, { what: 'back to one replica', timeoutMs: 30_000, stepMs: 100 });
    expect(down.status).toBe('HEALTHY');
    expect(traffic.statuses.length).toBeGreaterThanOrEqual(6);
    expect(traffic.statuses.filter((s) => s !== 200)).toEqual([]);

    // The live answers match the OpenAPI document.
    const doc = (await fetch(`${gw.adminUrl}/openapi.json`).then((r) => r.json())) as Record<string, unknown>;
    const eventsRes = await gw.admin('GET', `/v1/services/${name}/events`);
    expect(checkResponse(doc, '/v1/services/{name}/events', 'GET', eventsRes.status, eventsRes.body)).toEqual([]);
    expect(checkResponse(doc, '/v1/services/{name}', 'GET', 200, down)).toEqual([]);
    const events = eventsRes.body.events;
    const scales = events.filter((e: { kind: string }) => e.kind === 'scale');
    expect(scales.length).toBeGreaterThanOrEqual(2);
    // Newest first.
    expect(Date.parse(events[0].at)).toBeGreaterThanOrEqual(Date.parse(events[events.length - 1].at));
    expect(events.some((e: { kind: string }) => e.kind === 'health')).toBe(true);

    const metrics = await fetch(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${'test-admin-token-0123456789'}` } }).then((r) => r.text());
    expect(metrics).toMatch(/modelgate_service_desired_replicas\{service="step"\} 1/);
    expect(metrics).toMatch(/modelgate_service_current_replicas\{service="step"\} \d/);
    expect((await gw.admin('DELETE', `/v1/services/${name}`)).status).toBe(204);
  }, 90_000);

  it('drains a replica until its last request is done, beyond the drain grace', async () => {
    const name = 'drain';
    await gw.admin('DELETE', `/v1/services/${name}`); // a retried attempt's leftover
    const autoscaling = { min_replicas: 1, max_replicas: 2, target_in_flight: 1, stable_window_s: 1, panic_window_s: 1, scale_down_delay_s: 10 };
    await gw.admin('POST', '/v1/services', base(name, autoscaling));
    await eventually(async () => (await service(name)).status === 'HEALTHY', { what: 'drain HEALTHY', timeoutMs: 20_000, stepMs: 100 });
    const traffic = load(name, 3, 300);
    await eventually(async () => (await service(name)).healthy_replicas === 2, { what: 'two healthy replicas', timeoutMs: 30_000, stepMs: 100 });
    await traffic.stop();
    // Long requests on both replicas (the balancer spreads by outstanding requests).
    const long = [0, 1, 2, 3].map(() => fetch(`${gw.url}/e/${name}/work?ms=6000`).then(async (r) => ({ status: r.status, body: await r.text() })));
    await eventually(async () => (await service(name)).routes.every((r: { pid: number }) => r.pid !== null), { what: 'both running', timeoutMs: 20_000, stepMs: 100 });
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    // A lower max takes the count to 1 at once: the newest replica drains with a request in flight.
    expect((await gw.admin('PATCH', `/v1/services/${name}`, { autoscaling: { ...autoscaling, max_replicas: 1 } })).status).toBe(200);
    const results = await Promise.all(long);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(new Set(results.map((r) => JSON.parse(r.body).pid)).size).toBe(2);
    await eventually(async () => (await service(name)).routes.length === 1, { what: 'one replica left', timeoutMs: 20_000, stepMs: 100 });
    // The drained replica lived past the 3 s grace until its request was done (~5.5 s).
    expect(Date.now() - t0).toBeGreaterThan(4_000);
    expect((await gw.admin('DELETE', `/v1/services/${name}`)).status).toBe(204);
  }, 60_000);

  it('panics on a burst: scales up from the short window at once', async () => {
    const name = 'burst';
    await gw.admin('DELETE', `/v1/services/${name}`); // a retried attempt's leftover
    await gw.admin('POST', '/v1/services', base(name, { min_replicas: 1, max_replicas: 5, target_in_flight: 1, stable_window_s: 30, panic_window_s: 2, scale_down_delay_s: 30 }));
    await eventually(async () => (await service(name)).status === 'HEALTHY', { what: 'burst HEALTHY', timeoutMs: 20_000, stepMs: 100 });
    const traffic = load(name, 8, 400);
    const s = await eventually(async () => {
      const v = await service(name);
      return v.autoscaling.status.desired >= 4 ? v : null;
    }, { what: 'panic scale-up', timeoutMs: 20_000, stepMs: 100 });
    await traffic.stop();
    const events = (await gw.admin('GET', `/v1/services/${name}/events`)).body.events;
    expect(events.some((e: { kind: string; reason?: string }) => e.kind === 'scale' && e.reason?.startsWith('panic'))).toBe(true);
    expect(s.autoscaling.status.panicking).toBe(true);
    expect(traffic.statuses.filter((x) => x !== 200)).toEqual([]);
    expect((await gw.admin('DELETE', `/v1/services/${name}`)).status).toBe(204);
  }, 60_000);

  it('imports seed-style rules: a scraped Prometheus metric over its threshold steps up to the rule bound', async () => {
    const name = 'rules';
    await gw.admin('DELETE', `/v1/services/${name}`); // a retried attempt's leftover
    const metricFile = join(dir, 'waiting');
    writeFileSync(metricFile, '0');
    const res = await gw.admin(
      'POST',
      '/v1/services',
      base(
        name,
        {
          min_replicas: 1,
          max_replicas: 5,
          scale_down_delay_s: 0,
          rules: [
            { metric_source: 'PROMETHEUS', metric_name: 'test_waiting', threshold: 5, comparator: 'gt', step_size: 2, cooldown_seconds: 1, min_replicas: 1, max_replicas: 3 },
            { metric_source: 'PROMETHEUS', metric_name: 'test_waiting', threshold: 1, comparator: 'lt', step_size: -1, cooldown_seconds: 1 },
            { metric_source: 'REPLICA', metric_name: 'memory_bytes', threshold: 1e12, comparator: 'ge', step_size: 1, cooldown_seconds: 60 },
          ],
        },
        { METRIC_FILE: metricFile },
      ),
    );
    expect(res.status).toBe(201);
    expect(res.body.autoscaling.rules).toHaveLength(3);
    await eventually(async () => (await service(name)).status === 'HEALTHY', { what: 'rules HEALTHY', timeoutMs: 20_000, stepMs: 100 });
    writeFileSync(metricFile, '10');
    const up = await eventually(async () => {
      const s = await service(name);
      return s.healthy_replicas === 3 ? s : null;
    }, { what: 'three replicas from the rule', timeoutMs: 30_000, stepMs: 100 });
    // +2 from 1 → 3, then clamped at the rule's max (3) rather than skipped.
    expect(up.autoscaling.status.desired).toBe(3);
    const events = (await gw.admin('GET', `/v1/services/${name}/events`)).body.events;
    expect(events.find((e: { kind: string }) => e.kind === 'scale').reason).toContain('rule 0 (PROMETHEUS test_waiting 10 gt 5)');
    writeFileSync(metricFile, '0');
    await eventually(async () => (await service(name)).autoscaling.status.desired === 1, { what: 'scale-in rule', timeoutMs: 20_000, stepMs: 100 });
    expect((await gw.admin('DELETE', `/v1/services/${name}`)).status).toBe(204);
  }, 90_000);

  it('scales to zero when idle and wakes with exactly one start for 20 concurrent requests', async () => {
    const name = 'sleepy';
    await gw.admin('DELETE', `/v1/services/${name}`); // a retried attempt's leftover
    const startLog = join(dir, `${name}.starts`);
    await gw.admin('POST', '/v1/services', base(name, { min_replicas: 0, max_replicas: 3, target_in_flight: 10, stable_window_s: 2, panic_window_s: 1, scale_down_delay_s: 0, scale_to_zero_grace_s: 1 }, { START_DELAY_MS: '700' }));
    // Starts with one replica (the model is seen to start), then idles to zero after the grace.
    const idle = await eventually(async () => {
      const s = await service(name);
      return s.status === 'IDLE' && s.routes.length === 0 ? s : null;
    }, { what: 'IDLE', timeoutMs: 20_000, stepMs: 100 });
    expect(idle.replicas).toBe(0);
    expect(idle.routes).toEqual([]);
    expect(idle.autoscaling.status).toMatchObject({ desired: 0, current: 0 });
    const before = starts(startLog);

    const responses = await Promise.all(Array.from({ length: 20 }, () => fetch(`${gw.url}/e/${name}/work?ms=50`).then(async (r) => ({ status: r.status, body: await r.text() }))));
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(starts(startLog)).toBe(before + 1);
    const pids = new Set(responses.map((r) => JSON.parse(r.body).pid));
    expect(pids.size).toBe(1);
    const events = (await gw.admin('GET', `/v1/services/${name}/events`)).body.events;
    expect(events.some((e: { kind: string; reason?: string; from?: number }) => e.kind === 'scale' && e.from === 0 && e.reason?.startsWith('wake'))).toBe(true);
    expect((await gw.admin('DELETE', `/v1/services/${name}`)).status).toBe(204);
  }, 60_000);
});

describe('modelgate service autoscale', () => {
  function cli(...args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), env: { DATA_DIR: '' } };
    return runCli([...args, '--admin-url', gw.adminUrl, '--admin-token', TEST_ADMIN_TOKEN], io).then((code) => ({ code, out: out.join(''), err: err.join('') }));
  }

  it('turns autoscaling on with imported rules, shows it, lists events, and turns it off', async () => {
    const name = 'cli';
    await gw.admin('DELETE', `/v1/services/${name}`); // a retried attempt's leftover
    expect((await gw.admin('POST', '/v1/services', { name, model_folder: MODEL, replicas: 1 })).status).toBe(201);
    await eventually(async () => (await service(name)).status === 'HEALTHY', { what: 'cli HEALTHY', timeoutMs: 20_000, stepMs: 100 });
    const rulesFile = join(dir, 'rules.json');
    writeFileSync(rulesFile, JSON.stringify([{ metric_source: 'GATEWAY', metric_name: 'rps', threshold: 100, comparator: 'ge', step_size: 1, cooldown_seconds: 60, min_replicas: 1, max_replicas: 2 }]));
    const on = await cli('service', 'autoscale', name, '--min', '1', '--max', '2', '--target', '4', '--stable-window', '10', '--rules-file', rulesFile);
    expect(on.err).toBe('');
    expect(on.code).toBe(0);
    expect(on.out).toContain('autoscaling: 1-2 replicas, target 4 in flight per replica; desired 1');
    const view = await service(name);
    expect(view.autoscaling).toMatchObject({ min_replicas: 1, max_replicas: 2, target_in_flight: 4, stable_window_s: 10, panic_window_s: 6, rules: [{ metric_name: 'rps', comparator: 'ge' }] });
    expect((await gw.admin('GET', `/v1/endpoints/${name}`)).body.autoscaled).toBe(true);

    const bad = await cli('service', 'autoscale', name, '--min', '3', '--max', '2');
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/autoscaling\.min_replicas/);
    expect((await cli('service', 'autoscale', name, '--min', 'x', '--max', '2')).code).toBe(2);

    const events = await cli('service', 'events', name);
    expect(events.code).toBe(0);
    expect(events.out).toMatch(/health\s+replica r-\w+ healthy/);

    const off = await cli('service', 'autoscale', name, '--off', '--json');
    expect(off.code).toBe(0);
    expect(JSON.parse(off.out).autoscaling).toBeUndefined();
    await eventually(async () => (await gw.admin('GET', `/v1/endpoints/${name}`)).body.autoscaled === undefined, { what: 'flag cleared', timeoutMs: 20_000, stepMs: 100 });
    expect((await gw.admin('DELETE', `/v1/services/${name}`)).status).toBe(204);
  }, 40_000);
});

describe('a wake that never becomes healthy', () => {
  let short: TestGateway;
  beforeAll(async () => {
    short = await startTestGateway({ CONTROLLER_ENABLED: 'true', CONTROLLER_PORT_RANGE: '25500-25599', CONTROLLER_WORK_DIR: join(dir, 'work-short'), HOLD_TIMEOUT_MS: '1500' });
  });
  afterAll(async () => {
    await short?.stop();
  });

  it('answers held requests 503 GW_NO_HEALTHY_ROUTE with Retry-After past HOLD_TIMEOUT_MS', async () => {
    const name = 'never';
    await short.admin('DELETE', `/v1/services/${name}`); // a retried attempt's leftover
    const startLog = join(dir, `${name}.starts`);
    const created = await short.admin('POST', '/v1/services', {
      ...base(name, { min_replicas: 0, max_replicas: 2, target_in_flight: 10, stable_window_s: 1, panic_window_s: 1, scale_down_delay_s: 0, scale_to_zero_grace_s: 3 }, { NEVER_HEALTHY: '1' }),
    });
    expect(created.status).toBe(201);
    await eventually(async () => (await short.admin('GET', `/v1/services/${name}`)).body.status === 'IDLE', { what: 'IDLE', timeoutMs: 20_000, stepMs: 100 });
    const before = starts(startLog);
    const t0 = Date.now();
    const res = await Promise.all(Array.from({ length: 5 }, () => fetch(`${short.url}/e/${name}/work`)));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_400);
    for (const r of res) {
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('GW_NO_HEALTHY_ROUTE');
    }
    // One replica for the five requests (which retries its own start while the service is wanted).
    await eventually(() => starts(startLog) >= before + 1, { what: 'a start', timeoutMs: 20_000, stepMs: 100 });
    const view = (await short.admin('GET', `/v1/services/${name}`)).body;
    expect(view.autoscaling.status.desired).toBe(1);
    expect(view.routes.filter((r: { status: string }) => r.status !== 'terminating')).toHaveLength(1);
    const wakes = (await short.admin('GET', `/v1/services/${name}/events`)).body.events.filter((e: { kind: string; from?: number }) => e.kind === 'scale' && e.from === 0);
    expect(wakes, JSON.stringify((await short.admin('GET', `/v1/services/${name}/events`)).body.events)).toHaveLength(1);
    expect((await short.admin('DELETE', `/v1/services/${name}`)).status).toBe(204);
  }, 40_000);
});
