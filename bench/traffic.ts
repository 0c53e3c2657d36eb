/**
 * `npm run bench -- traffic`: what traffic control costs on the hot path. Three endpoints on one
 * gateway, one upstream, POST /v1/chat/completions answered with an OpenAI-style JSON body:
 *
 * - `plain`: public, no traffic feature (`usage.meter: false`, no cap, no limit): the baseline.
 * - `metered`: public, usage metering only (the default for an endpoint).
 * - `private`: a private endpoint with a plain token, no traffic feature: the baseline of
 * - `capped`: private, `max_in_flight_per_route` (high enough never to queue) + a token with a
 *   requests-per-minute limit it never reaches + metering: every feature on the request path.
 *
 * The measure is the gateway process's CPU time per request (utime + stime from /proc, over a
 * fixed number of requests), which a busy shared machine disturbs far less than req/s; req/s is
 * reported too. Alternating rounds, median per endpoint, ratios within the run. Writes
 * bench/results/traffic.md. `--compare DIR` runs a second gateway from another build (DIR/main.js)
 * in the same rounds: a before/after under the same conditions.
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';
import { TokenIssuer } from '../src/auth/issuer.js';
import { buildGateway, cpuMicros, killAll, median, percentile, ROOT, spawnGateway, spawnScript, TOKEN_SECRET, type Gateway } from './lib.js';

const quick = process.argv.includes('--quick');
/** `--access-log`: the access log on, as `npm start` (and the referee) run the gateway. */
const accessLog = process.argv.includes('--access-log');
const gatewayEnv = { ACCESS_LOG: accessLog ? 'true' : 'false' };
// Many short rounds: an endpoint and its baseline run seconds apart, so the ratio taken within a
// round sees the same machine; the median over rounds steadies it on a shared, busy machine.
const ROUNDS = quick ? 5 : 21;
const REQUESTS = quick ? 3_000 : 4_000;
const CONNECTIONS = 32;
const BODY = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16 });
const log = (msg: string) => process.stderr.write(`[bench traffic] ${msg}\n`);

interface Row {
  name: string;
  rps: number[];
  p99: number[];
  cpuUs: number[];
}

/** `--compare DIR`: a second gateway from another build (DIR/main.js, e.g. main's) in the same rounds. */
function compareDir(): string | null {
  const i = process.argv.indexOf('--compare');
  return i < 0 ? null : resolve(process.argv[i + 1]);
}

interface Target {
  build: string;
  name: string;
  port: number;
  pid: number;
  headers: Record<string, string>;
}

