/**
 * `npx tsx bench/traffic-threads.ts` (after `npm run build`): where the CPU of a metered request
 * goes by thread, `plain` vs `metered` in alternating rounds: the main JS thread, and the others
 * (V8's workers: parallel scavenges, concurrent marking and compilation; libuv's pool). A
 * `--cpu-prof` profile sees only the main thread; /proc CPU time counts them all.
 */
import { readdirSync, readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { killAll, spawnGateway, spawnScript } from './lib.js';

const BODY = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 16 });
function threads(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+$/, '').trim() + (tid === String(pid) ? '' : ' (other)');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    m.set(name, (m.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) * 10_000);
  }
  return m;
}
async function main() {
  const up = await spawnScript('upstream.ts');
  const gw = await spawnGateway({});
  try {
    const url = `http://127.0.0.1:${up.port}`;
    await gw.admin('PUT', '/v1/endpoints/plain', { public: true, usage: { meter: false }, routes: [{ id: 'u', url }] });
    await gw.admin('PUT', '/v1/endpoints/metered', { public: true, routes: [{ id: 'u', url }] });
    const pid = gw.child.pid!;
    const acc: Record<string, Map<string, number>> = { plain: new Map(), metered: new Map() };
    const N = 20_000;
    for (let r = 0; r < 11; r++) {
      for (const name of r % 2 ? ['metered', 'plain'] : ['plain', 'metered']) {
        const before = threads(pid);
        const res = await autocannon({ url: `http://127.0.0.1:${gw.port}/v1/chat/completions`, method: 'POST', body: BODY, headers: { host: `${name}.localhost`, 'content-type': 'application/json' }, connections: 32, amount: N });
        if (res.non2xx + res.errors) throw new Error('errors');
        const after = threads(pid);
        if (r === 0) continue;
        for (const [k, v] of after) acc[name].set(k, (acc[name].get(k) ?? 0) + (v - (before.get(k) ?? 0)) / N / 10);
      }
    }
    for (const k of new Set([...acc.plain.keys(), ...acc.metered.keys()])) {
      const a = acc.plain.get(k) ?? 0, b = acc.metered.get(k) ?? 0;
      if (a + b > 0.05) console.log(k.padEnd(20), a.toFixed(1).padStart(7), b.toFixed(1).padStart(7));
    }
  } finally {
    await gw.stop();
    await up.stop();
    killAll();
  }
}
void main();
