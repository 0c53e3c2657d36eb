import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/** Helpers shared by the resilience tests: raw HTTP calls, metrics, a cuttable TCP proxy, a blackhole. */

export interface CallResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The response ended early (socket closed before the whole body arrived). */
  truncated: boolean;
  /** Transport error before any response (status -1). */
  error?: string;
}

export interface CallOptions {
  host?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  agent?: Agent | false;
  /** Called with each body chunk as it arrives. */
  onChunk?: (chunk: string) => void;
}

/** One request through the gateway. Never rejects: transport errors come back as status -1. */
export function call(port: number, opts: CallOptions = {}): Promise<CallResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: CallResult) => {
      if (!settled) {
        settled = true;
        resolve(r);
      }
    };
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        agent: opts.agent,
        headers: { host: opts.host ?? 'svc.localhost', ...opts.headers },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
          opts.onChunk?.(c);
        });
        res.on('end', () => done({ status: res.statusCode!, headers: res.headers, body, truncated: false }));
        res.on('error', () => done({ status: res.statusCode!, headers: res.headers, body, truncated: true }));
        res.on('close', () => done({ status: res.statusCode!, headers: res.headers, body, truncated: !res.complete }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => done({ status: -1, headers: {}, body: '', truncated: true, error: err.code ?? err.message }));
    req.end(opts.body);
  });
}

export function errorCode(r: CallResult): string | undefined {
  try {
    return JSON.parse(r.body).error?.code;
  } catch {
    return undefined;
  }
}

export { metric } from '../../support/metrics.js';

/**
 * A TCP relay in front of a real server (e.g. redis-server) that a test can cut: `cut()` closes
 * every relayed connection and refuses new ones (the gateway sees the store vanish while the
 * server itself keeps running, so the test can still write to it directly); `restore()` reopens.
 */
export interface TcpRelay {
  port: number;
  url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpRelay(targetPort: number, scheme = 'redis'): Promise<TcpRelay> {
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  let port = 0;
  const open = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = connect(targetPort, '127.0.0.1');
        sockets.add(client);
        sockets.add(upstream);
        const end = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on('error', end).on('close', end);
        upstream.on('error', end).on('close', end);
        client.pipe(upstream).pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });
  await open();
  const shut = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = null;
      for (const sock of sockets) sock.destroy();
      sockets.clear();
      if (s) s.close(() => resolve());
      else resolve();
    });
  return {
    get port() {
      return port;
    },
    get url() {
      return `${scheme}://127.0.0.1:${port}`;
    },
    cut: shut,
    restore: async () => {
      if (server === null) await open();
    },
    close: shut,
  };
}

/**
 * A TCP port that never completes a connection: a listener with a full accept queue that never
 * accepts (a Python child: node always accepts). Connects to it hang until the caller gives up,
 * which is how a dead host behind a firewall looks.
 */
export interface Blackhole {
  port: number;
  close(): Promise<void>;
}

export async function startBlackhole(): Promise<Blackhole> {
  const child: ChildProcess = spawn(
    'python3',
    ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(600)'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  // Fill the accept queue so the kernel drops every further SYN.
  const fillers: Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
  }
  await new Promise((r) => setTimeout(r, 100));
  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy();
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
