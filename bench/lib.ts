/**
 * Benchmark plumbing: child processes (each system in its own), free ports, a fixed-rate
 * latency probe with microsecond resolution (autocannon records whole milliseconds), stats.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Pool } from 'undici';

export const ADMIN_TOKEN = 'bench-admin-token-0123456789';
export const TOKEN_SECRET = 'bench-token-secret-0123456789abcdef0123456789';
export const ROOT = join(import.meta.dirname, '..');
export const TMP = mkdtempSync(join(tmpdir(), 'modelgate-bench-'));

const children = new Set<ChildProcess>();
export function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', () => {
  killAll();
  // Gateway logs and data of this run: gone with it.
  rmSync(TMP, { recursive: true, force: true });
});

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface Proc {
  child: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

function track(child: ChildProcess): Promise<void> {
  children.add(child);
  return new Promise((resolve) =>
    child.once('exit', () => {
      children.delete(child);
      resolve();
    }),
  );
}

function stopper(child: ChildProcess, exited: Promise<void>) {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  };
}

/** Runs a bench/*.ts script that prints `{"port":N}` on its first stdout line. */
export async function spawnScript(script: string, env: Record<string, string> = {}, wrap: string[] = []): Promise<Proc> {
  const argv = [process.execPath, '--import', 'tsx', join(ROOT, 'bench', script)];
  const child = spawn(wrap[0] ?? argv[0], [...wrap.slice(1), ...(wrap.length > 0 ? argv : argv.slice(1))], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = track(child);
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    void exited.then(() => reject(new Error(`${script} exited before listening`)));
  });
  child.stdout!.resume();
  return { child, port, stop: stopper(child, exited) };
}

export interface Gateway extends Proc {
  adminPort: number;
  logFile: string;
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
}

/** Compiles src/ into dist/ so the gateway is measured as `npm start` runs it. */
export function buildGateway(): void {
  const result = spawnSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) throw new Error('npm run build failed');
}

/**
 * The node flags `npm start` (package.json) and the Docker image run the gateway with, so a
 * bench measures what users run. test/unit/scripts/start-flags.test.ts keeps the three in step.
 */
export const START_NODE_FLAGS: readonly string[] = ['--single-threaded-gc', '--no-memory-reducer'];

/**
 * Runs modelgate (dist/main.js, built by buildGateway) in its own process. Its stdout goes to a file (the access log
 * costs the gateway what it costs in production, not the bench's CPU); the start line is read from it.
 */
export async function spawnGateway(env: Record<string, string>, nodeArgs: string[] = [], wrap: string[] = [], mainJs?: string): Promise<Gateway> {
  const port = await freePort();
  const adminPort = await freePort();
  const logFile = join(TMP, `gateway-${port}.log`);
  const fd = openSync(logFile, 'w');
  // The compiled build, as `npm start` runs it (bench/run.ts builds first): tsx would add its
  // own memory and start-up cost to what is measured.
  // `mainJs`: another build (a before/after comparison within one run).
  const entry = mainJs !== undefined ? [mainJs] : existsSync(join(ROOT, 'dist/main.js')) ? [join(ROOT, 'dist/main.js')] : ['--import', 'tsx', join(ROOT, 'src/main.ts')];
  // `wrap` is a command prefix, e.g. ['taskset', '-c', '0'] to pin the gateway to a CPU.
  const argv = [process.execPath, ...START_NODE_FLAGS, ...nodeArgs, ...entry];
  const child = spawn(wrap[0] ?? argv[0], [...wrap.slice(1), ...(wrap.length > 0 ? argv : argv.slice(1))], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(port),
      ADMIN_PORT: String(adminPort),
      ADMIN_TOKEN,
      TOKEN_SECRET,
      DATA_DIR: '',
      CONTROLLER_ENABLED: 'false',
      LOG_LEVEL: 'info',
      ACCESS_LOG: 'false',
      ...env,
    },
    stdio: ['ignore', fd, 'pipe'],
  });
  closeSync(fd);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = track(child);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`modelgate exited at start: ${stderr}`);
    if (readFileSync(logFile, 'utf8').includes('modelgate started')) break;
    if (Date.now() > deadline) throw new Error(`modelgate did not start: ${stderr}`);
    await sleep(50);
  }
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  return {
    child,
    port,
    adminPort,
    logFile,
    stop: stopper(child, exited),
    async admin(method, path, body) {
      const res = await fetch(adminUrl + path, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
  };
}

/** The value after `--name` on the command line (undefined when absent). */
export function cliArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}

/** CPU time (user + system, every thread) of a process so far, in microseconds (Linux /proc; clock ticks of 10 ms). */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the command name.
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** RSS of a process and its children (a cluster primary and its workers), in MiB. */
export function rssMiB(pid: number): number {
  let kb = 0;
  const pids = [pid];
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    if (kids) pids.push(...kids.split(/\s+/).map(Number));
  } catch {
    // no children file: just the process
  }
  for (const p of pids) {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
    if (m) kb += Number(m[1]);
  }
  return kb / 1024;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = Float64Array.from(xs).sort();
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export interface RateResult {
  p50: number;
  p99: number;
  sent: number;
  errors: number;
}

/**
 * Open-loop latency probe: `rate` requests/s for `seconds`, each timed from send to the last
 * body byte with performance.now(). Requests go out on schedule whether or not earlier ones
 * finished (no coordinated omission), over a keep-alive pool of `connections`.
 */
export async function fixedRate(origin: string, headers: Record<string, string>, path: string, rate: number, seconds: number, connections = 50): Promise<RateResult> {
  const pool = new Pool(origin, { connections, pipelining: 1 });
  const total = Math.round(rate * seconds);
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const pending: Promise<void>[] = [];
  const one = async (scheduled: number) => {
    try {
      const res = await pool.request({ path, method: 'GET', headers });
      await res.body.dump();
      if (res.statusCode === 200) latencies.push(performance.now() - scheduled);
      else errors++;
    } catch {
      errors++;
    }
  };
  for (let i = 0; i < total; i++) {
    const scheduled = start + (i * 1000) / rate;
    const wait = scheduled - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(one(scheduled));
    if (pending.length > 5000) await Promise.all(pending.splice(0, 1000));
  }
  await Promise.all(pending);
  await pool.close();
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), sent: total, errors };
}
