import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createConnection, createServer } from 'node:net';

/**
 * Starts a real redis-server for tests on a free loopback port (`--port 0` means "no TCP" to
 * Redis, so a port is reserved through `net` first and the start retried on a collision).
 */

export interface RedisServer {
  url: string;
  port: number;
  /** Stops the server gracefully and waits for it to exit. */
  stop(): Promise<void>;
  /** (Re)starts the server on the same port. */
  start(): Promise<void>;
  /** SIGKILLs the server. */
  kill(): Promise<void>;
}

// The machine's own Redis may listen on the default port; tests never use it.
const REDIS_DEFAULT_PORT = 6_379;
const START_TIMEOUT_MS = 5000;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port === REDIS_DEFAULT_PORT ? freePort().then(resolve, reject) : resolve(port)));
    });
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    let buffer = '';
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      if (buffer.includes('\r\n')) finish(buffer.startsWith('+PONG'));
    });
  });
}

export function assertInstalled(): void {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'redis-server is not on PATH: the integration tests need a real Redis. Install it (Debian/Ubuntu: apt-get install redis-server) and run again.',
    );
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts redis-server on `port` (extra arguments e.g. `--replicaof`, or a config file + `--sentinel`) and waits for PING. */
export async function launchRedisProcess(port: number, extraArgs: string[] = [], configFile?: string): Promise<ChildProcess> {
  const args = [...(configFile ? [configFile] : []), '--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1', ...extraArgs];
  const child = spawn('redis-server', args, {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server on port ${port} exited at start: ${output.trim().split('\n').slice(-3).join(' | ')}`);
    if (await ping(port)) return child;
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server on port ${port} did not answer PING within ${START_TIMEOUT_MS} ms`);
}

export async function startRedis(): Promise<RedisServer> {
  assertInstalled();
  let child: ChildProcess | null = null;
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      child = await launchRedisProcess(port);
      break;
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (!child) return;
      const c = child;
      child = null;
      c.kill('SIGTERM');
      await exited(c);
    },
    async start() {
      if (child) return;
      child = await launchRedisProcess(port);
    },
    async kill() {
      if (!child) return;
      const c = child;
      child = null;
      c.kill('SIGKILL');
      await exited(c);
    },
  };
  return server;
}
