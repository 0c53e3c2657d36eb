import { spawn, type ChildProcess } from 'node:child_process';
import type { DestinationStream } from 'pino';
import { createInterface } from 'node:readline';
import { loadSettings } from '../../src/config/settings.js';
import { silentLogger, createLogger } from '../../src/obs/logger.js';
import { startGateway, type RunningGateway } from '../../src/compose.js';

export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789';
export const TEST_TOKEN_SECRET = 'test-token-secret-0123456789abcdef0123456789';

export interface TestGateway {
  running: RunningGateway;
  /** http://127.0.0.1:PORT of the data plane */
  url: string;
  adminUrl: string;
  port: number;
  /** Calls the admin API with the admin token; returns status and parsed JSON (or text). */
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }>;
  stop(): Promise<void>;
}

/** Starts a whole gateway in this process on free ports (ephemeral embedded store unless REDIS_URL). */
export interface TestGatewayOptions {
  /** Where log lines go (e.g. a capture for redaction tests); default stdout, or nothing at LOG_LEVEL=silent. */
  logDestination?: DestinationStream;
}

export async function startTestGateway(env: Record<string, string> = {}, opts: TestGatewayOptions = {}): Promise<TestGateway> {
  const settings = loadSettings({
    env: {
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: '0',
      ADMIN_PORT: '0',
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      TOKEN_SECRET: TEST_TOKEN_SECRET,
      DATA_DIR: '',
      CONTROLLER_ENABLED: 'false',
      LOG_LEVEL: 'silent',
      ACCESS_LOG: 'false',
      ...env,
    },
  });
  const logger = settings.LOG_LEVEL === 'silent' ? silentLogger() : createLogger(settings.LOG_LEVEL, opts.logDestination);
  const running = await startGateway(settings, logger);
  const url = `http://127.0.0.1:${running.gatewayPort}`;
  const adminUrl = `http://127.0.0.1:${running.adminPort}`;
  return {
    running,
    url,
    adminUrl,
    port: running.gatewayPort,
    admin: (method, path, body) => adminCall(adminUrl, TEST_ADMIN_TOKEN, method, path, body),
    stop: () => running.shutdown('test'),
  };
}

export async function adminCall(adminUrl: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(adminUrl + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

export interface SpawnedGateway {
  child: ChildProcess;
  url: string;
  adminUrl: string;
  port: number;
  adminPort: number;
  /** Every log line so far (parsed JSON where possible). */
  lines: string[];
  admin(method: string, path: string, body?: unknown): ReturnType<typeof adminCall>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `src/main.ts` as a separate process (for signals, restarts and multi-instance tests). */
export async function spawnGateway(env: Record<string, string> = {}, args: string[] = []): Promise<SpawnedGateway> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: process.cwd(),
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      // The run's own temp folder (run-tests.mjs): replica work dirs and the like go there, not to /tmp.
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: '0',
      ADMIN_PORT: '0',
      ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      TOKEN_SECRET: TEST_TOKEN_SECRET,
      DATA_DIR: '',
      CONTROLLER_ENABLED: 'false',
      LOG_LEVEL: 'info',
      ACCESS_LOG: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const started = new Promise<{ port: number; adminPort: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${lines.join('\n')}`)), 20_000);
    const onLine = (line: string) => {
      lines.push(line);
      if (!line.includes('modelgate started')) return;
      try {
        const entry = JSON.parse(line);
        clearTimeout(timer);
        resolve({ port: Number(new URL(entry.gateway).port), adminPort: Number(new URL(entry.admin).port) });
      } catch {
        // not the JSON start line
      }
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', (l) => lines.push(l));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before starting:\n${lines.join('\n')}`));
    });
  });
  const { port, adminPort } = await started;
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const adminToken = env.ADMIN_TOKEN ?? TEST_ADMIN_TOKEN;
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    adminUrl,
    port,
    adminPort,
    lines,
    admin: (method, path, body) => adminCall(adminUrl, adminToken, method, path, body),
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
