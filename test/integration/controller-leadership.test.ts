import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnGateway, type SpawnedGateway } from '../support/gateway.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { eventually } from '../support/eventually.js';
import { EXAMPLES, FIXTURES, pidAlive } from './controller-harness.js';

function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 20_000): Promise<NonNullable<T>> {
  return eventually(probe, { what, timeoutMs, stepMs: 100 });
}

/**
 * Two gateway processes with controllers on one real Redis: one leads (the lease), replicas
 * exist exactly once, a kill -9 of the leader is survived within the lease time, and the new
 * leader adopts the running replicas (same pids) instead of restarting them.
 */

let redis: RedisServer;
let workDir: string;
const gateways: SpawnedGateway[] = [];
const LEASE_MS = 4000;

function env(): Record<string, string> {
  return {
    REDIS_URL: redis.url,
    CONTROLLER_ENABLED: 'true',
    CONTROLLER_LEASE_MS: String(LEASE_MS),
    CONTROLLER_PORT_RANGE: '25000-25999',
    // Both instances stand for one machine: same work directory, as on one host.
    CONTROLLER_WORK_DIR: workDir,
    HOLD_TIMEOUT_MS: '10000',
  };
}

async function start(): Promise<SpawnedGateway> {
  const gw = await spawnGateway(env());
  gateways.push(gw);
  return gw;
}

beforeAll(async () => {
  redis = await startRedis();
  workDir = mkdtempSync(join(tmpdir(), 'mg-lead-'));
});

