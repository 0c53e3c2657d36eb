/**
 * Failover under load: a gateway with three routes (each a bench/upstream.ts process) takes a
 * steady autocannon load; mid-run one route's process is killed (SIGKILL, like a crash) and
 * restarted on the same port a few seconds later. Prints the failed requests (target 0) and the
 * latency before, during and after the change.
 *
 *   npx tsx bench/failover.ts [--connections 32] [--phase-seconds 6] [--down-seconds 3]
 *
 * Runs standalone (its own child processes on free ports); `npm run bench -- failover` may call it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';

const ROOT = join(import.meta.dirname, '..');
const ADMIN_TOKEN = 'bench-admin-token-0123456789';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const CONNECTIONS = arg('connections', 32);
const PHASE_S = arg('phase-seconds', 6);
const DOWN_S = arg('down-seconds', 3);

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
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

/** Spawns a TypeScript entry under tsx and resolves once `ready(line)` returns a value. */
function spawnTs<T>(file: string, env: Record<string, string>, args: string[], ready: (line: string) => T | undefined): Promise<{ child: ChildProcess; value: T }> {
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start:\n${lines.join('\n')}`)), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${file} exited with ${code}:\n${lines.join('\n')}`));
    });
    createInterface({ input: child.stderr! }).on('line', (l) => lines.push(l));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      const value = ready(line);
      if (value !== undefined) {
        clearTimeout(timer);
        resolve({ child, value });
      }
    });
  });
}

function startUpstream(name: string, port: number) {
  return spawnTs('bench/upstream.ts', { UPSTREAM_NAME: name, PORT: String(port) }, [], (line) => (line.startsWith('{"port"') ? true : undefined));
}

async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

async function metric(adminUrl: string, name: string, label = ''): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name) && line.includes(label)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

interface Phase {
  name: string;
  requests: number;
  failed: number;
  p50: number;
  p99: number;
  max: number;
}

async function load(url: string, seconds: number, name: string): Promise<Phase> {
  const r = await autocannon({ url, connections: CONNECTIONS, duration: seconds, headers: { host: 'bench.localhost' } });
  const latency = r.latency as typeof r.latency & { max: number };
  return { name, requests: r.requests.total, failed: r.errors + r.timeouts + r.non2xx, p50: r.latency.p50, p99: r.latency.p99, max: latency.max };
}

async function main(): Promise<void> {
  const ports = [await freePort(), await freePort(), await freePort()];
  const ups = await Promise.all(ports.map((p, i) => startUpstream(`r${i}`, p)));
  const gw = await spawnTs(
    'src/main.ts',
    {
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: '0',
      ADMIN_PORT: '0',
      ADMIN_TOKEN,
      DATA_DIR: '',
      CONTROLLER_ENABLED: 'false',
      LOG_LEVEL: 'info',
      ACCESS_LOG: 'false',
    },
    ['--ephemeral'],
    (line) => {
      if (!line.includes('modelgate started')) return undefined;
      const entry = JSON.parse(line) as { gateway: string; admin: string };
      return { port: Number(new URL(entry.gateway).port), adminUrl: `http://127.0.0.1:${new URL(entry.admin).port}` };
    },
  );
  const { port, adminUrl } = gw.value;
  const put = await fetch(`${adminUrl}/v1/endpoints/bench`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ public: true, routes: ports.map((p, i) => ({ id: `r${i}`, url: `http://127.0.0.1:${p}` })) }),
  });
  if (!put.ok) throw new Error(`PUT endpoint: ${put.status} ${await put.text()}`);
  const url = `http://127.0.0.1:${port}/`;

  process.stdout.write(`warming up (3 s, ${CONNECTIONS} connections)...\n`);
  await load(url, 3, 'warm-up');

  const before = await load(url, PHASE_S, 'before');
  // The change: r1 crashes shortly after the phase starts and comes back DOWN_S later.
  const change = load(url, PHASE_S, 'during kill + restart');
  await sleep(500);
  await stop(ups[1].child, 'SIGKILL');
  const killedAt = Date.now();
  await sleep(DOWN_S * 1000);
  ups[1] = await startUpstream('r1', ports[1]);
  const downMs = Date.now() - killedAt;
  const during = await change;
  const after = await load(url, PHASE_S, 'after');

  // The same, planned: the orchestrator marks r1 terminating, waits for its in-flight requests,
  // stops it, restarts it and marks it healthy again (what the controller does on a restart).
  const patch = (status: string) =>
    fetch(`${adminUrl}/v1/endpoints/bench/routes/r1`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ status }),
    });
  const planned = load(url, PHASE_S, 'planned restart');
  await sleep(500);
  await patch('terminating');
  await sleep(500);
  await stop(ups[1].child, 'SIGTERM');
  await sleep(DOWN_S * 1000);
  ups[1] = await startUpstream('r1', ports[1]);
  await patch('healthy');
  const plannedPhase = await planned;

  const retries = await metric(adminUrl, 'modelgate_retries_total');
  const ejections = await metric(adminUrl, 'modelgate_route_ejections_total');
  const kinds = ['connect', 'reset', 'timeout', 'protocol'];
  const byKind = await Promise.all(kinds.map((k) => metric(adminUrl, 'modelgate_upstream_errors_total', `kind="${k}"`)));
  const upstreamErrors = kinds.map((k, i) => `${k} ${byKind[i]}`).join(', ');

  const rows = [before, during, after, plannedPhase];
  const failed = during.failed;
  const out = [
    `failover: 3 routes, ${CONNECTIONS} connections, ${PHASE_S} s per phase; route r1 SIGKILLed and restarted after ${(downMs / 1000).toFixed(1)} s, then restarted again the planned way`,
    '',
    '| phase | requests | failed | p50 ms | p99 ms | max ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.name} | ${r.requests} | ${r.failed} | ${r.p50} | ${r.p99} | ${r.max} |`),
    '',
    `failed requests during the crash: ${failed} (target 0); during the planned restart: ${plannedPhase.failed}`,
    `p99 latency during the change: ${during.p99} ms (before: ${before.p99} ms)`,
    `gateway counters: retries ${retries}, ejections ${ejections}, upstream errors (${upstreamErrors})`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);

  await stop(gw.child, 'SIGTERM');
  for (const u of ups) await stop(u.child, 'SIGTERM');
}

main().catch((err: unknown) => {
  process.stderr.write(`failover: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
