/**
 * The pinned comparison (the method of the referee harness in ../shared/bench-harness): the
 * proxy under test alone on CPU 0, wrk (Debian's package, 1 thread, 64 connections) and an
 * nginx origin together on CPU 1, the bare node:http + undici proxy and modelgate alternated
 * inside every round, ratios taken per round. modelgate runs with `npm start`'s settings
 * (ACCESS_LOG=true, LOG_LEVEL=info, its stdout going to a file).
 *
 * `npm run bench -- pinned` runs it alone (bench/results/pinned.md); `npm run bench` runs it
 * first and puts it at the head of bench/results/latest.md.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { TokenIssuer } from '../src/auth/issuer.js';
import { freePort, median, ROOT, sleep, spawnGateway, spawnScript, TMP, TOKEN_SECRET, type Proc } from './lib.js';

/** Idle time between the gateway's start (and set-up) and its first load, as on the referee. */
const START_IDLE_MS = 12_000;

/** What the origin answers on /v1/chat/completions: a non-streamed completion with its usage. */
export const COMPLETION =
  '{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":8,"total_tokens":17}}';
export const PROXY_CPU = '0';
export const LOAD_CPU = '1';

export interface PinnedOptions {
  rounds: number;
  seconds: number;
  rate: number;
  rateSeconds: number;
  sse: number;
}

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en', { minimumFractionDigits: d, maximumFractionDigits: d }) : 'n/a');

function have(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

/** wrk and nginx from Debian's packages, installed when missing (needs root, as on the reference machine). */
export function ensureTools(): void {
  const missing = ['wrk', 'nginx', 'taskset'].filter((b) => !have(b));
  if (missing.length === 0) return;
  const pkgs = missing.map((b) => (b === 'taskset' ? 'util-linux' : b));
  if (process.getuid?.() !== 0) throw new Error(`missing ${missing.join(', ')}: apt-get install -y ${pkgs.join(' ')}`);
  log(`installing ${pkgs.join(' ')} (apt-get)`);
  const r = spawnSync('apt-get', ['install', '-y', ...pkgs], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) throw new Error(`apt-get install ${pkgs.join(' ')} failed`);
}

/**
 * nginx origin on CPU 1: `/` a 64-byte JSON body (no disk), `/16k` a 16 KiB file. Same config as the
 * harness, plus `/v1/chat/completions`: an OpenAI-style completion with `usage` (bench/traffic-pinned.ts).
 */
export async function startOrigin(): Promise<{ port: number; child: ChildProcess }> {
  const dir = join(TMP, 'origin');
  mkdirSync(join(dir, 'www'), { recursive: true });
  // nginx's worker runs as an unprivileged user: it must be able to read the 16 KiB file.
  for (const d of [TMP, dir, join(dir, 'www')]) chmodSync(d, 0o755);
  writeFileSync(join(dir, 'www/16k.json'), `{"data":"${'x'.repeat(16384 - 11)}"}`);
  const port = await freePort();
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\nevents { worker_connections 4096; }\n` +
      `http {\n access_log off;\n keepalive_timeout 60s;\n keepalive_requests 1000000;\n sendfile on;\n open_file_cache max=16;\n` +
      ` server {\n  listen 127.0.0.1:${port} backlog=4096;\n  default_type application/json;\n` +
      `  location = /16k { root ${dir}/www; try_files /16k.json =404; }\n` +
      `  location = /v1/chat/completions { return 200 '${COMPLETION}'; }\n` +
      `  location / { return 200 '{"ok":true,"service":"bench-upstream","pad":"0123456789abcdef0"}'; }\n }\n}\n`,
  );
  const child = spawn('taskset', ['-c', LOAD_CPU, 'nginx', '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: 'ignore' });
  // The master stops its worker on SIGTERM; never leave the origin behind if the bench fails.
  process.once('exit', () => child.kill('SIGTERM'));
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/`)).ok) return { port, child };
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error('nginx origin did not start');
}

/** Busy and total jiffies of CPU 0 and CPU 1. */
function cpuSnap(): number[] {
  const out: number[] = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu([01]) (.*)/.exec(line);
    if (!m) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    out.push(v[0] + v[1] + v[2] + v[5] + v[6], v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]);
  }
  return out;
}

