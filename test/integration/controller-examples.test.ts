import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, FIXTURES, harness, pidAlive, table, type Harness } from './controller-harness.js';
import { eventually } from '../support/eventually.js';

let h: Harness;
beforeAll(async () => {
  h = await harness('22000-22999');
});
afterAll(async () => {
  await h?.close();
});

const healthy = (name: string) => () => {
  const view = h.controller.get(name);
  return view.status === 'HEALTHY' && view.routes.length === view.replicas && view.routes.every((r) => r.status === 'healthy') ? view : null;
};

describe('controller with the example model folders', () => {
  it('runs simple-http-server with 2 replicas, each answering on its own port, without touching the folder', async () => {
    const created = await h.controller.create({ name: 'web', model_folder: join(EXAMPLES, 'simple-http-server'), replicas: 2, public: true, env: {} });
    expect(created.status).toBe('PROVISIONING');
    const view = await eventually(healthy('web'), { what: 'web HEALTHY', timeoutMs: 20_000 });
    const ports = view.routes.map((r) => r.port);
    expect(new Set(ports).size).toBe(2);
    for (const port of ports) {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('hello from simple-http-server');
    }
    const t = await table(h.store, 'web');
    expect(t?.id).toBe(view.endpoint_id);
    expect(t?.public).toBe(true);
    expect(t?.routes.map((r) => [r.url, r.status, r.weight]).sort()).toEqual(ports.map((p) => [`http://127.0.0.1:${p}`, 'healthy', 1]).sort());
    // pre-start writes under model_path went to the replicas' overlays, not the user's folder
    expect(existsSync(join(EXAMPLES, 'simple-http-server/site'))).toBe(false);
  });

  it('runs the sse-chat server: JSON and streamed SSE replies from each replica', async () => {
    await h.controller.create({ name: 'chat', model_folder: join(EXAMPLES, 'sse-chat'), replicas: 2, public: false, env: { TOKEN_DELAY_MS: '5' } });
    const view = await eventually(healthy('chat'), { what: 'chat HEALTHY', timeoutMs: 20_000 });
    for (const route of view.routes) {
      const base = `http://127.0.0.1:${route.port}`;
      const json = await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) });
      expect(((await json.json()) as any).choices[0].message.content).toContain(`port ${route.port}`);
      const sse = await fetch(`${base}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ stream: true, messages: [{ role: 'user', content: 'hi' }] }) });
      expect(sse.headers.get('content-type')).toBe('text/event-stream');
      const text = await sse.text();
      expect(text.split('\n\n').filter((e) => e.startsWith('data: {')).length).toBeGreaterThan(5);
      expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    }
  });

  it('takes a killed replica out of the table at once and brings it back (restarts + 1)', async () => {
    const before = h.controller.get('web');
    const victim = before.routes[0];
    process.kill(victim.pid!, 'SIGKILL');
    await eventually(async () => {
      const t = await table(h.store, 'web');
      const route = t?.routes.find((r) => r.id === victim.id);
      return !route || route.status !== 'healthy';
    }, { what: 'killed route out of the table', timeoutMs: 5_000 });
    const after = await eventually(() => {
      const view = healthy('web')();
      const route = view?.routes.find((r) => r.id === victim.id);
      return route && route.restarts === 1 ? view : null;
    }, { what: 'web HEALTHY again', timeoutMs: 20_000 });
    const route = after.routes.find((r) => r.id === victim.id)!;
    expect(route.last_error).toMatch(/process exited with signal SIGKILL/);
    expect(route.pid).not.toBe(victim.pid);
    expect((await fetch(`http://127.0.0.1:${route.port}/`)).status).toBe(200);
  });

  it('scales 1 → 3 → 1', async () => {
    await h.controller.patch('web', { replicas: 1 });
    await eventually(() => healthy('web')()?.routes.length === 1, { what: 'scaled to 1', timeoutMs: 20_000 });
    await h.controller.patch('web', { replicas: 3 });
    const three = await eventually(healthy('web'), { what: 'scaled to 3', timeoutMs: 20_000 });
    expect(three.routes).toHaveLength(3);
    expect((await table(h.store, 'web'))?.routes.filter((r) => r.status === 'healthy')).toHaveLength(3);
    await h.controller.patch('web', { replicas: 1 });
    const one = await eventually(() => (healthy('web')()?.routes.length === 1 ? h.controller.get('web') : null), { what: 'scaled back to 1', timeoutMs: 20_000 });
    const gone = three.routes.filter((r) => r.id !== one.routes[0].id);
    expect(gone).toHaveLength(2);
    await eventually(() => gone.every((r) => !pidAlive(r.pid!)), { what: 'removed replicas stopped', timeoutMs: 5_000 });
    expect((await table(h.store, 'web'))?.routes).toHaveLength(1);
  });

  it('rolls an env change one replica at a time, new before old, never without a healthy route', async () => {
    await h.controller.patch('web', { replicas: 2 });
    const before = await eventually(() => (healthy('web')()?.routes.length === 2 ? h.controller.get('web') : null), { what: 'web at 2', timeoutMs: 20_000 });
    let sawNoHealthy = false;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const t = await table(h.store, 'web');
        if (!t || !t.routes.some((r) => r.status === 'healthy' && r.weight > 0)) sawNoHealthy = true;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await h.controller.patch('web', { env: { GREETING: 'v2' } });
    const after = await eventually(() => {
      const view = healthy('web')();
      return view && view.routes.every((r) => r.generation === 2) ? view : null;
    }, { what: 'rolled to generation 2', timeoutMs: 20_000 });
    sampling = false;
    await sampler;
    expect(sawNoHealthy).toBe(false);
    expect(after.routes.map((r) => r.id).some((id) => before.routes.some((b) => b.id === id))).toBe(false);
    expect(after.env).toEqual({ GREETING: 'v2' });
  });

  it('runs a definition with a custom file name, refs, run_command output and mapped paths in bodies', async () => {
    const folder = join(FIXTURES, 'custom-name');
    await h.controller.create({ name: 'custom', model_folder: folder, model_definition_path: 'serving.yaml', replicas: 1, public: true, env: {} });
    const view = await eventually(healthy('custom'), { what: 'custom HEALTHY', timeoutMs: 20_000 });
    expect(await (await fetch(`http://127.0.0.1:${view.routes[0].port}/`)).text()).toBe('replica says hi');
    expect(readFileSync(join(folder, 'greeting.txt'), 'utf8').trim()).toBe('original');
    const log = h.controller.get('custom', 100).routes[0].log_tail!.join('\n');
    expect(log).toMatch(/script at \/.*\/tmp\/tmp[0-9a-f]+\.py; command said ran-in \/.*\/home/);
    expect(log).toContain('[pre-start] out: ran-in');
  });

  it('comes back after a controller restart with the same endpoint id', async () => {
    const before = h.controller.get('web');
    const pids = before.routes.map((r) => r.pid!);
    await h.controller.stop();
    expect(pids.some(pidAlive)).toBe(false);
    const next = h.newController();
    await next.start();
    const after = await eventually(() => {
      const v = next.get('web');
      return v.status === 'HEALTHY' ? v : null;
    }, { what: 'restored web HEALTHY', timeoutMs: 20_000 });
    expect(after.endpoint_id).toBe(before.endpoint_id);
    expect(after.replicas).toBe(before.replicas);
    expect(after.env).toEqual({ GREETING: 'v2' });
    expect((await table(h.store, 'web'))?.id).toBe(before.endpoint_id);
    h.controller = next;
  });

  it('terminates: every process gone, endpoint and record removed', async () => {
    const pids = ['web', 'chat', 'custom'].flatMap((n) => h.controller.get(n).routes.map((r) => r.pid!));
    expect(pids.every(pidAlive)).toBe(true);
    for (const name of ['web', 'chat', 'custom']) expect(await h.controller.terminate(name, { drain: true })).toBe(true);
    expect(pids.filter(pidAlive)).toEqual([]);
    expect(await h.store.getEndpointRaw('web')).toBeNull();
    expect(await h.store.getService('web')).toBeNull();
    expect(h.controller.list()).toEqual([]);
    expect(await h.controller.terminate('web')).toBe(false);
  });
});
