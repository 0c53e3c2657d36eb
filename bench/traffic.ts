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
 * bench/results/traffic.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { TokenIssuer } from '../src/auth/issuer.js';
import { buildGateway, killAll, median, ROOT, spawnGateway, spawnScript, TOKEN_SECRET } from './lib.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 3 : 7;
const REQUESTS = quick ? 3_000 : 10_000;
const CONNECTIONS = 32;
const BODY = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16 });
const log = (msg: string) => process.stderr.write(`[bench traffic] ${msg}\n`);

interface Row {
  name: string;
  rps: number[];
  p99: number[];
  cpuUs: number[];
}

/** CPU time (user + system) of a process so far, in microseconds (Linux /proc; clock ticks of 10 ms). */
function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), i.e. 11 and 12 after the command name.
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function main(): Promise<void> {
  buildGateway();
  const upstream = await spawnScript('upstream.ts');
  const gw = await spawnGateway({});
  try {
    const url = `http://127.0.0.1:${upstream.port}`;
    const put = async (name: string, body: Record<string, unknown>) => {
      const r = await gw.admin('PUT', `/v1/endpoints/${name}`, { routes: [{ id: 'u', url }], ...body });
      if (r.status >= 300) throw new Error(`PUT ${name}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body as { id: string };
    };
    await put('plain', { public: true, usage: { meter: false } });
    await put('metered', { public: true });
    const capped = await put('capped', { limits: { max_in_flight_per_route: 10_000 } });
    const priv = await put('private', { usage: { meter: false } });
    const issuer = new TokenIssuer(TOKEN_SECRET);
    const plainToken = (await issuer.issue({ endpointId: priv.id, sub: 'bench', exp: Math.floor(Date.now() / 1000) + 3600 })).token;
    const token = (
      await issuer.issue({ endpointId: capped.id, sub: 'bench', exp: Math.floor(Date.now() / 1000) + 3600, rateLimit: { requests_per_minute: 100_000_000 } })
    ).token;
    const targets: { name: string; headers: Record<string, string> }[] = [
      { name: 'plain', headers: { host: 'plain.localhost' } },
      { name: 'metered', headers: { host: 'metered.localhost' } },
      { name: 'private', headers: { host: 'private.localhost', authorization: `Bearer ${plainToken}` } },
      { name: 'capped', headers: { host: 'capped.localhost', authorization: `Bearer ${token}` } },
    ];
    const pid = gw.child.pid!;
    const run = async (t: (typeof targets)[number], amount: number) => {
      const cpuBefore = cpuMicros(pid);
      const r = await autocannon({
        url: `http://127.0.0.1:${gw.port}/v1/chat/completions`,
        method: 'POST',
        body: BODY,
        headers: { ...t.headers, 'content-type': 'application/json' },
        connections: CONNECTIONS,
        amount,
      });
      if (r.non2xx + r.errors > 0) throw new Error(`${t.name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
      return { rps: r['2xx'] / r.duration, p99: r.latency.p99, cpuUs: (cpuMicros(pid) - cpuBefore) / r['2xx'] };
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
        log(`round ${round + 1} ${targets[i].name}: ${s.cpuUs.toFixed(1)} µs CPU/request, ${s.rps.toFixed(0)} req/s p99 ${s.p99} ms`);
      }
    }
    // Public endpoints compare with `plain`, private ones with `private`.
    const baseOf = (r: Row) => median(rows[r.name === 'capped' || r.name === 'private' ? 2 : 0].cpuUs);
    const lines = [
      '# Traffic control on the hot path',
      '',
      `\`npm run bench -- traffic${quick ? ' --quick' : ''}\`: POST /v1/chat/completions (JSON answer with usage), ${CONNECTIONS} connections, ${ROUNDS} alternating rounds of ${REQUESTS} requests, medians. Embedded store (one instance: the lock-free slot counters). The gateway's CPU time per request is the measure; req/s depends on what else the machine runs.`,
      '',
      '| endpoint | CPU µs / request | vs its baseline | req/s | p99 ms |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows.map((r) => {
        const cpu = median(r.cpuUs);
        return `| ${r.name} | ${cpu.toFixed(1)} | ${((cpu / baseOf(r) - 1) * 100).toFixed(1)} % | ${median(r.rps).toFixed(0)} | ${median(r.p99)} |`;
      }),
      '',
      `Run at ${new Date().toISOString()}.`,
      '',
    ];
    writeFileSync(join(ROOT, 'bench/results/traffic.md'), lines.join('\n'));
    process.stdout.write(lines.join('\n'));
  } finally {
    await gw.stop();
    await upstream.stop();
    killAll();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  killAll();
  process.exit(1);
});
