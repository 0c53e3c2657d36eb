import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: Buffer;
}

export interface TestUpstream {
  server: Server;
  port: number;
  url: string;
  /** Requests fully received, in order. */
  received: ReceivedRequest[];
  /** Connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/**
 * A real node:http upstream on port 0. The handler runs after the request body was read
 * (pass `streaming: true` to get the request before its body).
 */
export async function startUpstream(handler?: Handler, opts: { streaming?: boolean; name?: string } = {}): Promise<TestUpstream> {
  const received: ReceivedRequest[] = [];
  const sockets = new Set<Socket>();
  const up: Partial<TestUpstream> = { received, connections: 0 };
  const respond: Handler =
    handler ??
    ((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ upstream: opts.name ?? 'up', method: req.method, url: req.url }));
    });
  const server = createServer((req, res) => {
    if (opts.streaming) {
      received.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0) });
      respond(req, res, Buffer.alloc(0));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
      respond(req, res, body);
    });
  });
  server.on('connection', (s: Socket) => {
    up.connections!++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(up, {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  }) as TestUpstream;
}

/** A port with nothing listening (connection refused). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
