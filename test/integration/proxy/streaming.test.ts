import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';

describe('streaming through the gateway', () => {
  let gw: TestGateway;
  let up: TestUpstream;
  let sentAt: number[] = [];

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startUpstream(
      (_req, res) => {
        sentAt = [];
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        let i = 0;
        const tick = () => {
          sentAt.push(Date.now());
          res.write(`data: {"token":${i}}\n\n`);
          if (++i < 5) setTimeout(tick, 150);
          else res.end('data: [DONE]\n\n');
        };
        tick();
      },
      { streaming: false },
    );
    await gw.admin('PUT', '/v1/endpoints/sse', { public: true, routes: [{ url: up.url }] });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('delivers SSE events one by one, as the upstream sends them', async () => {
    const arrivals: { at: number; text: string }[] = [];
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: '/v1/chat/completions', method: 'POST', headers: { host: 'sse.localhost', 'content-type': 'application/json' } }, (res) => {
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toBe('text/event-stream');
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => arrivals.push({ at: Date.now(), text: chunk }));
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end('{"stream":true}');
    });
    const text = arrivals.map((a) => a.text).join('');
    expect(text).toContain('data: {"token":0}');
    expect(text).toContain('data: [DONE]');
    // Event i must reach the client before event i+1 is even written (150 ms later): no buffering.
    for (let i = 0; i < 4; i++) {
      const arrival = arrivals.find((a) => a.text.includes(`"token":${i}}`));
      expect(arrival, `event ${i}`).toBeDefined();
      expect(arrival!.at).toBeLessThan(sentAt[i + 1]);
    }
  });
});
