import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { startChildUpstream, type ChildUpstream } from '../../support/child-upstream.js';
import { call, metric, type CallResult } from './support.js';
import { eventually, sleep } from '../../support/eventually.js';

interface Replica {
  id: string;
  up: TestUpstream;
  inFlight: number;
  served: number;
}

async function startReplica(id: string): Promise<Replica> {
  const replica: Replica = { id, up: undefined as unknown as TestUpstream, inFlight: 0, served: 0 };
  replica.up = await startUpstream((req, res, body) => {
    replica.inFlight++;
    res.on('close', () => {
      replica.inFlight--;
      replica.served++;
    });
    if (req.url === '/stream') {
      // A short generation: 6 chunks over ~300 ms.
      res.writeHead(200, { 'content-type': 'text/event-stream', 'x-replica': id });
      let i = 0;
      const timer = setInterval(() => {
        res.write(`data: ${i}\n\n`);
        if (++i === 6) {
          clearInterval(timer);
          res.end('data: [DONE]\n\n');
        }
      }, 50);
      return;
    }
    setTimeout(() => {
      res.setHeader('x-replica', id);
      res.end(`echo:${body.toString()}`);
    }, Math.random() * 20);
  });
  return replica;
}

/**
 * The promise of a permanent address: every replica of an endpoint is replaced, one by one, the
 * way an orchestrator does it (start new → add → mark old terminating → wait for its in-flight
 * requests → remove → stop), while a client keeps sending a steady stream of requests (plain,
 * POST with body, streamed). Not one request may fail.
 */
describe('rolling replacement of every replica', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw?.stop();
  });

  /** The route-table version this gateway serves for svc. */
  const servedVersion = () => metric(gw.adminUrl, 'modelgate_route_table_version', { endpoint: 'svc' });
  /** Requests the gateway has sent to a route and not finished (its own count, not the replica's). */
  const outstanding = (id: string) => gw.running.gateway!.endpoints.get('svc')?.routes.find((r) => r.id === id)?.outstanding ?? 0;

  it('replaces all 3 replicas under steady traffic with zero failed requests', async () => {
    let replicas: Replica[] = [];
    for (let i = 0; i < 3; i++) replicas.push(await startReplica(`old${i}`));
    const table = () => replicas.map((r) => ({ id: r.id, url: r.up.url, weight: 1, status: 'healthy' }));
    expect((await gw.admin('PUT', '/v1/endpoints/svc', { public: true, routes: table() })).status).toBe(201);

    const failures: { kind: string; result: CallResult }[] = [];
    let sent = 0;
    let stop = false;
    const seen = new Set<string>();
    const client = async (worker: number) => {
      for (let n = 0; !stop; n++) {
        sent++;
        const kind = n % 3 === 0 ? 'stream' : n % 3 === 1 ? 'post' : 'get';
        const body = `w${worker}-${n}`;
        const r =
          kind === 'stream'
            ? await call(gw.port, { path: '/stream' })
            : kind === 'post'
              ? await call(gw.port, { method: 'POST', path: '/gen', body })
              : await call(gw.port, { path: '/ping' });
        const ok =
          r.status === 200 &&
          !r.truncated &&
          (kind === 'stream' ? r.body.endsWith('data: [DONE]\n\n') : kind === 'post' ? r.body === `echo:${body}` : r.body === 'echo:');
        if (!ok) failures.push({ kind, result: r });
        if (typeof r.headers['x-replica'] === 'string') seen.add(r.headers['x-replica']);
        await sleep(5); // pacing: a steady stream, not a flood
      }
    };
    const clients = Array.from({ length: 6 }, (_, w) => client(w));

    await eventually(() => replicas.every((r) => r.served > 0));
    for (let i = 0; i < 3; i++) {
      const old = replicas[i];
      const fresh = await startReplica(`new${i}`);
      // 1. Add the new replica beside the old ones.
      replicas = [...replicas, fresh];
      expect((await gw.admin('PUT', '/v1/endpoints/svc/routes', { routes: table() })).status).toBe(200);
      await eventually(() => fresh.served > 0, { timeoutMs: 5000 });
      // 2. Mark the old one terminating: once the gateway serves that version, no new requests go to it.
      const terminating = await gw.admin('PATCH', `/v1/endpoints/svc/routes/${old.id}`, { status: 'terminating' });
      expect(terminating.status).toBe(200);
      await eventually(async () => (await servedVersion()) === terminating.body.version);
      // 3. Wait for its in-flight requests (streams included) to finish, as sent and as received.
      await eventually(() => outstanding(old.id) === 0 && old.inFlight === 0);
      // 4. Remove it from the table, then stop the process.
      replicas = replicas.filter((r) => r !== old);
      const removed = await gw.admin('PUT', '/v1/endpoints/svc/routes', { routes: table() });
      expect(removed.status).toBe(200);
      await eventually(async () => (await servedVersion()) === removed.body.version);
      await old.up.close();
      // Traffic goes on against what is left before the next round starts.
      const mark = sent;
      await eventually(() => sent >= mark + 30);
    }
    stop = true;
    await Promise.all(clients);

    expect(failures.map((f) => `${f.kind}: ${f.result.status} ${f.result.error ?? ''} ${f.result.body.slice(0, 80)}`)).toEqual([]);
    expect([...seen].sort()).toEqual(['new0', 'new1', 'new2', 'old0', 'old1', 'old2']);
    // Only the new replicas are left, and they take the traffic.
    const before = replicas.map((r) => r.served);
    for (let i = 0; i < 30; i++) expect((await call(gw.port, { path: '/ping' })).status).toBe(200);
    expect(replicas.reduce((sum, r, i) => sum + r.served - before[i], 0)).toBe(30);
    for (const r of replicas) await r.up.close();
  }, 35_000);
});

