/**
 * `npm run bench -- --profile [--private] [--access-log]`: runs the gateway under
 * `node --cpu-prof` with autocannon on one endpoint for 10 s, then summarises where the CPU
 * time went (self time by function and by area) into bench/results/profile.md.
 */
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { TokenIssuer } from '../src/auth/issuer.js';
import { ROOT, spawnGateway, spawnScript, TMP, TOKEN_SECRET } from './lib.js';
import { closedLoop } from './load.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function area(url: string, fn: string): string {
  if (url === '') return fn === '(garbage collector)' ? 'GC' : fn === '(idle)' || fn === '(program)' ? fn : 'native/V8';
  if (url.includes('internal/modules') || url.includes('cjs-module-lexer') || url.includes('node_modules/tsx') || url.includes('esbuild')) return 'startup';
  if (url.includes('/src/proxy/')) return 'modelgate proxy';
  if (url.includes('/src/auth/')) return 'modelgate auth';
  if (url.includes('/src/')) return 'modelgate other';
  if (url.includes('node_modules/undici')) return 'undici';
  if (url.includes('node_modules/pino') || url.includes('sonic-boom')) return 'pino';
  if (url.includes('node_modules/prom-client')) return 'prom-client';
  if (url.includes('node_modules/lru-cache')) return 'lru-cache';
  if (url.startsWith('node:_http') || url.includes('node:_http')) return 'node http';
  if (url.startsWith('node:net') || url.startsWith('node:stream') || url.includes('internal/streams')) return 'node net/streams';
  if (url.startsWith('node:')) return 'node other';
  return 'other';
}

export async function profile(): Promise<void> {
  const isPrivate = process.argv.includes('--private');
  const accessLog = process.argv.includes('--access-log');
  const dir = join(TMP, 'prof');
  mkdirSync(dir, { recursive: true });
  const up = await spawnScript('upstream.ts');
  const url = `http://127.0.0.1:${up.port}`;
  const gw = await spawnGateway({ ACCESS_LOG: accessLog ? 'true' : 'false' }, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  const put = await gw.admin('PUT', '/v1/endpoints/bench', { public: !isPrivate, routes: [{ id: 'u', url }] });
  const headers: Record<string, string> = { host: 'bench.localhost' };
  if (isPrivate) {
    const t = await new TokenIssuer(TOKEN_SECRET).issue({ endpointId: put.body.id, sub: 'bench', exp: Math.floor(Date.now() / 1000) + 3600 });
    headers.authorization = `BackendAI ${t.token}`;
  }
  const target = { name: 'gw', origin: `http://127.0.0.1:${gw.port}`, path: '/', headers };
  await closedLoop(target, 3, 50);
  const s = await closedLoop(target, 10, 50);
  await gw.stop();
  await up.stop();
  const file = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))[0];
  const prof = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + prof.timeDeltas[i]);
  let total = 0;
  let idle = 0;
  const fns = new Map<string, number>();
  const areas = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const { functionName, url: u, lineNumber } = n.callFrame;
    total += us;
    const a = area(u, functionName);
    // Idle time and module loading at start-up are not per-request work.
    if (functionName === '(idle)' || a === 'startup') {
      idle += us;
      continue;
    }
    const key = `${functionName || '(anonymous)'} ${u.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/src\//, 'src/')}:${lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const busy = total - idle;
  const requests = s.rps * 10;
  const perReqUs = busy / (requests * (13 / 10)); // the profile spans priming (3 s) + 10 s at about the same rate
  const lines = [
    `# CPU profile: ${isPrivate ? 'private' : 'public'} endpoint, access log ${accessLog ? 'on' : 'off'}`,
    '',
    `${Math.round(s.rps)} req/s during the 10 s sample; process busy ${((busy / total) * 100).toFixed(0)}% of the profile (start-up module loading excluded); ≈ ${perReqUs.toFixed(1)} µs of CPU per request.`,
    '',
    '| area | share of busy time | µs per request |',
    '| --- | ---: | ---: |',
    ...[...areas].sort((a, b) => b[1] - a[1]).map(([k, v]) => `| ${k} | ${((v / busy) * 100).toFixed(1)}% | ${((v / busy) * perReqUs).toFixed(1)} |`),
    '',
    '| function (self time) | share |',
    '| --- | ---: |',
    ...[...fns]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 30)
      .map(([k, v]) => `| \`${k.replace(/\|/g, '\\|')}\` | ${((v / busy) * 100).toFixed(1)}% |`),
  ];
  const out = join(ROOT, 'bench/results', `profile-${isPrivate ? 'private' : 'public'}${accessLog ? '-log' : ''}.md`);
  writeFileSync(out, lines.join('\n') + '\n');
  process.stderr.write(lines.slice(0, 30).join('\n') + `\n\nwrote ${out}\n`);
}
