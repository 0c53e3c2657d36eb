/**
 * The web-standard alternative for the data plane, measured against bare-proxy.ts: hono on
 * @hono/node-server, undici `pool.request()`, the upstream body wrapped in a `Response`.
 * UPSTREAM=http://127.0.0.1:PORT; prints `{"port":N}`.
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Pool } from 'undici';

const pool = new Pool(process.env.UPSTREAM ?? 'http://127.0.0.1:3000', { connections: 128, pipelining: 1 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-connection', 'host']);

const app = new Hono();
app.all('*', async (c) => {
  const headers: Record<string, string> = {};
  c.req.raw.headers.forEach((v, k) => {
    if (!HOP.has(k)) headers[k] = v;
  });
  const method = c.req.method;
  const up = await pool.request({
    path: new URL(c.req.url).pathname,
    method: method as 'GET',
    headers,
    body: method === 'GET' || method === 'HEAD' ? null : Readable.fromWeb(c.req.raw.body! as never),
  });
  const out = new Headers();
  for (const [k, v] of Object.entries(up.headers)) if (!HOP.has(k) && v !== undefined) out.set(k, Array.isArray(v) ? v.join(', ') : v);
  const body = up.body;
  let open = true;
  const stream = new ReadableStream<Uint8Array>({
    start(ctrl) {
      body.on('data', (chunk: Buffer) => open && ctrl.enqueue(chunk));
      body.on('end', () => open && ((open = false), ctrl.close()));
      body.on('error', (err) => open && ((open = false), ctrl.error(err)));
    },
    cancel() {
      open = false;
      body.destroy();
    },
  });
  return new Response(stream, { status: up.statusCode, headers: out });
});

const server = serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 0), hostname: '127.0.0.1' }, (info: AddressInfo) => {
  process.stdout.write(`${JSON.stringify({ port: info.port })}\n`);
});
void server;
process.on('SIGTERM', () => process.exit(0));
