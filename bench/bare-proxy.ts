/**
 * The reference: the least a Node.js reverse proxy can do, the same code as the referee
 * harness's `lib/node-proxy.js` (../shared/bench-harness): node:http server, one undici Pool,
 * `pool.stream()` writing the upstream body straight into the response, hop-by-hop headers
 * dropped. No routing, auth, metrics or logs: the practical limit of Node on this machine.
 * UPSTREAM=http://127.0.0.1:PORT (SSE_UPSTREAM for /sse, default the same); prints `{"port":N}`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const origin = new Pool(process.env.UPSTREAM ?? 'http://127.0.0.1:3000', { connections: 128, keepAliveTimeout: 60e3 });
const sse = process.env.SSE_UPSTREAM ? new Pool(process.env.SSE_UPSTREAM, { connections: 16 }) : origin;
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

function strip(h: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k in h) if (!HOP.has(k) && h[k] !== undefined) out[k] = h[k];
  return out;
}

const server = createServer({ keepAliveTimeout: 60e3, noDelay: true }, (req, res) => {
  const pool = req.url?.startsWith('/sse') ? sse : origin;
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  pool
    .stream({ path: req.url ?? '/', method: req.method as 'GET', headers: strip(req.headers), body: hasBody ? req : null }, ({ statusCode, headers }) => {
      res.writeHead(statusCode, strip(headers));
      return res;
    })
    .catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