export interface WrkSample {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  cpu0: number;
  cpu1: number;
}

const UNIT: Record<string, number> = { us: 1e-3, ms: 1, s: 1e3, m: 60e3 };
function pct(text: string, p: number): number {
  const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(text);
  return m ? Number(m[1]) * UNIT[m[2]] : NaN;
}

/** One wrk run from CPU 1; `script`: a wrk Lua script (the POST of bench/traffic-pinned.ts). */
export function wrk(url: string, seconds: number, headers: string[], script?: string): WrkSample {
  const before = cpuSnap();
  const args = ['-c', LOAD_CPU, 'wrk', '-t1', '-c64', `-d${seconds}s`, '--timeout', '5s', '--latency', ...headers.flatMap((h) => ['-H', h]), ...(script ? ['-s', script] : []), url];
  const r = spawnSync('taskset', args, { encoding: 'utf8', timeout: (seconds + 15) * 1000 });
  const after = cpuSnap();
  const text = r.stdout ?? '';
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? 0),
    p50: pct(text, 50),
    p99: pct(text, 99),
    errors: (non2xx ? Number(non2xx[1]) : 0) + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
    cpu0: (100 * (after[0] - before[0])) / Math.max(1, after[1] - before[1]),
    cpu1: (100 * (after[2] - before[2])) / Math.max(1, after[3] - before[3]),
  };
}

/** Open-loop fixed rate from a child process on CPU 1 (bench/fixed-rate-client.ts). */
function fixedRateOn(url: string, rate: number, seconds: number, headers: string[]): { p50: number; p99: number; errors: number } {
  const r = spawnSync('taskset', ['-c', LOAD_CPU, process.execPath, '--import', 'tsx', join(ROOT, 'bench/fixed-rate-client.ts'), url, String(rate), String(seconds), ...headers], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: (seconds + 30) * 1000,
  });
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { p50: number; p99: number; errors: number };
  } catch {
    return { p50: NaN, p99: NaN, errors: -1 };
  }
}

/** SSE: sequential streams from CPU 1 (bench/sse-client.ts), time to the first event. */
function sseOn(url: string, n: number, headers: string[]): { p50: number; complete: number } {
  const r = spawnSync('taskset', ['-c', LOAD_CPU, process.execPath, '--import', 'tsx', join(ROOT, 'bench/sse-client.ts'), url, String(n), ...headers], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  });
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { p50: number; complete: number };
  } catch {
    return { p50: NaN, complete: 0 };
  }
}

interface System {
  name: string;
  small: string;
  big: string;
  sse: string;
  headers: string[];
}

