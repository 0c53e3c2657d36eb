import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { startSentinelSet, type SentinelSet } from '../support/redis-sentinel.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { eventually, sleep } from '../support/eventually.js';

/**
 * Redis high availability: two gateway instances on `redis+sentinel://` with a real master,
 * replica and three sentinels. The master is SIGKILLed under proxied traffic and a stream of
 * admin writes: no proxied request fails, every acknowledged write survives on the promoted
 * replica, writes resume within 20 s, and pub/sub keeps carrying changes afterwards.
 */
describe('Redis Sentinel failover (real master, replica and three sentinels)', () => {
  let set: SentinelSet;
  let a: TestGateway;
  let b: TestGateway;
  let one: TestUpstream;
  let two: TestUpstream;

  beforeAll(async () => {
    set = await startSentinelSet();
    const env = { REDIS_URL: set.url, RESYNC_INTERVAL_MS: '60000' };
    a = await startTestGateway(env);
    b = await startTestGateway(env);
    one = await startUpstream(undefined, { name: 'one' });
    two = await startUpstream(undefined, { name: 'two' });
  }, 60_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await one?.close();
    await two?.close();
    await set?.stop();
  });

  it('accepts the sentinel URL and serves tables written through it', async () => {
    expect(a.running.store.health().up).toBe(true);
    const put = await a.admin('PUT', '/v1/endpoints/ha', { public: true, routes: [{ id: 'r1', url: one.url }] });
    expect(put.status).toBe(201);
    await eventually(async () => (await fetch(`${b.url}/e/ha/`)).status === 200, { timeoutMs: 5000 });
  });

  it('loses no proxied request and no acknowledged admin write when the master is killed', async () => {
    const oldMaster = await set.currentMasterPort();
    let stop = false;
    const proxied = { ok: 0, failed: [] as string[] };
    const traffic = async (gw: TestGateway) => {
      while (!stop) {
        try {
          const res = await fetch(`${gw.url}/e/ha/`);
          await res.arrayBuffer();
          if (res.status === 200) proxied.ok++;
          else proxied.failed.push(`status ${res.status}`);
        } catch (err) {
          proxied.failed.push(String(err));
        }
      }
    };
    const acknowledged: string[] = [];
    const refused: number[] = [];
    let firstRefusedAt = 0;
    let resumedAt = 0;
    let killedAt = 0;
    const writer = async () => {
      for (let i = 0; !stop; i++) {
        const name = `w${i}`;
        const res = await a.admin('PUT', `/v1/endpoints/${name}`, { public: true, routes: [{ id: 'r', url: one.url }] });
        if (res.status === 201) {
          acknowledged.push(name);
          if (killedAt > 0 && firstRefusedAt > 0 && resumedAt === 0) resumedAt = Date.now();
        } else {
          refused.push(res.status);
          if (killedAt > 0 && firstRefusedAt === 0) firstRefusedAt = Date.now();
          await sleep(50);
        }
      }
    };
    const loops = [traffic(a), traffic(a), traffic(b), writer()];
    await sleep(500);
    killedAt = Date.now();
    await set.kill(oldMaster);
    // Writes come back once the sentinels promote the replica and ioredis follows them.
    await eventually(async () => resumedAt > 0 || (firstRefusedAt === 0 && acknowledged.length > 0 && (await set.currentMasterPort()) !== oldMaster), { timeoutMs: 25_000, stepMs: 100 });
    await eventually(async () => (await set.currentMasterPort()) !== oldMaster, { timeoutMs: 25_000, stepMs: 100 });
    const ackedBeforeEnd = acknowledged.length;
    await eventually(() => acknowledged.length > ackedBeforeEnd + 3, { timeoutMs: 20_000, stepMs: 50 });
    stop = true;
    await Promise.all(loops);

    expect(proxied.failed).toEqual([]);
    expect(proxied.ok).toBeGreaterThan(50);
    // Refusals during the switch are 503s the caller can retry, never a false success.
    for (const status of refused) expect(status).toBe(503);
    if (firstRefusedAt > 0) expect(resumedAt - killedAt).toBeLessThan(20_000);

    // Every write the API acknowledged is on the promoted master.
    const listed = await b.admin('GET', '/v1/endpoints');
    expect(listed.status).toBe(200);
    const names = new Set((listed.body.endpoints ?? listed.body).map((e: { name: string }) => e.name));
    const lost = acknowledged.filter((n) => !names.has(n));
    expect(lost).toEqual([]);
  }, 90_000);

  it('keeps delivering changes by pub/sub after the switch', async () => {
    const started = Date.now();
    const put = await a.admin('PUT', '/v1/endpoints/ha/routes', { routes: [{ id: 'r2', url: two.url }] });
    expect(put.status).toBe(200);
    // RESYNC_INTERVAL_MS is 60 s, so only an event can make B switch this fast.
    await eventually(async () => {
      const res = await fetch(`${b.url}/e/ha/`);
      return res.status === 200 && ((await res.json()) as { upstream?: string }).upstream === 'two';
    }, { timeoutMs: 3000, stepMs: 20 });
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