afterAll(async () => {
  for (const gw of gateways) if (gw.child.exitCode === null) await gw.stop('SIGKILL').catch(() => undefined);
  // Replicas outlive gateways by design; the test cleans up what it made.
  const r = new Redis(redis.url);
  try {
    for (const name of ['lead-web', 'lead-slow']) for (const ref of await publishedRefs(r, name)) if (ref.pid) try { process.kill(-ref.pid, 'SIGKILL'); } catch {}
  } finally {
    r.disconnect();
  }
  await redis?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

interface PublishedRef {
  pid?: number;
  starting?: boolean;
}

/** The replicas the leader published for the next leader to adopt (read straight from Redis). */
async function publishedRefs(r: Redis, service: string): Promise<PublishedRef[]> {
  const raw = await r.get(`mg:service-status:${service}`);
  return raw ? Object.values((JSON.parse(raw) as { refs: Record<string, PublishedRef> }).refs) : [];
}

async function leaderOf(gws: SpawnedGateway[]): Promise<{ leader: SpawnedGateway; follower: SpawnedGateway }> {
  return waitFor(async () => {
    const infos = await Promise.all(gws.map((g) => g.admin('GET', '/v1/controller')));
    const leading = infos.filter((i) => i.body?.is_leader === true);
    if (leading.length !== 1) return null;
    const leader = gws[infos.indexOf(leading[0])];
    return { leader, follower: gws.find((g) => g !== leader)! };
  }, 'exactly one leader', 20_000);
}

describe('controller leadership on one Redis', () => {
  it('runs exactly N replicas, takes over after kill -9 within the lease time and adopts them', async () => {
    const a = await start();
    const b = await start();
    const { leader, follower } = await leaderOf([a, b]);
    const info = (await follower.admin('GET', '/v1/controller')).body;
    expect(info).toMatchObject({ mode: 'lease', is_leader: false, leader: (await leader.admin('GET', '/v1/controller')).body.instance });

    // Created through the follower: it writes the desired state, the leader starts the replicas.
    const created = await follower.admin('POST', '/v1/services', { name: 'lead-web', model_folder: join(EXAMPLES, 'simple-http-server'), replicas: 2, public: true });
    expect(created.status).toBe(201);
    const healthy = await waitFor(async () => {
      const res = await follower.admin('GET', '/v1/services/lead-web');
      return res.body.status === 'HEALTHY' && res.body.routes.length === 2 && res.body.routes.every((r: { status: string }) => r.status === 'healthy') ? res.body : null;
    }, 'lead-web healthy (seen from the follower)', 30_000);
    const pids = healthy.routes.map((r: { pid: number }) => r.pid).sort();
    expect(healthy.routes[0]).toMatchObject({ runtime: 'process', host: '127.0.0.1', node: expect.any(String) });
    // Exactly N: both instances agree, and nothing else was started.
    const fromLeader = (await leader.admin('GET', '/v1/services/lead-web')).body;
    expect(fromLeader.routes.map((r: { pid: number }) => r.pid).sort()).toEqual(pids);
    for (const pid of pids) expect(pidAlive(pid)).toBe(true);
    const page = await fetch(`${follower.url}/e/lead-web/`);
    expect(page.status).toBe(200);

    // Scale through the follower: the leader acts on the store event.
    expect((await follower.admin('PATCH', '/v1/services/lead-web', { replicas: 3 })).status).toBe(200);
    const three = await waitFor(async () => {
      const res = await leader.admin('GET', '/v1/services/lead-web');
      return res.body.healthy_replicas === 3 && res.body.routes.length === 3 ? res.body : null;
    }, 'three replicas', 30_000);
    const pids3 = three.routes.map((r: { pid: number }) => r.pid).sort();
    expect(pids3).toEqual(expect.arrayContaining(pids));
    // The next leader adopts what the leader published, which follows its own view by a store
    // write: wait until the follower sees all three healthy before the kill.
    await waitFor(async () => {
      const res = await follower.admin('GET', '/v1/services/lead-web');
      const seenPids = res.body.routes?.map((r: { pid: number }) => r.pid).sort() ?? [];
      return res.body.healthy_replicas === 3 && JSON.stringify(seenPids) === JSON.stringify(pids3) ? true : null;
    }, 'three replicas published (seen from the follower)', 30_000);

    // kill -9 of the leader: the follower takes over within the lease time (plus slack for a busy machine).
    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    await leader.exited;
    await waitFor(async () => ((await follower.admin('GET', '/v1/controller')).body.is_leader ? true : null), 'follower leads', 20_000);
    expect(Date.now() - killedAt).toBeLessThan(LEASE_MS + 5_000);

    // Adopted, not restarted: the same processes serve, and no new ones appear.
    const adopted = await waitFor(async () => {
      const res = await follower.admin('GET', '/v1/services/lead-web');
      return res.body.status === 'HEALTHY' && res.body.routes.length === 3 ? res.body : null;
    }, 'adopted service healthy', 20_000);
    expect(adopted.routes.map((r: { pid: number }) => r.pid).sort()).toEqual(pids3);
    expect(adopted.routes.every((r: { restarts: number }) => r.restarts === 0)).toBe(true);
    const again = await fetch(`${follower.url}/e/lead-web/`);
    expect(again.status).toBe(200);

    // A dead adopted replica is restarted by the new leader (only that one).
    process.kill(-pids3[0], 'SIGKILL');
    const healed = await waitFor(async () => {
      const res = await follower.admin('GET', '/v1/services/lead-web');
      const now = res.body.routes.map((r: { pid: number }) => r.pid);
      return res.body.healthy_replicas === 3 && !now.includes(pids3[0]) ? now : null;
    }, 'dead replica replaced', 30_000);
    expect(healed).toEqual(expect.arrayContaining(pids3.slice(1)));

    // A third instance joins as a follower and sees the same state.
    const c = await start();
    expect((await c.admin('GET', '/v1/controller')).body.is_leader).toBe(false);
    const seen = (await c.admin('GET', '/v1/services/lead-web')).body;
    expect(seen.routes.map((r: { pid: number }) => r.pid).sort()).toEqual([...healed].sort());

    // Delete through the new follower: the leader stops the replicas and removes the endpoint.
    expect((await c.admin('DELETE', '/v1/services/lead-web')).status).toBe(204);
    await waitFor(async () => ((await c.admin('GET', '/v1/services/lead-web')).status === 404 ? true : null), 'service gone', 20_000);
    await waitFor(() => (healed.every((pid: number) => !pidAlive(pid)) ? true : null), 'replicas stopped', 20_000);
  }, 180_000);

  it('adopts a replica that was still starting when the leader died, instead of starting another', async () => {
    // Fresh instances: the first test's survivors step down first.
    for (const gw of gateways.splice(0)) if (gw.child.exitCode === null) await gw.stop();
    const a = await start();
    const b = await start();
    const { leader, follower } = await leaderOf([a, b]);
    const r = new Redis(redis.url);
    try {
      const created = await follower.admin('POST', '/v1/services', { name: 'lead-slow', model_folder: join(FIXTURES, 'slow-start'), replicas: 1, public: true });
      expect(created.status).toBe(201);
      // Published as soon as its process runs, 12 s before it answers its health check.
      const ref = await waitFor(async () => {
        const refs = await publishedRefs(r, 'lead-slow');
        return refs.length === 1 && refs[0].starting === true && refs[0].pid ? refs[0] : null;
      }, 'starting replica published', 20_000);
      expect(pidAlive(ref.pid!)).toBe(true);

      leader.child.kill('SIGKILL');
      await leader.exited;
      await waitFor(async () => ((await follower.admin('GET', '/v1/controller')).body.is_leader ? true : null), 'follower leads', 20_000);

      // The new leader waits for the same process instead of killing it and loading the model again.
      const healthy = await waitFor(async () => {
        const res = await follower.admin('GET', '/v1/services/lead-slow');
        return res.body.status === 'HEALTHY' ? res.body : null;
      }, 'the adopted replica healthy', 40_000);
      expect(healthy.routes.map((x: { pid: number }) => x.pid)).toEqual([ref.pid]);
      expect(healthy.routes[0].restarts).toBe(0);
      expect(await (await fetch(`${follower.url}/e/lead-slow/`)).text()).toBe('ready');
      await waitFor(async () => {
        const refs = await publishedRefs(r, 'lead-slow');
        return refs.length === 1 && refs[0].pid === ref.pid && refs[0].starting === undefined ? true : null;
      }, 'the replica published as healthy by the new leader', 10_000);

      expect((await follower.admin('DELETE', '/v1/services/lead-slow')).status).toBe(204);
      await waitFor(() => (!pidAlive(ref.pid!) ? true : null), 'replica stopped', 20_000);
    } finally {
      r.disconnect();
    }
  }, 120_000);
});
