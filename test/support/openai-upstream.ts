import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A real HTTP server that answers like an OpenAI-compatible model server and counts what
 * traffic control must get right: requests in flight at once (and the most ever seen), the
 * order requests arrived in, and the sums of the usage it reported.
 *
 * Per request (headers): `x-test-id` (recorded in `arrivals`), `x-test-usage`
 * (`normal` | `absent` | `null` | `malformed` | `strings`), `x-test-delay-ms` (per SSE event, or
 * before a JSON answer), `x-test-tokens` (completion tokens = streamed events).
 */
export interface OpenAiUpstream {
  url: string;
  name: string;
  inFlight: number;
  maxInFlight: number;
  /** Requests received (any path). */
  requests: number;
  arrivals: string[];
  /** Usage this upstream reported in complete, well-formed usage objects. */
  reported: { prompt: number; completion: number; requests: number };
  /** Bodies of completion requests as received (parsed). */
  bodies: unknown[];
  /** While true, requests wait (after being counted) until release(). */
  holding: boolean;
  release(): void;
  close(): Promise<void>;
}

export async function startOpenAiUpstream(name = 'llm'): Promise<OpenAiUpstream> {
  let waiters: (() => void)[] = [];
  const up: OpenAiUpstream = {
    url: '',
    name,
    inFlight: 0,
    maxInFlight: 0,
    requests: 0,
    arrivals: [],
    reported: { prompt: 0, completion: 0, requests: 0 },
    bodies: [],
    holding: false,
    release() {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    up.requests++;
    up.inFlight++;
    if (up.inFlight > up.maxInFlight) up.maxInFlight = up.inFlight;
    let done = false;
    const leave = () => {
      if (done) return;
      done = true;
      up.inFlight--;
    };
    res.on('close', leave);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const id = req.headers['x-test-id'];
    if (typeof id === 'string') up.arrivals.push(id);
    if (up.holding) await new Promise<void>((resolve) => waiters.push(resolve));
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      // not JSON: answered like any body
    }
    up.bodies.push(body);
    const mode = String(req.headers['x-test-usage'] ?? 'normal');
    const delay = Number(req.headers['x-test-delay-ms'] ?? 0);
    const completion = Number(req.headers['x-test-tokens'] ?? 1 + Math.floor(Math.random() * 6));
    const prompt = 1 + Math.floor(Math.random() * 40);
    const usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
    const usageJson = (): string | undefined => {
      switch (mode) {
        case 'absent':
          return undefined;
        case 'null':
          return 'null';
        case 'malformed':
          return '{"prompt_tokens": "many", "completion_tokens": }';
        case 'strings':
          return '{"prompt_tokens":"3","completion_tokens":"4"}';
        default:
          return JSON.stringify(usage);
      }
    };
    const count = () => {
      if (mode !== 'normal') return;
      up.reported.prompt += prompt;
      up.reported.completion += completion;
    };
    up.reported.requests++;
    if (req.url?.startsWith('/slow')) await new Promise((r) => setTimeout(r, delay));
    if (body.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
      for (let i = 0; i < completion; i++) {
        if (res.destroyed) return;
        const chunk: Record<string, unknown> = { id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: `t${i} ` } }] };
        if (includeUsage) chunk.usage = null;
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      }
      if (res.destroyed) return;
      if (includeUsage) {
        const u = usageJson();
        if (u !== undefined) res.write(`data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":${u}}\n\n`);
        count();
      } else if (req.headers['x-test-usage-in-last'] === '1') {
        const u = usageJson();
        res.write(`data: {"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":${u ?? 'null'}}\n\n`);
        count();
      }
      res.end('data: [DONE]\n\n');
      return;
    }
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const u = usageJson();
    const text = `{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"a \\"usage\\": {\\"prompt_tokens\\": 999} b"}}]${u === undefined ? '' : `,"usage":${u}`}}`;
    count();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return up;
}
