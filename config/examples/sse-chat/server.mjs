// A stand-in for an LLM server: OpenAI-style /v1/chat/completions that streams its answer
// token by token over SSE when "stream": true, and answers in one JSON body otherwise.
// Plain Node, no dependencies. Listens on $PORT (set by modelgate for each replica).
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';

const port = Number(process.env.PORT ?? 8000);
const tokenDelayMs = Number(process.env.TOKEN_DELAY_MS ?? 20);

function reply(messages) {
  const last = [...(messages ?? [])].reverse().find((m) => m && m.role === 'user');
  const text = typeof last?.content === 'string' ? last.content : '';
  return `You said: ${text || '(nothing)'}. This is sse-chat on port ${port}.`;
}

function readJson(req) {
  return new Promise((resolve) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      try {
        resolve(body ? JSON.parse(body) : {});
      } catch {
        resolve(null);
      }
    });
    req.on('error', () => resolve(null));
  });
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'ok', port }));
    return;
  }
  if (url.pathname === '/v1/models') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ object: 'list', data: [{ id: 'sse-chat', object: 'model', owned_by: 'modelgate' }] }));
    return;
  }
  if (url.pathname !== '/v1/chat/completions' || req.method !== 'POST') {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'not found' } }));
    return;
  }
  const body = await readJson(req);
  if (!body) {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'body must be JSON' } }));
    return;
  }
  const id = `chatcmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const model = body.model ?? 'sse-chat';
  const text = reply(body.messages);
  if (!body.stream) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      id, object: 'chat.completion', created, model,
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
    }));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const tokens = text.split(/(?<= )/);
  let closed = false;
  req.on('close', () => (closed = true));
  const chunk = (delta, finish = null) =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  res.write(chunk({ role: 'assistant' }));
  for (const token of tokens) {
    if (closed) return; // the client (or the gateway for it) cancelled the generation
    res.write(chunk({ content: token }));
    await new Promise((r) => setTimeout(r, tokenDelayMs));
  }
  res.write(chunk({}, 'stop'));
  res.end('data: [DONE]\n\n');
});

server.listen(port, '127.0.0.1', () => console.log(`sse-chat listening on 127.0.0.1:${port}`));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
