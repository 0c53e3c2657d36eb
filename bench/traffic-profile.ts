/**
 * `npm run bench -- traffic --profile`: where traffic control's extra CPU goes. For each endpoint
 * of bench/traffic.ts, a gateway of its own runs under `node --cpu-prof` for a fixed number of
 * requests; the self time of every function is divided by the requests, and the table lists the
 * functions whose time per request differs most between an endpoint and its baseline (`metered`
 * vs `plain`, `capped` vs `private`). Writes bench/results/traffic-profile.md.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { TokenIssuer } from '../src/auth/issuer.js';
import { buildGateway, killAll, ROOT, spawnGateway, spawnScript, TMP, TOKEN_SECRET } from './lib.js';

const REQUESTS = 40_000;
const CONNECTIONS = 32;
const BODY = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16 });
const log = (msg: string) => process.stderr.write(`[bench traffic-profile] ${msg}\n`);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

type Kind = 'plain' | 'metered' | 'private' | 'capped';

/** Self µs per request by function, over the measured requests only (the profile is cut to their span). */
async function profileOne(kind: Kind, upstreamUrl: string): Promise<{ perFn: Map<string, number>; busyUs: number }> {
  const dir = join(TMP, `prof-${kind}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const gw = await spawnGateway({}, ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--cpu-prof-interval=200']);
  const body: Record<string, unknown> = { routes: [{ id: 'u', url: upstreamUrl }] };
  if (kind === 'plain') Object.assign(body, { public: true, usage: { meter: false } });
  if (kind === 'metered') Object.assign(body, { public: true });
  if (kind === 'private') Object.assign(body, { usage: { meter: false } });
  if (kind === 'capped') Object.assign(body, { limits: { max_in_flight_per_route: 10_000 } });
  const put = await gw.admin('PUT', '/v1/endpoints/ep', body);
  const headers: Record<string, string> = { host: 'ep.localhost', 'content-type': 'application/json' };
  if (kind === 'private' || kind === 'capped') {
    const issuer = new TokenIssuer(TOKEN_SECRET);
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const rateLimit = kind === 'capped' ? { requests_per_minute: 100_000_000 } : undefined;
    headers.authorization = `Bearer ${(await issuer.issue({ endpointId: (put.body as { id: string }).id, sub: 'bench', exp, rateLimit })).token}`;
  }
  const run = (amount: number) =>
    autocannon({ url: `http://127.0.0.1:${gw.port}/v1/chat/completions`, method: 'POST', body: BODY, headers, connections: CONNECTIONS, amount });
  await run(5_000);
  const t0 = performance.timeOrigin + performance.now();
  const r = await run(REQUESTS);
  const t1 = performance.timeOrigin + performance.now();
  if (r.non2xx + r.errors > 0) throw new Error(`${kind}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  await gw.stop();
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))!;
  const prof = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  // Profile times are µs on the monotonic clock of the gateway; align by the profile's end
  // (stop comes right after the run) is unreliable, so keep the samples of the last
  // (t1 - t0) span before the process stopped serving: the busy samples of the measured run.
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const times: number[] = [];
  let t = prof.startTime;
  for (const d of prof.timeDeltas) times.push((t += d));
  const spanUs = (t1 - t0) * 1000;
  // The measured run is the last busy stretch: find the last non-idle sample before shutdown.
  let last = times.length - 1;
  while (last > 0 && byId.get(prof.samples[last])!.callFrame.functionName === '(idle)') last--;
  const from = times[last] - spanUs;
  const perFn = new Map<string, number>();
  let busyUs = 0;
  for (let i = 1; i <= last; i++) {
    if (times[i] < from) continue;
    const n = byId.get(prof.samples[i])!;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') continue;
    const us = prof.timeDeltas[i];
    busyUs += us;
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(dist|src)\//, '$1/')}:${lineNumber + 1}`;
    perFn.set(key, (perFn.get(key) ?? 0) + us);
  }
  for (const [k, v] of perFn) perFn.set(k, v / REQUESTS);
  log(`${kind}: ${(busyUs / REQUESTS).toFixed(1)} µs busy per request (${r['2xx']} requests)`);
  return { perFn, busyUs: busyUs / REQUESTS };
}

function diff(name: string, a: { perFn: Map<string, number>; busyUs: number }, base: { perFn: Map<string, number>; busyUs: number }): string[] {
  const keys = new Set([...a.perFn.keys(), ...base.perFn.keys()]);
  const rows = [...keys].map((k) => [k, (a.perFn.get(k) ?? 0) - (base.perFn.get(k) ?? 0), a.perFn.get(k) ?? 0] as const);
  rows.sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]));
  return [
    `## ${name}: ${a.busyUs.toFixed(1)} vs ${base.busyUs.toFixed(1)} µs busy per request`,
    '',
    '| function (self time) | Δ µs / request | µs / request |',
    '| --- | ---: | ---: |',
    ...rows.slice(0, 40).map(([k, d, v]) => `| \`${k.replace(/\|/g, '\\|')}\` | ${d.toFixed(2)} | ${v.toFixed(2)} |`),
    '',
  ];
}

async function main(): Promise<void> {
  buildGateway();
  const upstream = await spawnScript('upstream.ts');
  try {
    const url = `http://127.0.0.1:${upstream.port}`;
    const only = process.argv.includes('--capped') ? (['private', 'capped'] as Kind[]) : (['plain', 'metered'] as Kind[]);
    const res = new Map<Kind, Awaited<ReturnType<typeof profileOne>>>();
    for (const k of only) res.set(k, await profileOne(k, url));
    const lines = ['# Traffic control: CPU profile difference', '', `${REQUESTS} requests per endpoint, ${CONNECTIONS} connections, sampling every 200 µs; self time per request.`, ''];
    lines.push(...diff(`${only[1]} vs ${only[0]}`, res.get(only[1])!, res.get(only[0])!));
    writeFileSync(join(ROOT, 'bench/results/traffic-profile.md'), lines.join('\n'));
    process.stdout.write(lines.join('\n'));
  } finally {
    await upstream.stop();
    killAll();
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  killAll();
  process.exit(1);
});