export async function pinned(opts: PinnedOptions): Promise<{ md: string[]; summary: string[][] }> {
  ensureTools();
  const load0 = loadavg();
  const origin = await startOrigin();
  const sseOrigin = await spawnScript('upstream.ts', { UPSTREAM_NAME: 'sse' }, ['taskset', '-c', LOAD_CPU]);
  const up = `http://127.0.0.1:${origin.port}`;
  const sseUp = `http://127.0.0.1:${sseOrigin.port}`;
  const procs: Proc[] = [sseOrigin];
  try {
    const bare = await spawnScript('bare-proxy.ts', { UPSTREAM: up, SSE_UPSTREAM: sseUp }, ['taskset', '-c', PROXY_CPU]);
    procs.push(bare);
    // `npm start`'s defaults: access log on at LOG_LEVEL=info, written to a file.
    const gw = await spawnGateway({ ACCESS_LOG: 'true', LOG_LEVEL: 'info' }, [], ['taskset', '-c', PROXY_CPU]);
    procs.push(gw);
    const put = async (name: string, isPublic: boolean, url: string) => {
      const res = await gw.admin('PUT', `/v1/endpoints/${name}`, { public: isPublic, routes: [{ id: 'u', url }] });
      if (res.status >= 300) throw new Error(`PUT ${name}: ${res.status}`);
      return res.body as { id: string };
    };
    await put('bench', true, up);
    await put('sse', true, sseUp);
    const priv = await put('benchp', false, up);
    const issued = await new TokenIssuer(TOKEN_SECRET).issue({ endpointId: priv.id, sub: 'bench', exp: Math.floor(Date.now() / 1000) + 3600 });
    const g = `http://127.0.0.1:${gw.port}`;
    const b = `http://127.0.0.1:${bare.port}`;
    const systems: System[] = [
      { name: 'bare node:http + undici proxy', small: `${b}/`, big: `${b}/16k`, sse: `${b}/sse`, headers: [] },
      { name: 'modelgate public', small: `${g}/e/bench/`, big: `${g}/e/bench/16k`, sse: `${g}/e/sse/sse`, headers: [] },
      { name: 'modelgate private (token)', small: `${g}/e/benchp/`, big: `${g}/e/benchp/16k`, sse: '', headers: [`Authorization: BackendAI ${issued.token}`] },
    ];
    // The referee starts every system first and primes the gateway only after the others, so the
    // gateway idles for about 12 s after answering its set-up requests, as a deployed one does
    // until traffic comes. That idle once left it in a slow state for good (docs/performance.md,
    // "The slow state after an idle start"); priming at once hid it, so wait as the referee does.
    // The referee's readiness and body-size checks: three requests answered one by one.
    for (const path of ['/', '/', '/16k']) await (await fetch(`${g}/e/bench${path}`)).arrayBuffer();
    await sleep(START_IDLE_MS);
    for (const s of systems) for (const u of [s.small, s.big]) wrk(u, 2, s.headers); // prime: JIT, pools

    const samples = new Map<string, WrkSample[]>();
    const key = (s: System, wl: string) => `${s.name}|${wl}`;
    for (let r = 0; r < opts.rounds; r++) {
      for (const wl of ['64 B', '16 KiB']) {
        for (let k = 0; k < systems.length; k++) {
          const s = systems[(k + r) % systems.length];
          const url = wl === '64 B' ? s.small : s.big;
          wrk(url, 1, s.headers);
          const x = wrk(url, opts.seconds, s.headers);
          (samples.get(key(s, wl)) ?? samples.set(key(s, wl), []).get(key(s, wl))!).push(x);
          log(`  pinned round ${r + 1} ${wl} ${s.name}: ${fmt(x.rps)} req/s p99 ${fmt(x.p99, 2)} ms cpu0 ${fmt(x.cpu0)}% cpu1 ${fmt(x.cpu1)}%${x.errors ? ` errors ${x.errors}` : ''}`);
        }
      }
    }
    const rate = new Map<string, { p50: number[]; p99: number[]; errors: number }>();
    const sse = new Map<string, { p50: number[]; complete: number; total: number }>();
    for (let r = 0; r < opts.rounds; r++) {
      for (const s of systems) {
        const x = fixedRateOn(s.small, opts.rate, opts.rateSeconds, s.headers);
        const e = rate.get(s.name) ?? rate.set(s.name, { p50: [], p99: [], errors: 0 }).get(s.name)!;
        e.p50.push(x.p50);
        e.p99.push(x.p99);
        e.errors += x.errors;
        log(`  pinned round ${r + 1} ${opts.rate} req/s ${s.name}: p50 ${fmt(x.p50, 2)} ms p99 ${fmt(x.p99, 2)} ms`);
      }
      for (const s of systems) {
        if (!s.sse) continue;
        const x = sseOn(s.sse, opts.sse, s.headers);
        const e = sse.get(s.name) ?? sse.set(s.name, { p50: [], complete: 0, total: 0 }).get(s.name)!;
        e.p50.push(x.p50);
        e.complete += x.complete;
        e.total += opts.sse;
      }
    }
    const load1 = loadavg();

    const bareName = systems[0].name;
    const ratio = (name: string, wl: string) => {
      const mine = samples.get(`${name}|${wl}`)!;
      const ref = samples.get(`${bareName}|${wl}`)!;
      return median(mine.map((m, i) => m.rps / ref[i].rps));
    };
    const md: string[] = [
      `## Pinned comparison with the bare proxy (the referee's method; \`npm start\` settings)`,
      '',
      `Each proxy alone on CPU ${PROXY_CPU} (\`taskset\`); wrk ${'(1 thread, 64 connections)'}, the nginx origin and the SSE origin on CPU ${LOAD_CPU}. ` +
        `${opts.rounds} rounds of ${opts.seconds} s (after 1 s of warm-up) per system and body size, systems alternated inside each round; ` +
        `"× bare" is the median of the per-round ratios. modelgate runs with ACCESS_LOG=true and LOG_LEVEL=info (the defaults), its stdout to a file. ` +
        `Load average ${load0.map((x) => x.toFixed(1)).join(' / ')} at the start, ${load1.map((x) => x.toFixed(1)).join(' / ')} at the end (1/5/15 min): ` +
        `with other work on the machine, cpu0 and cpu1 include it, and absolute req/s are not comparable between runs; the ratios are.`,
      '',
      '| system | body | req/s (median) | × bare | p50 ms | p99 ms | rounds req/s | cpu0 % | cpu1 % | errors |',
      '| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |',
    ];
    for (const wl of ['64 B', '16 KiB']) {
      for (const s of systems) {
        const xs = samples.get(`${s.name}|${wl}`)!;
        md.push(
          `| ${s.name} | ${wl} | ${fmt(median(xs.map((x) => x.rps)))} | ${fmt(ratio(s.name, wl), 2)} | ${fmt(median(xs.map((x) => x.p50)), 2)} | ${fmt(median(xs.map((x) => x.p99)), 2)} | ${xs.map((x) => fmt(x.rps)).join(', ')} | ${fmt(median(xs.map((x) => x.cpu0)))} | ${fmt(median(xs.map((x) => x.cpu1)))} | ${xs.reduce((a, x) => a + x.errors, 0)} |`,
        );
      }
    }
    md.push('', `Open loop at ${opts.rate} req/s (64 B), ${opts.rateSeconds} s per round after 2 s of warm-up, latency from each request's scheduled send; median of ${opts.rounds} rounds.`, '');
    md.push('| system | p50 ms | p99 ms | errors |', '| --- | ---: | ---: | ---: |');
    for (const s of systems) {
      const e = rate.get(s.name)!;
      md.push(`| ${s.name} | ${fmt(median(e.p50), 2)} | ${fmt(median(e.p99), 2)} | ${e.errors} |`);
    }
    md.push('', `SSE (origin on CPU ${LOAD_CPU}: first event at once, then every 5 ms): ${opts.sse} sequential streams per system and round, time to the first event.`, '');
    md.push('| system | first event p50 ms | streams complete |', '| --- | ---: | ---: |');
    for (const [name, e] of sse) md.push(`| ${name} | ${fmt(median(e.p50), 3)} | ${e.complete}/${e.total} |`);
    md.push('');

    const pass = (ok: boolean) => (ok ? '**pass**' : '**miss**');
    const pub = ratio(systems[1].name, '64 B');
    const prv = ratio(systems[2].name, '64 B');
    const big = ratio(systems[1].name, '16 KiB');
    const p99Added = median(rate.get(systems[1].name)!.p99) - median(rate.get(bareName)!.p99);
    const sseAdded = median(sse.get(systems[1].name)!.p50) - median(sse.get(bareName)!.p50);
    const summary = [
      ['pinned: public 64 B vs bare proxy (access log on)', '≥ 1.00×', `${fmt(pub, 2)}×`, pass(pub >= 1)],
      ['pinned: private (token) 64 B vs bare proxy', '≥ 0.95×', `${fmt(prv, 2)}×`, pass(prv >= 0.95)],
      ['pinned: public 16 KiB vs bare proxy', '≥ 1.00×', `${fmt(big, 2)}×`, pass(big >= 1)],
      [`pinned: p99 at ${opts.rate} req/s, added over bare proxy`, '≤ 1 ms', `${fmt(p99Added, 2)} ms`, pass(p99Added <= 1)],
      ['pinned: first SSE event p50, added over bare proxy', '≤ 0.3 ms', `${fmt(sseAdded, 3)} ms`, pass(sseAdded <= 0.3)],
    ];
    return { md, summary };
  } finally {
    for (const p of procs.reverse()) await p.stop();
    origin.child.kill('SIGTERM');
  }
}
