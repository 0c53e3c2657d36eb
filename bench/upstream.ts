/**
 * The benchmark's fast upstream, run in its own process: `/` answers a 64-byte JSON body,
 * `/16k` a 16 KiB one, `/sse` an event stream (first event at once, then one every 5 ms).
 * Every response names the upstream (`UPSTREAM_NAME`), so route-change probes can tell them apart.
 * Prints `{"port":N}` once listening.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const name = process.env.UPSTREAM_NAME ?? 'u';
const small = (() => {
  const base = `{"upstream":"${name}","ok":true,"pad":"`;
  const pad = 'x'.repeat(Math.max(0, 64 - base.length - 2));
  return Buffer.from(`${base}${pad}"}`);
})();
const big = Buffer.from(`{"upstream":"${name}","pad":"${'y'.repeat(16 * 1024 - 28 - name.length)}"}`);

const completion = Buffer.from(
  `{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello from ${name}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`,
);

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (url.startsWith('/sse')) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    let n = 0;
    const send = () => {
      res.write(`data: {"n":${n},"t":${Date.now()}}\n\n`);
      if (++n >= 3) res.end();
      else setTimeout(send, 5);
    };
    send();
    return;
  }
  if (url.startsWith('/v1/chat/completions')) {
    // An OpenAI-style answer with usage, for the traffic-control benchmark (bench/traffic.ts).
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': completion.length });
    res.end(completion);
    return;
  }
  // Drain any request body before answering.
  req.resume();
  const body = url.startsWith('/16k') ? big : small;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'x-upstream': name });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