/**
 * The hard version: a replica is killed with SIGKILL while it is busy (no drain, no goodbye: its
 * in-flight requests die with it), and the orchestrator only notices a while later. With
 * `retry.on_reset: all`, the requests inside the dead replica are replayed on the others and the
 * new requests that still pick it are retried after the refused connect: not one request fails.
 * (Requests only: a stream whose first bytes already reached the caller cannot be replayed.)
 */
describe('a replica killed by SIGKILL under load', () => {
  let gw: TestGateway;
  const children: ChildUpstream[] = [];

  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw?.stop();
    for (const c of children) await c.kill();
  });

  it('with on_reset: all, zero failed requests; the killed replica had requests in flight', async () => {
    for (let i = 0; i < 3; i++) children.push(await startChildUpstream(`r${i}`));
    let live = [...children];
    const table = () => ({ public: true, retry: { on_reset: 'all' }, routes: live.map((c) => ({ id: c.name, url: c.url })) });
    expect((await gw.admin('PUT', '/v1/endpoints/svc', table())).status).toBe(201);

    const failures: string[] = [];
    const answered = new Map<string, number>();
    let sent = 0;
    let stop = false;
    const client = async (worker: number) => {
      for (let n = 0; !stop; n++) {
        sent++;
        const body = `w${worker}-${n}`;
        // Slow answers (100-200 ms) so the victim always has several requests in flight.
        const r = n % 2 === 0 ? await call(gw.port, { method: 'POST', path: `/slow?ms=${100 + (n % 5) * 25}`, body }) : await call(gw.port, { path: '/slow?ms=100' });
        const replica = typeof r.headers['x-replica'] === 'string' ? r.headers['x-replica'] : '';
        const ok = r.status === 200 && !r.truncated && r.body === `${replica}:${n % 2 === 0 ? body : ''}`;
        if (!ok) failures.push(`${r.status} ${r.error ?? ''} ${r.body.slice(0, 100)}`);
        else answered.set(replica, (answered.get(replica) ?? 0) + 1);
      }
    };
    const clients = Array.from({ length: 8 }, (_, w) => client(w));

    await eventually(() => children.every((c) => c.received.length > 5), 10_000);
    const victim = children[0];
    // Kill it while requests are inside it: each has been received and not answered yet.
    const receivedAtKill = victim.received.length;
    await victim.kill();
    // The orchestrator notices late: the dead route stays in the table for a second.
    await sleep(1000);
    live = live.filter((c) => c !== victim);
    const fresh = await startChildUpstream('r3');
    children.push(fresh);
    live.push(fresh);
    expect((await gw.admin('PUT', '/v1/endpoints/svc', table())).status).toBe(200);
    await eventually(() => fresh.received.length > 5, 10_000);
    stop = true;
    await Promise.all(clients);

    expect(failures).toEqual([]);
    // 8 clients × ~2.5 s of 100-200 ms requests; a busy machine gets fewer done.
    expect(sent).toBeGreaterThan(50);
    expect(receivedAtKill).toBeGreaterThan(0);
    // Requests the victim received but never answered were replayed: the gateway counted them.
    expect(await metric(gw.adminUrl, 'modelgate_upstream_replays_total', { endpoint: 'svc' })).toBeGreaterThan(0);
    expect(answered.get('r3')).toBeGreaterThan(0);
  }, 40_000);
});
