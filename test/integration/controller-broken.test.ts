import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors/gateway-error.js';
import { FIXTURES, harness, pidAlive, table, type Harness } from './controller-harness.js';
import { eventually } from '../support/eventually.js';

let h: Harness;
let blocker: Server;
beforeAll(async () => {
  h = await harness('23000-23999');
  // port-taken's start command binds this fixed port
  blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(29517, '127.0.0.1', resolve));
});
afterAll(async () => {
  await h?.close();
  await new Promise((resolve) => blocker?.close(resolve));
});

async function createInvalid(fixture: string) {
  try {
    await h.controller.create({ name: `bad-${fixture}`, model_folder: join(FIXTURES, fixture), replicas: 1, public: false, env: {} });
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('ADM_INVALID');
    // nothing was left behind
    expect(await h.store.getEndpointRaw(`bad-${fixture}`)).toBeNull();
    return (err as GatewayError).details!;
  }
  throw new Error('expected ADM_INVALID');
}

/** Creates the service and waits until it settles UNHEALTHY with every route given up. */
async function runToFailure(fixture: string) {
  const name = fixture;
  await h.controller.create({ name, model_folder: join(FIXTURES, fixture), replicas: 1, public: false, env: {} });
  return eventually(() => {
    const view = h.controller.get(name, 50);
    return view.status === 'UNHEALTHY' && view.routes.length === 1 && view.routes[0].status === 'failed_to_start' && view.routes[0].restarts === 1 ? view : null;
  }, { what: `${fixture} UNHEALTHY`, timeoutMs: 20_000 });
}

describe('broken model folders', () => {
  it('missing definition file: ADM_INVALID naming the folder', async () => {
    expect(await createInvalid('missing-file')).toEqual([{ field: 'model_folder', message: expect.stringContaining('no model-definition.yaml or model-definition.yml') }]);
  });

  it('YAML syntax error: ADM_INVALID with the line', async () => {
    const details = await createInvalid('yaml-syntax');
    expect(details[0]).toEqual({ field: 'model_definition', message: expect.stringMatching(/^YAML syntax error at line \d+, column \d+/) });
  });

  it('unknown action: ADM_INVALID naming its YAML path', async () => {
    expect(await createInvalid('unknown-action')).toEqual([
      { field: 'models[0].service.pre_start_actions[0].action', message: expect.stringContaining('unknown action "download_weights"') },
    ]);
  });

  it('a port already taken: failed_to_start with the process error', async () => {
    const view = await runToFailure('port-taken');
    expect(view.routes[0].last_error).toMatch(/process exited with code 1 before becoming healthy; last output: .*Address already in use/);
    expect((await table(h.store, 'port-taken'))?.routes.every((r) => r.status !== 'healthy')).toBe(true);
  });

  it('a command not on PATH: failed_to_start naming the command', async () => {
    const view = await runToFailure('not-on-path');
    expect(view.routes[0].last_error).toBe('command not found: modelgate-no-such-command-xyz (ENOENT)');
    expect(view.routes[0].pid).toBeNull();
  });

  it('a command that exits at once: failed_to_start with its exit code and output', async () => {
    const view = await runToFailure('exits-at-once');
    expect(view.routes[0].last_error).toMatch(/process exited with code 3 before becoming healthy; last output: fatal: cannot load model/);
  });

  it('a health path returning 500: failed_to_start after the health window, process stopped', async () => {
    const seen: number[] = [];
    const watcher = setInterval(() => {
      const pid = h.controller.list().find((s) => s.name === 'health-500')?.routes[0]?.pid;
      if (pid) seen.push(pid);
    }, 50);
    const view = await runToFailure('health-500');
    clearInterval(watcher);
    expect(view.routes[0].last_error).toMatch(/health check did not pass within 1\.4 s .*returned HTTP 500, expected 200/);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.filter(pidAlive)).toEqual([]);
  });

  it('a replica hanging on start: failed_to_start, its whole process group killed', async () => {
    const view = await runToFailure('hangs-on-start');
    expect(view.routes[0].last_error).toMatch(/health check did not pass within 1\.4 s .*ECONNREFUSED/);
    const { execSync } = await import('node:child_process');
    await eventually(() => !execSync('ps -eo args').toString().split('\n').some((l) => /^sleep 60[01]$/.test(l.trim())), { what: 'sleep children gone', timeoutMs: 5_000 });
  });

  it('clear error and retry re-reads the definition and starts again', async () => {
    const before = h.controller.get('exits-at-once');
    const cleared = await h.controller.clearErrors('exits-at-once');
    expect(cleared.routes.find((r) => r.id === before.routes[0].id)).toBeUndefined();
    const retried = await eventually(() => {
      const v = h.controller.get('exits-at-once');
      return v.routes.length === 1 && v.routes[0].id !== before.routes[0].id && v.routes[0].status === 'failed_to_start' ? v : null;
    }, { what: 'retried', timeoutMs: 20_000 });
    expect(retried.routes[0].last_error).toMatch(/code 3/);
  });

  it('the controller keeps working: a good service still runs beside the broken ones', async () => {
    await h.controller.create({ name: 'good', model_folder: join(FIXTURES, '../../../config/examples/simple-http-server'), replicas: 1, public: true, env: {} });
    await eventually(() => h.controller.get('good').status === 'HEALTHY', { what: 'good HEALTHY', timeoutMs: 20_000 });
    for (const name of ['port-taken', 'not-on-path', 'exits-at-once', 'health-500', 'hangs-on-start', 'good']) await h.controller.terminate(name);
    expect(h.controller.list()).toEqual([]);
  });
});