/** The four endpoints of the benchmark on one gateway. */
async function setUp(gw: Gateway, build: string, upstreamUrl: string): Promise<Target[]> {
  const put = async (name: string, body: Record<string, unknown>) => {
    const r = await gw.admin('PUT', `/v1/endpoints/${name}`, { routes: [{ id: 'u', url: upstreamUrl }], ...body });
    if (r.status >= 300) throw new Error(`PUT ${name}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body as { id: string };
  };
  await put('plain', { public: true, usage: { meter: false } });
  await put('metered', { public: true });
  const capped = await put('capped', { limits: { max_in_flight_per_route: 10_000 } });
  const priv = await put('private', { usage: { meter: false } });
  const issuer = new TokenIssuer(TOKEN_SECRET);
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const plainToken = (await issuer.issue({ endpointId: priv.id, sub: 'bench', exp })).token;
  const token = (await issuer.issue({ endpointId: capped.id, sub: 'bench', exp, rateLimit: { requests_per_minute: 100_000_000 } })).token;
  const base = { build, port: gw.port, pid: gw.child.pid! };
  return [
    { ...base, name: 'plain', headers: { host: 'plain.localhost' } },
    { ...base, name: 'metered', headers: { host: 'metered.localhost' } },
    { ...base, name: 'private', headers: { host: 'private.localhost', authorization: `Bearer ${plainToken}` } },
    { ...base, name: 'capped', headers: { host: 'capped.localhost', authorization: `Bearer ${token}` } },
  ];
}

/** Public endpoints compare with `plain`, private ones with `private`, within the same build. */
function baselineName(name: string): string {
  return name === 'capped' || name === 'private' ? 'private' : 'plain';
}

async function main(): Promise<void> {
  buildGateway();
  const other = compareDir();
  const upstream = await spawnScript('upstream.ts');
  const gws: Gateway[] = [await spawnGateway(gatewayEnv)];
  try {
    const url = `http://127.0.0.1:${upstream.port}`;
    const targets = await setUp(gws[0], 'this', url);
    if (other !== null) {
      gws.push(await spawnGateway(gatewayEnv, [], [], join(other, 'main.js')));
      targets.push(...(await setUp(gws[1], 'compared', url)));
    }
    const run = async (t: Target, amount: number) => {
      const cpuBefore = cpuMicros(t.pid);
      const r = await autocannon({
        url: `http://127.0.0.1:${t.port}/v1/chat/completions`,
        method: 'POST',
        body: BODY,
        headers: { ...t.headers, 'content-type': 'application/json' },
        connections: CONNECTIONS,
        amount,
      });
      if (r.non2xx + r.errors > 0) throw new Error(`${t.build} ${t.name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      return { rps: r['2xx'] / r.duration, p99: r.latency.p99, cpuUs: (cpuMicros(t.pid) - cpuBefore) / r['2xx'] };
    };
    for (const t of targets) await run(t, 1000);
    const rows: Row[] = targets.map((t) => ({ name: t.name, rps: [], p99: [], cpuUs: [] }));
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < targets.length; k++) {
        const i = (k + round) % targets.length;
        const s = await run(targets[i], REQUESTS);
        rows[i].rps.push(s.rps);
        rows[i].p99.push(s.p99);
        rows[i].cpuUs.push(s.cpuUs);
        log(`round ${round + 1} ${targets[i].build} ${targets[i].name}: ${s.cpuUs.toFixed(1)} µs CPU/request, ${s.rps.toFixed(0)} req/s p99 ${s.p99} ms`);
      }
    }
    const rowOf = (build: string, name: string) => rows[targets.findIndex((t) => t.build === build && t.name === name)];
    const lines = [
      '# Traffic control on the hot path',
      '',
      `\`npm run bench -- traffic${quick ? ' --quick' : ''}${accessLog ? ' --access-log' : ''}${other !== null ? ' --compare …' : ''}\`: POST /v1/chat/completions (JSON answer with usage), ${CONNECTIONS} connections, ${ROUNDS} alternating rounds of ${REQUESTS} requests per endpoint, medians. Embedded store (one instance: the lock-free slot counters), access log ${accessLog ? 'on (to a file)' : 'off'}. The gateway's CPU time per request is the measure; req/s depends on what else the machine runs. "Per-round" is the median of the ratios taken within each round (the endpoint and its baseline measured seconds apart), steadier than the ratio of medians on a busy machine; "middle half" is the spread of those ratios (25th to 75th percentile).`,
      other !== null ? `\nBuilds: \`this\` (this tree) and \`compared\` (${other}), both gateways running, every round alternating all eight endpoints.` : '',
      '',
      '| build | endpoint | CPU µs / request | vs its baseline | per-round (median) | per-round (middle half) | req/s | p99 ms |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...targets.map((t, i) => {
        const r = rows[i];
        const base = rowOf(t.build, baselineName(t.name));
        const cpu = median(r.cpuUs);
        const ratios = r.cpuUs.map((v, k) => v / base.cpuUs[k]);
        const pct = (x: number) => `${((x - 1) * 100).toFixed(1)} %`;
        const middle = r === base ? '' : `${pct(percentile(ratios, 25))} … ${pct(percentile(ratios, 75))}`;
        return `| ${t.build} | ${t.name} | ${cpu.toFixed(1)} | ${pct(cpu / median(base.cpuUs))} | ${pct(median(ratios))} | ${middle} | ${median(r.rps).toFixed(0)} | ${median(r.p99)} |`;
      }),
      '',
      `Run at ${new Date().toISOString()}, load average at the end ${loadavg()[0].toFixed(2)}.`,
      '',
    ];
    writeFileSync(join(ROOT, 'bench/results/traffic.md'), lines.join('\n'));
    process.stdout.write(lines.join('\n'));
  } finally {
    for (const gw of gws) await gw.stop();
    await upstream.stop();
    killAll();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  killAll();
  process.exit(1);
});
