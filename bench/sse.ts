/** Time to the first SSE event, direct vs through the gateway, alternating one request at a time. */
import { Agent, request } from 'node:http';
import { percentile } from './lib.js';

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function firstEvent(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request({ host: '127.0.0.1', port, path: '/sse', headers: { host, accept: 'text/event-stream' }, agent }, (res) => {
      let first = -1;
      res.on('data', (chunk: Buffer) => {
        if (first < 0 && chunk.includes('data:')) first = performance.now() - t0;
      });
      // Resolve at the end, so the next request finds the keep-alive socket free.
      res.on('end', () => (first >= 0 ? resolve(first) : reject(new Error('stream ended without an event'))));
    });
    req.on('error', reject);
    req.end();
  });
}

export interface SseResult {
  directP50: number;
  directP99: number;
  gatewayP50: number;
  gatewayP99: number;
}

export async function measureSse(directPort: number, gatewayPort: number, host: string, samples: number): Promise<SseResult> {
  const direct: number[] = [];
  const gw: number[] = [];
  for (let i = 0; i < 20; i++) {
    await firstEvent(directPort, 'localhost');
    await firstEvent(gatewayPort, host);
  }
  for (let i = 0; i < samples; i++) {
    direct.push(await firstEvent(directPort, 'localhost'));
    gw.push(await firstEvent(gatewayPort, host));
  }
  return { directP50: percentile(direct, 50), directP99: percentile(direct, 99), gatewayP50: percentile(gw, 50), gatewayP99: percentile(gw, 99) };
}
