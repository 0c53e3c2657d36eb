import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startChildUpstream, type ChildUpstream } from '../../support/child-upstream.js';
import { closedPort, startUpstream, type TestUpstream } from '../../support/upstream.js';
import { eventually, sleep } from '../../support/eventually.js';
import { call, errorCode, metric, type CallResult } from './support.js';

/**
 * One case per fault an upstream can show, each on real sockets (real node:http upstreams on
 * port 0, a real child process killed with SIGKILL). Every upstream counts what it received, so
 * each row checks both what the caller saw and that no other route got a duplicate.
 *
 * The rule under test (docs/resilience.md): a fault before the first response byte is
 * invisible to the caller when `retry.on_reset` allows replay (another route answers); a fault
 * after it gives the caller a clean failure and is never sent anywhere else.
 */

/** A node:http upstream that answers `{name}:{body}` and counts requests (`received`). */
function answering(name: string): Promise<TestUpstream> {
  return startUpstream((_req, res, body) => {
    res.setHeader('x-replica', name);
    res.end(`${name}:${body.toString()}`);
  });
}

function bodiesOf(up: TestUpstream | ChildUpstream): string[] {
  return 'server' in up ? up.received.map((r) => r.body.toString()) : [];
}

describe('fault matrix', () => {
  let gw: TestGateway;
  const logLines: string[] = [];
  const upstreams: { close(): Promise<void> }[] = [];
  const children: ChildUpstream[] = [];

  const track = <T extends { close(): Promise<void> }>(up: T): T => {
    upstreams.push(up);
    return up;
  };
  const child = async (name: string, port = 0, answerHang = false) => {
    const c = await startChildUpstream(name, port, { answerHang });
    children.push(c);
    return c;
  };
  const put = async (name: string, body: Record<string, unknown>) => {
    const r = await gw.admin('PUT', `/v1/endpoints/${name}`, { public: true, ...body });
    expect([200, 201]).toContain(r.status);
  };
  const post = (name: string, body: string, path = '/gen') => call(gw.port, { host: `${name}.localhost`, method: 'POST', path, body });

  beforeAll(async () => {
    const capture = new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    gw = await startTestGateway({ LOG_LEVEL: 'info', ACCESS_LOG: 'true', HOLD_TIMEOUT_MS: '5000' }, { logDestination: capture });
  });
  afterAll(async () => {
    await gw?.stop();
    for (const c of children) await c.kill();
    for (const up of upstreams) await up.close();
  });

  it('connect refused → retried on another route: 100% success, replay on or off', async () => {
    const dead = await closedPort();
    for (const mode of ['none', 'all']) {
      const good = track(await answering('good'));
      const name = `refused-${mode}`;
      await put(name, { retry: { on_reset: mode }, routes: [{ id: 'dead', url: `http://127.0.0.1:${dead}` }, { id: 'good', url: good.url }] });
      const sent: string[] = [];
      for (let i = 0; i < 20; i++) {
        const body = `${mode}-${i}`;
        sent.push(body);
        const r = await post(name, body);
        expect(r.status).toBe(200);
        expect(r.body).toBe(`good:${body}`);
      }
      expect(bodiesOf(good)).toEqual(sent);
    }
  });

  it('reset before any response byte, replay on → 100% success via the other route, each body delivered once', async () => {
    const resetter = track(await startUpstream((req) => req.socket.destroy()));
    const good = track(await answering('good'));
    await put('reset-on', { retry: { on_reset: 'all' }, routes: [{ id: 'bad', url: resetter.url }, { id: 'good', url: good.url }] });
    const replaysBefore = await metric(gw.adminUrl, 'modelgate_upstream_replays_total', { endpoint: 'reset-on' });
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      const body = `payload-${i}-${'x'.repeat(i * 100)}`;
      sent.push(body);
      const r = await post('reset-on', body);
      expect(r.status).toBe(200);
      expect(r.body).toBe(`good:${body}`);
    }
    // The good route saw every body exactly once, whole; the resetter saw some of them first.
    expect(bodiesOf(good)).toEqual(sent);
    expect(resetter.received.length).toBeGreaterThan(0);
    const replays = (await metric(gw.adminUrl, 'modelgate_upstream_replays_total', { endpoint: 'reset-on' })) - replaysBefore;
    expect(replays).toBe(resetter.received.length);
    // Each replay is in that request's access-log line.
    await eventually(() => logLines.filter((l) => l.includes('"endpoint":"reset-on"') && l.includes('"replays":1')).length === replays);
  });

  it('reset before any response byte, replay off → 502, and the other route never receives it', async () => {
    const resetter = track(await startUpstream((req) => req.socket.destroy()));
    const good = track(await answering('good'));
    await put('reset-off', { routes: [{ id: 'bad', url: resetter.url }, { id: 'good', url: good.url }], balancer: 'round_robin' });
    const failed: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await post('reset-off', `b${i}`);
      if (r.status === 502) {
        expect(errorCode(r)).toBe('GW_UPSTREAM_UNAVAILABLE');
        failed.push(`b${i}`);
      } else {
        expect(r.status).toBe(200);
      }
    }
    expect(failed.length).toBe(5);
    expect(resetter.received.map((r) => r.body.toString()).sort()).toEqual([...failed].sort());
    for (const body of failed) expect(bodiesOf(good)).not.toContain(body);
    expect(resetter.received.length + good.received.length).toBe(10);
  });

  it('a body over replay_body_max_bytes is not replayable: reset → 502 as without replay (Content-Length and chunked)', async () => {
    const resetter = track(await startUpstream((req) => req.socket.destroy()));
    const good = track(await answering('good'));
    await put('big-body', { retry: { on_reset: 'all', replay_body_max_bytes: 1000 }, balancer: 'round_robin', routes: [{ id: 'bad', url: resetter.url }, { id: 'good', url: good.url }] });
    const big = 'z'.repeat(5000);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const chunked = i >= 2;
      const r = await call(gw.port, {
        host: 'big-body.localhost',
        method: 'POST',
        path: '/gen',
        body: big,
        headers: chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(big.length) },
      });
      statuses.push(r.status);
    }
    // Round-robin: every other request met the resetter and failed; none reached good twice.
    expect(statuses.sort()).toEqual([200, 200, 502, 502]);
    expect(good.received.length).toBe(2);
    // A small body on the same endpoint is replayed.
    for (let i = 0; i < 2; i++) expect((await post('big-body', 'small')).status).toBe(200);
  });

  it('`idempotent` replays GET/PUT/DELETE but not POST', async () => {
    const resetter = track(await startUpstream((req) => req.socket.destroy()));
    const good = track(await answering('good'));
    await put('idem', { retry: { on_reset: 'idempotent' }, balancer: 'round_robin', routes: [{ id: 'bad', url: resetter.url }, { id: 'good', url: good.url }] });
    for (let i = 0; i < 6; i++) {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const r = await call(gw.port, { host: 'idem.localhost', method, path: `/${method}-${i}`, body: method === 'PUT' ? 'x' : undefined });
        expect(`${method} ${r.status} ${r.body}`).toBe(`${method} 200 good:${method === 'PUT' ? 'x' : ''}`);
      }
    }
    const posts = [];
    for (let i = 0; i < 6; i++) posts.push((await post('idem', `p${i}`)).status);
    expect(posts.filter((s) => s === 502).length).toBeGreaterThan(0);
    expect(posts.every((s) => s === 502 || s === 200)).toBe(true);
  });

  /** Sends POST /hang to `name`, waits until the child replica has the whole request, then kills it. */
  async function killMidRequest(name: string, victim: ChildUpstream, body: string): Promise<{ pending: Promise<CallResult> }> {
    const pending = post(name, body, '/hang');
    await eventually(() => victim.received.some((r) => r.url === '/hang' && r.bytes === body.length), 10_000);
    await victim.kill();
    return { pending };
  }

  it('upstream killed (SIGKILL) mid-request, replay on → the other route answers, once', async () => {
    const victim = await child('victim');
    const good = track(await answering('good'));
    const body = 'generate: a long answer ' + 'y'.repeat(50_000);
    await put('killed-on', { retry: { on_reset: 'all' }, routes: [{ id: 'victim', url: victim.url }] });
    const pending = post('killed-on', body, '/hang');
    await eventually(() => victim.received.length === 1, 10_000);
    // Another replica joins while the request runs inside the doomed one.
    await put('killed-on', { retry: { on_reset: 'all' }, routes: [{ id: 'victim', url: victim.url }, { id: 'good', url: good.url }] });
    await sleep(50);
    await victim.kill();
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.body).toBe(`good:${body}`);
    expect(bodiesOf(good)).toEqual([body]);
  });

  it('upstream killed (SIGKILL) mid-request, replay off → 502, and no other route receives it', async () => {
    const victim = await child('victim-off');
    const good = track(await answering('good'));
    await put('killed-off', { routes: [{ id: 'victim', url: victim.url }, { id: 'good', url: good.url }], balancer: 'round_robin' });
    // Round-robin: make sure the next request goes to the victim.
    let r = await post('killed-off', 'warm');
    if (r.headers['x-replica'] === 'victim-off') r = await post('killed-off', 'warm2');
    expect(r.headers['x-replica']).toBe('good');
    const goodBefore = good.received.length;
    r = await (await killMidRequest('killed-off', victim, 'doomed')).pending;
    expect(r.status).toBe(502);
    expect(errorCode(r)).toBe('GW_UPSTREAM_UNAVAILABLE');
    expect(good.received.length).toBe(goodBefore);
  });

  it('only route killed mid-request and restarted within the hold time → replayed on it once it is back', async () => {
    const victim = await child('first-life');
    await put('comes-back', { retry: { on_reset: 'all' }, routes: [{ id: 'only', url: victim.url }] });
    const { pending } = await killMidRequest('comes-back', victim, 'please');
    // The replica's restart takes a while (the orchestrator's business); the request waits.
    await sleep(400);
    const reborn = await child('second-life', victim.port, true);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.body).toBe('second-life:please');
    expect(reborn.received.filter((x) => x.url === '/hang')).toHaveLength(1);
  });

  it('503 before headers passes through untouched, never replayed', async () => {
    const loading = track(
      await startUpstream((_req, res) => {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '3', 'x-upstream': 'loading' });
        res.end('{"error":"model loading"}');
      }),
    );
    const good = track(await answering('good'));
    await put('u503', { retry: { on_reset: 'all' }, balancer: 'round_robin', routes: [{ id: 'loading', url: loading.url }, { id: 'good', url: good.url }] });
    let passedThrough = 0;
    for (let i = 0; i < 10; i++) {
      const r = await post('u503', `q${i}`);
      if (r.status === 503) {
        passedThrough++;
        expect(r.body).toBe('{"error":"model loading"}');
        expect(r.headers['retry-after']).toBe('3');
        expect(r.headers['x-upstream']).toBe('loading');
      } else {
        expect(r.status).toBe(200);
      }
    }
    expect(passedThrough).toBe(5);
    expect(loading.received.length + good.received.length).toBe(10);
  });

  it('stall before the first byte → 504 after the first-byte timeout, never replayed', async () => {
    const stalled = track(await startUpstream(() => {}));
    const good = track(await answering('good'));
    await put('stall', {
      retry: { on_reset: 'all' },
      timeouts: { first_byte_ms: 300 },
      balancer: 'round_robin',
      routes: [{ id: 'stalled', url: stalled.url }, { id: 'good', url: good.url }],
    });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const started = Date.now();
      const r = await post('stall', `s${i}`);
      statuses.push(r.status);
      if (r.status === 504) {
        expect(errorCode(r)).toBe('GW_UPSTREAM_TIMEOUT');
        expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      }
    }
    expect(statuses.sort()).toEqual([200, 200, 504, 504]);
    expect(stalled.received.length + good.received.length).toBe(4);
  });

  it('cut after N SSE events → the client sees those N events then a clean cut; no duplicate anywhere', async () => {
    const cutter = track(
      await startUpstream((req, res: ServerResponse) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let n = 0;
        const timer = setInterval(() => {
          res.write(`data: event ${n}\n\n`);
          if (++n === 3) {
            clearInterval(timer);
            setTimeout(() => (req as IncomingMessage).socket.destroy(), 30);
          }
        }, 20);
      }),
    );
    const good = track(await answering('good'));
    await put('sse-cut', { retry: { on_reset: 'all' }, balancer: 'round_robin', routes: [{ id: 'cutter', url: cutter.url }, { id: 'good', url: good.url }] });
    let cut = 0;
    for (let i = 0; i < 4; i++) {
      const r = await post('sse-cut', `e${i}`, '/v1/chat/completions');
      expect(r.status).toBe(200);
      if (r.headers['content-type'] === 'text/event-stream') {
        cut++;
        expect(r.body).toBe('data: event 0\n\ndata: event 1\n\ndata: event 2\n\n');
        expect(r.truncated).toBe(true);
      } else {
        expect(r.truncated).toBe(false);
      }
    }
    expect(cut).toBe(2);
    expect(cutter.received.length + good.received.length).toBe(4);
  });

  it('malformed chunked framing from the upstream → the client sees a cut response, nothing sent elsewhere', async () => {
    const garbler = track(
      await startUpstream((req) => {
        const socket = (req as IncomingMessage).socket;
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n');
        setTimeout(() => socket.write('zz-not-a-size\r\nmore\r\n'), 50);
      }),
    );
    const good = track(await answering('good'));
    await put('garbled', { retry: { on_reset: 'all' }, balancer: 'round_robin', routes: [{ id: 'garbler', url: garbler.url }, { id: 'good', url: good.url }] });
    let garbled = 0;
    for (let i = 0; i < 4; i++) {
      const r = await post('garbled', `g${i}`);
      if (r.headers['x-replica'] === 'good') {
        expect(r.status).toBe(200);
        expect(r.truncated).toBe(false);
        continue;
      }
      garbled++;
      expect(r.status).toBe(200);
      expect(r.body).toBe('hello');
      expect(r.truncated).toBe(true);
    }
    expect(garbled).toBe(2);
    expect(garbler.received.length + good.received.length).toBe(4);
  });

  // Upgrades share the HTTP request life cycle (issue 18 item 2), so they wait in the hold queue.
  it('WebSocket upgrade with no healthy route waits, and connects once a route appears', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    let upgrades = 0;
    wss.on('connection', (socket) => {
      upgrades++;
      socket.on('message', (data) => socket.send(`echo:${data.toString()}`));
    });
    try {
      await put('ws-hold', { routes: [] });
      const client = new WebSocket(`ws://127.0.0.1:${gw.port}/e/ws-hold/chat`);
      const opened = new Promise<void>((resolve, reject) => {
        client.once('open', () => resolve());
        client.once('error', reject);
        client.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      });
      await sleep(300);
      expect(upgrades).toBe(0);
      await put('ws-hold', { routes: [{ id: 'w', url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}` }] });
      await opened;
      const reply = new Promise<string>((resolve) => client.once('message', (d) => resolve(d.toString())));
      client.send('hi');
      expect(await reply).toBe('echo:hi');
      expect(upgrades).toBe(1);
      client.close();
    } finally {
      for (const s of wss.clients) s.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    }
  });

  it('health-checked route going bad leaves rotation, and comes back when it recovers', async () => {
    let sick = false;
    const flaky = track(
      await startUpstream((req, res, body) => {
        if (req.url === '/healthz-probe') {
          res.statusCode = sick ? 500 : 200;
          res.end(sick ? 'sick' : 'fine');
          return;
        }
        res.setHeader('x-replica', 'flaky');
        res.end(`flaky:${body.toString()}`);
      }),
    );
    const good = track(await answering('good'));
    await put('probed', {
      health_check: { path: '/healthz-probe', interval_s: 0.1, timeout_s: 0.5, unhealthy_after: 2, healthy_after: 2 },
      balancer: 'round_robin',
      routes: [{ id: 'flaky', url: flaky.url }, { id: 'good', url: good.url }],
    });
    const traffic = () => flaky.received.filter((r) => r.url !== '/healthz-probe').length;
    const healthy = () => metric(gw.adminUrl, 'modelgate_health_check_routes', { endpoint: 'probed', state: 'healthy' });
    // A gateway instance probes the endpoints it serves: loaded by their first request.
    for (let i = 0; i < 4; i++) expect((await post('probed', `a${i}`)).status).toBe(200);
    expect(traffic()).toBe(2);
    await eventually(async () => (await healthy()) === 2 && flaky.received.some((r) => r.url === '/healthz-probe'), 5000);

    sick = true;
    await eventually(async () => (await metric(gw.adminUrl, 'modelgate_health_check_routes', { endpoint: 'probed', state: 'unhealthy' })) === 1, 5000);
    const before = traffic();
    for (let i = 0; i < 10; i++) {
      const r = await post('probed', `b${i}`);
      expect(r.status).toBe(200);
      expect(r.headers['x-replica']).toBe('good');
    }
    expect(traffic()).toBe(before);
    expect(await metric(gw.adminUrl, 'modelgate_health_check_failures_total', { endpoint: 'probed' })).toBeGreaterThanOrEqual(2);
    expect(logLines.some((l) => l.includes('out of rotation') && l.includes('"route":"flaky"'))).toBe(true);

    sick = false;
    await eventually(async () => (await healthy()) === 2, 5000);
    for (let i = 0; i < 4; i++) expect((await post('probed', `c${i}`)).status).toBe(200);
    expect(traffic()).toBe(before + 2);
    expect(logLines.some((l) => l.includes('back in rotation') && l.includes('"route":"flaky"'))).toBe(true);
  });
});
