/**
 * `npm run bench -- traffic --pinned`: what traffic control costs, by the referee's method
 * (bench/pinned.ts, ../shared/bench-harness): the gateway alone on CPU 0 with `npm start`'s
 * settings (access log on), wrk (1 thread, 64 connections, POST /v1/chat/completions from a Lua
 * script) and an nginx origin answering an OpenAI-style completion with `usage` on CPU 1. Each
 * endpoint runs saturated, so its req/s is the gateway's throughput for it; endpoints alternate
 * inside every round and each is compared with its baseline within the round:
 *
 * - `metered` (public, usage metering: the default for an endpoint) against `plain` (public, `usage.meter: false`);
 * - `capped` (private, `max_in_flight_per_route` high enough never to queue, a token with a
 *   requests-per-minute limit it never reaches, metering) against `private` (private, plain token, no metering).
 *
 * Cost = 1 − median of the per-round req/s ratios (the issue's target: ≤ 5%). The gateway's CPU
 * time per request (utime + stime from /proc) is reported beside it. Writes bench/results/traffic-pinned.md.
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { TokenIssuer } from '../src/auth/issuer.js';
import { buildGateway, cpuMicros, killAll, median, ROOT, spawnGateway, TMP, TOKEN_SECRET } from './lib.js';
import { ensureTools, PROXY_CPU, startOrigin, wrk } from './pinned.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 3 : 9;
const SECONDS = quick ? 3 : 5;
const BODY = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16 });
const log = (msg: string) => process.stderr.write(`[bench traffic --pinned ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Target {
  name: string;
  baseline: string;
  url: string;
  headers: string[];
  rps: number[];
  cpuUs: number[];
  errors: number;
}

async function main(): Promise<void> {
  ensureTools();
  buildGateway();
  const load0 = loadavg();
  const origin = await startOrigin();
  const script = join(TMP, 'post.lua');
  writeFileSync(script, `wrk.method = "POST"\nwrk.body = '${BODY}'\nwrk.headers["Content-Type"] = "application/json"\n`);
  // `npm start`'s defaults: access log on at LOG_LEVEL=info, written to a file.
  const gw = await spawnGateway({ ACCESS_LOG: 'true', LOG_LEVEL: 'info' }, [], ['taskset', '-c', PROXY_CPU]);
  try {
    const up = `http://127.0.0.1:${origin.port}`;
    const put = async (name: string, body: Record<string, unknown>) => {
      const r = await gw.admin('PUT', `/v1/endpoints/${name}`, { routes: [{ id: 'u', url: up }], ...body });
      if (r.status >= 300) throw new Error(`PUT ${name}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body as { id: string };
    };
    await put('plain', { public: true, usage: { meter: false } });
    await put('metered', { public: true });
    const priv = await put('private', { usage: { meter: false } });
    const capped = await put('capped', { limits: { max_in_flight_per_route: 10_000 } });
    const issuer = new TokenIssuer(TOKEN_SECRET);
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const plainToken = (await issuer.issue({ endpointId: priv.id, sub: 'bench', exp })).token;
    const cappedToken = (await issuer.issue({ endpointId: capped.id, sub: 'bench', exp, rateLimit: { requests_per_minute: 100_000_000 } })).token;
    const g = `http://127.0.0.1:${gw.port}/e`;
    const target = (name: string, baseline: string, headers: string[]): Target => ({ name, baseline, url: `${g}/${name}/v1/chat/completions`, headers, rps: [], cpuUs: [], errors: 0 });
    const targets = [
      target('plain', 'plain', []),
      target('metered', 'plain', []),
      target('private', 'private', [`Authorization: Bearer ${plainToken}`]),
      target('capped', 'private', [`Authorization: Bearer ${cappedToken}`]),
    ];
    const pid = gw.child.pid!;
    for (const t of targets) wrk(t.url, 2, t.headers, script); // prime: JIT, pools
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(k + r) % targets.length];
        wrk(t.url, 1, t.headers, script);
        const before = cpuMicros(pid);
        const x = wrk(t.url, SECONDS, t.headers, script);
        const cpuUs = (cpuMicros(pid) - before) / Math.max(1, x.rps * SECONDS);
        t.rps.push(x.rps);
        t.cpuUs.push(cpuUs);
        t.errors += x.errors;
        log(`round ${r + 1} ${t.name}: ${x.rps.toFixed(0)} req/s, ${cpuUs.toFixed(1)} µs CPU/request, cpu0 ${x.cpu0.toFixed(0)}%${x.errors ? `, errors ${x.errors}` : ''}`);
      }
    }
    // Metering really ran: the usage the origin reported, summed by the gateway. (Asked twice: the
    // admin connection from before the rounds may have timed out while wrk ran.)
    const usageOf = () => gw.admin('GET', '/v1/endpoints/metered/usage');
    const usage = (await usageOf().catch(usageOf)).body as { requests: number; prompt_tokens: number };
    const load1 = loadavg();
    const byName = new Map(targets.map((t) => [t.name, t]));
    const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
    const lines = [
      '# Traffic control on the hot path, by the referee’s method',
      '',
      `\`npm run bench -- traffic --pinned${quick ? ' --quick' : ''}\`: the gateway alone on CPU ${PROXY_CPU} with \`npm start\`'s settings (access log on, \`LOG_LEVEL=info\`, stdout to a file); wrk (1 thread, 64 connections, POST /v1/chat/completions, ${BODY.length} B JSON body) and an nginx origin answering an OpenAI-style completion with \`usage\` on the other CPU. ${ROUNDS} rounds of ${SECONDS} s per endpoint after 1 s of warm-up, endpoints alternated inside each round, each saturated. "Cost" is 1 − the median of the per-round req/s ratios to the baseline (the endpoint and its baseline measured seconds apart); CPU per request is the gateway's utime + stime over the round.`,
      '',
      '| endpoint | baseline | req/s (median) | cost (req/s, per-round median) | per-round ratios | CPU µs / request (median) | CPU vs baseline | errors |',
      '| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |',
    ];
    const costs: Record<string, number> = {};
    for (const t of targets) {
      const base = byName.get(t.baseline)!;
      const ratios = t.rps.map((v, i) => v / base.rps[i]);
      const cpuRatios = t.cpuUs.map((v, i) => v / base.cpuUs[i]);
      costs[t.name] = 1 - median(ratios);
      lines.push(
        `| ${t.name} | ${t.baseline} | ${median(t.rps).toFixed(0)} | ${t === base ? '–' : pct(costs[t.name])} | ${t === base ? '' : ratios.map((x) => x.toFixed(3)).join(', ')} | ${median(t.cpuUs).toFixed(1)} | ${t === base ? '–' : pct(median(cpuRatios) - 1)} | ${t.errors} |`,
      );
    }
    const verdict = (name: string) => `${name} ${pct(costs[name])}: ${costs[name] <= 0.05 ? '**within** the 5% target' : '**over** the 5% target'}`;
    lines.push(
      '',
      `Verdict: ${verdict('metered')}; ${verdict('capped')}. Usage metered on \`metered\` during the run: ${usage.requests} requests, ${usage.prompt_tokens} prompt tokens (9 per request from the origin).`,
      '',
      `Run at ${new Date().toISOString()}; load average ${load0.map((x) => x.toFixed(1)).join(' / ')} at the start, ${load1.map((x) => x.toFixed(1)).join(' / ')} at the end.`,
      '',
    );
    writeFileSync(join(ROOT, 'bench/results/traffic-pinned.md'), lines.join('\n'));
    process.stdout.write(lines.join('\n'));
  } finally {
    await gw.stop();
    origin.child.kill('SIGTERM');
    killAll();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  killAll();
  process.exit(1);
});
