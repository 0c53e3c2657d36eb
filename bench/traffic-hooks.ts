/**
 * `npx tsx bench/traffic-hooks.ts [DIST_DIR…]`: the CPU cost of traffic control's own code per
 * request, without the network: the hooks the Exchange calls for one request (ticketFor, admit,
 * pick, onResponseHead, onResponseData, onResponseEnd, finish, releaseSlot), run in a loop on
 * the benchmark's JSON completion, for the `metered` endpoint (metering only) and the `capped` one
 * (cap + a token's requests-per-minute limit + metering). Each DIST_DIR (default dist/) is a
 * build loaded side by side in this process (e.g. main's and this tree's), for a before/after
 * within one run. Alternating rounds, medians of CPU ns per request.
 */
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dists = (process.argv.length > 2 ? process.argv.slice(2) : [join(import.meta.dirname, '..', 'dist')]).map((d) => resolve(d));
const ROUNDS = 9;
const PER_ROUND = 200_000;

const body = Buffer.from(
  '{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello from u"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}',
);

type Name = 'metered' | 'capped';

/** One request's worth of hooks for an endpoint, on the build in `dist`. */
async function loadBuild(dist: string): Promise<{ one: (name: Name) => number; stop: () => Promise<void> }> {
  const load = (p: string) => import(pathToFileURL(join(dist, p)).href);
  const { TrafficControl } = await load('traffic/traffic-control.js');
  const { TrafficPolicy } = await load('traffic/policy.js');
  const { Metrics } = await load('obs/metrics.js');
  const { silentLogger } = await load('obs/logger.js');
  const route = { id: 'u', slotsHeld: 0, isEjected: () => false };
  const candidates = { routes: [route] };
  const balancer = { pick: () => route };
  const tc = new TrafficControl({ store: { addUsage: () => Promise.resolve() }, logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), bodyLimitBytes: 1 << 20 });
  const table = (name: string, extra: Record<string, unknown>) => ({ id: `id-${name}`, name, routes: [], ...extra });
  const endpoints = {
    metered: { traffic: new TrafficPolicy(table('metered', {})), candidates, balancer },
    capped: { traffic: new TrafficPolicy(table('capped', { limits: { max_in_flight_per_route: 10_000 } })), candidates, balancer },
  };
  const token = { aud: 'id-capped', jti: 'jti-1', sub: 'bench', expiredAfterMs: Date.now() + 3_600_000, priority: 5, rpm: 100_000_000, tpm: 0 };
  const one = (name: Name): number => {
    let sink = 0;
    const ep = endpoints[name];
    const ticket = tc.ticketFor(ep.traffic, name === 'capped' ? token : undefined, 'POST', '/v1/chat/completions');
    const host = {
      requestId: 'r',
      trafficAdmitted: () => tc.pick(ticket, ep, null, null),
      trafficDispatch: () => {},
      trafficHold: () => {},
      fail: (err: unknown) => {
        throw err;
      },
    };
    tc.admit(ticket, host, null, body.length, true);
    const extra = tc.onResponseHead(ticket, 200, 'application/json', body.length);
    if (extra !== null) sink += extra.length;
    const out = tc.onResponseData(ticket, body);
    sink += out === null ? 0 : out.length;
    tc.onResponseEnd(ticket);
    tc.releaseSlot(ticket);
    tc.finish(ticket, true);
    return sink + ticket.completion;
  };
  return { one, stop: () => tc.stop() };
}

async function main(): Promise<void> {
  const builds = await Promise.all(dists.map(loadBuild));
  const results = dists.map(() => ({ metered: [] as number[], capped: [] as number[] }));
  let sink = 0;
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < builds.length * 2; k++) {
      const slot = (k + r) % (builds.length * 2);
      const b = slot >> 1;
      const name: Name = slot % 2 === 0 ? 'metered' : 'capped';
      const one = builds[b].one;
      const t0 = process.cpuUsage();
      for (let i = 0; i < PER_ROUND; i++) sink += one(name);
      const t = process.cpuUsage(t0);
      results[b][name].push(((t.user + t.system) * 1000) / PER_ROUND);
    }
  }
  for (const b of builds) await b.stop();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1];
  for (let b = 0; b < builds.length; b++) {
    const report = { dist: dists[b], metered_ns: Math.round(median(results[b].metered)), capped_ns: Math.round(median(results[b].capped)), rounds: ROUNDS, per_round: PER_ROUND };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  }
  if (sink === 0) process.stderr.write('(nothing measured)\n');
}

void main();
