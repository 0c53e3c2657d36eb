/**
 * The reference: the least a Node.js reverse proxy can do (node:http server, one undici Pool,
 * `pool.stream()` piping the upstream body straight into the response, hop-by-hop headers
 * dropped). No routing, auth, metrics or logs: the practical limit of Node on this machine.
 * UPSTREAM=http://127.0.0.1:PORT; prints `{"port":N}`.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const pool = new Pool(process.env.UPSTREAM ?? 'http://127.0.0.1:3000', { connections: 128, pipelining: 1 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-connection', 'host']);

function factory(this: ServerResponse, { statusCode, headers }: { statusCode: number; headers: Record<string, string | string[] | undefined> }) {
  for (const k in headers) if (HOP.has(k)) delete headers[k];
  this.writeHead(statusCode, headers as Record<string, string>);
  return this;
}

const server = createServer((req, res) => {
  const headers: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  pool
    .stream({ path: req.url ?? '/', method: req.method as 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req, opaque: res }, factory.bind(res))
    .catch(() => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
