import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { call, errorCode, startBlackhole, type Blackhole } from './support.js';

// undici checks connect, first-byte and idle timeouts on a coarse (~0.5 s tick) timer, so a timeout fires
// between its value and about one second later: the defaults here are far enough apart from the
// 100 ms overrides to tell them apart.
const CONNECT_MS = 2000;
const FIRST_BYTE_MS = 2000;
const IDLE_MS = 2000;

/** Connect, first-byte and idle-between-chunks timeouts, their per-endpoint overrides, and no total timeout. */
describe('timeouts', () => {
  let gw: TestGateway;
  let up: TestUpstream;
  let hole: Blackhole;

  beforeAll(async () => {
    gw = await startTestGateway({
      CONNECT_TIMEOUT_MS: String(CONNECT_MS),
      FIRST_BYTE_TIMEOUT_MS: String(FIRST_BYTE_MS),
      IDLE_TIMEOUT_MS: String(IDLE_MS),
      EJECT_AFTER_FAILURES: '1000',
    });
    hole = await startBlackhole();
    up = await startUpstream((req, res) => {
      const url = new URL(req.url!, 'http://x');
      switch (url.pathname) {
        case '/never':
          return;
        case '/stall-after-first-chunk':
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write('data: 1\n\n');
          return; // and nothing more, ever
        case '/drip': {
          // One chunk every 200 ms for `n` chunks: far longer than the idle timeout in total.
          const n = Number(url.searchParams.get('n'));
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          let i = 0;
          const timer = setInterval(() => {
            res.write(`data: ${i}\n\n`);
            if (++i === n) {
              clearInterval(timer);
              res.end('data: [DONE]\n\n');
            }
          }, 200);
          res.on('close', () => clearInterval(timer));
          return;
        }
        default:
          res.end('ok');
      }
    });
    await gw.admin('PUT', '/v1/endpoints/svc', { public: true, routes: [{ id: 'a', url: up.url }] });
    await gw.admin('PUT', '/v1/endpoints/fast', {
      public: true,
      routes: [{ id: 'a', url: up.url }],
      timeouts: { first_byte_ms: 100, idle_ms: 100 },
    });
    await gw.admin('PUT', '/v1/endpoints/mid', {
      public: true,
      routes: [{ id: 'a', url: up.url }],
      timeouts: { first_byte_ms: 500, idle_ms: 500 },
    });
    await gw.admin('PUT', '/v1/endpoints/hole', { public: true, routes: [{ id: 'h', url: `http://127.0.0.1:${hole.port}` }] });
    await gw.admin('PUT', '/v1/endpoints/hole-fast', {
      public: true,
      routes: [{ id: 'h', url: `http://127.0.0.1:${hole.port}` }],
      timeouts: { connect_ms: 100 },
    });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
    await hole?.close();
  });

  async function timed(host: string, path = '/') {
    const t0 = Date.now();
    const r = await call(gw.port, { host, path });
    return { r, ms: Date.now() - t0 };
  }

  it('connect timeout → 504 GW_UPSTREAM_TIMEOUT after CONNECT_TIMEOUT_MS (retries included), overridable per endpoint', async () => {
    const [def, fast] = await Promise.all([timed('hole.localhost'), timed('hole-fast.localhost')]);
    expect(def.r.status).toBe(504);
    expect(errorCode(def.r)).toBe('GW_UPSTREAM_TIMEOUT');
    expect(def.ms).toBeGreaterThanOrEqual(CONNECT_MS - 50);
    expect(def.ms).toBeLessThan(CONNECT_MS + 1200);
    expect(fast.r.status).toBe(504);
    expect(errorCode(fast.r)).toBe('GW_UPSTREAM_TIMEOUT');
    expect(fast.ms).toBeLessThan(CONNECT_MS - 500);
  });

  it('first-byte timeout → 504, default and per-endpoint override', async () => {
    const [def, fast] = await Promise.all([timed('svc.localhost', '/never'), timed('fast.localhost', '/never')]);
    expect(def.r.status).toBe(504);
    expect(errorCode(def.r)).toBe('GW_UPSTREAM_TIMEOUT');
    expect(def.ms).toBeGreaterThanOrEqual(FIRST_BYTE_MS - 50);
    expect(def.ms).toBeLessThan(FIRST_BYTE_MS + 1200);
    expect(fast.r.status).toBe(504);
    expect(fast.ms).toBeLessThan(FIRST_BYTE_MS - 500);
  });

  it('idle timeout between body chunks cuts a stalled stream (truncated), default and override', async () => {
    const [def, fast] = await Promise.all([timed('svc.localhost', '/stall-after-first-chunk'), timed('fast.localhost', '/stall-after-first-chunk')]);
    expect(def.r.status).toBe(200);
    expect(def.r.truncated).toBe(true);
    expect(def.r.body).toBe('data: 1\n\n');
    expect(def.ms).toBeGreaterThanOrEqual(IDLE_MS - 50);
    expect(def.ms).toBeLessThan(IDLE_MS + 1200);
    expect(fast.r.truncated).toBe(true);
    expect(fast.ms).toBeLessThan(IDLE_MS - 500);
    const nextOk = await call(gw.port, { host: 'fast.localhost' });
    expect(nextOk.status).toBe(200);
  });

  it('no total timeout: a stream with a chunk every 200 ms runs for many idle timeouts and is never cut', async () => {
    const n = 20; // 4 s = 8 × the endpoint's 500 ms idle and first-byte timeouts
    const { r, ms } = await timed('mid.localhost', `/drip?n=${n}`);
    expect(r.status).toBe(200);
    expect(r.truncated).toBe(false);
    expect(ms).toBeGreaterThan(500 * 7);
    expect(r.body.match(/data: \d+/g)?.length).toBe(n);
    expect(r.body.endsWith('data: [DONE]\n\n')).toBe(true);
  }, 15_000);
});
