/**
 * Sequential SSE client for the pinned bench, run as its own process (pinned to the load CPU):
 * `URL N [Header: value ...]`. Times each stream's first event from the request; prints
 * `{"p50":ms,"complete":n}` (complete = streams that ended after at least one event).
 */
import { Agent, get } from 'node:http';
import { percentile } from './lib.js';

const [url, nArg, ...lines] = process.argv.slice(2);
const headers: Record<string, string> = { accept: 'text/event-stream' };
for (const line of lines) {
  const i = line.indexOf(':');
  if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
}
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function once(): Promise<number> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let first = -1;
    const req = get(url, { agent, headers, timeout: 5000 }, (res) => {
      res.on('data', (chunk: Buffer) => {
        if (first < 0 && chunk.includes('data:')) first = performance.now() - t0;
      });
      res.on('end', () => resolve(first));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(-1));
  });
}

const firsts: number[] = [];
const n = Number(nArg);
await once(); // warm-up: connection and JIT
for (let i = 0; i < n; i++) {
  const t = await once();
  if (t >= 0) firsts.push(t);
}
agent.destroy();
process.stdout.write(`${JSON.stringify({ p50: percentile(firsts, 50), complete: firsts.length })}\n`);
