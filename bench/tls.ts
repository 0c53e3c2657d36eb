/**
 * `npm run bench -- tls`: throughput over TLS, HTTP/1.1 (wrk) and HTTP/2 (h2load), modelgate
 * against nginx with the same certificate, plus modelgate in plain HTTP for the cost of TLS.
 *
 * The referee harness's method, applied to TLS: every proxy pinned to CPU 0 (taskset), the load
 * generator and an nginx origin (64 B JSON) on CPU 1, systems alternated inside each round, the
 * median of the rounds reported, ratios only within this run. wrk and h2load (Debian's
 * `nghttp2-client`) are installed when missing and the bench runs as root. Writes
 * bench/results/tls.md. `--quick`: 2 rounds of 3 s.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa } from '../test/support/tls-certs.js';
import { freePort, median } from './lib.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 2 : 3;
const SECONDS = quick ? 3 : 5;
const ROOT = join(import.meta.dirname, '..');
const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const DOMAIN = 'bench.test';
const log = (msg: string) => process.stderr.write(`[bench tls ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

const children = new Set<ChildProcess>();
/** Each system leads its own process group, so nginx's worker goes with its master. */
function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
process.on('exit', () => {
  for (const c of children) killGroup(c);
});

function ensureTool(binary: string, debPackage: string): void {
  if (spawnSync('which', [binary]).status === 0) return;
  log(`installing ${debPackage} (for ${binary})`);
  execFileSync('bash', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${debPackage} >/dev/null`], { stdio: 'inherit' });
}

function pinned(cpu: number, command: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd = ROOT): ChildProcess {
  const child = spawn('taskset', ['-c', String(cpu), command, ...args], { env, cwd, stdio: ['ignore', 'ignore', 'inherit'], detached: true });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function waitFor(url: string, init: RequestInit = {}): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      const res = await fetch(url, init);
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not come up`);
}

interface System {
  name: string;
  url: string;
}

function wrk(url: string): number {
  const out = execFileSync('taskset', ['-c', '1', 'wrk', '-t1', '-c64', `-d${SECONDS}s`, url], { encoding: 'utf8' });
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
  return m ? Number(m[1]) : NaN;
}

function h2load(url: string): number {
  const out = execFileSync('taskset', ['-c', '1', 'h2load', '-t1', '-c16', '-m4', '-D', String(SECONDS), url], { encoding: 'utf8' });
  const m = /finished in [^,]+, ([\d.]+) req\/s/.exec(out);
  const failed = /(\d+) failed/.exec(out);
  if (failed && Number(failed[1]) > 0) log(`  h2load reports ${failed[1]} failed requests on ${url}`);
  return m ? Number(m[1]) : NaN;
}


async function main(): Promise<void> {
  if (cpus().length < 2) throw new Error('the pinned method needs 2 CPUs');
  ensureTool('wrk', 'wrk');
  ensureTool('h2load', 'nghttp2-client');
  ensureTool('nginx', 'nginx');
  execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
  const work = mkdtempSync(join(tmpdir(), 'mg-bench-tls-'));
  const ca = createTestCa('bench CA');
  try {
    const pair = ca.issue('gw', [`*.${DOMAIN}`, '127.0.0.1', 'localhost']);
    const [originPort, nginxPort, tlsPort, tlsAdmin, plainPort, plainAdmin] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    writeFileSync(
      join(work, 'nginx.conf'),
      `daemon off; worker_processes 1; pid ${work}/nginx.pid; error_log ${work}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_timeout 60s; keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:${originPort}; keepalive 128; }
  server { listen 127.0.0.1:${originPort} backlog=4096; default_type application/json;
    location / { return 200 '{"ok":true,"service":"bench-upstream","pad":"0123456789abcdef0"}'; } }
}
`,
    );
    writeFileSync(
      join(work, 'proxy.conf'),
      `daemon off; worker_processes 1; pid ${work}/proxy.pid; error_log ${work}/proxy-error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_timeout 60s; keepalive_requests 1000000;
  upstream origin { server 127.0.0.1:${originPort}; keepalive 128; }
  server { listen 127.0.0.1:${nginxPort} ssl http2 backlog=4096;
    ssl_certificate ${pair.certFile}; ssl_certificate_key ${pair.keyFile}; ssl_protocols TLSv1.2 TLSv1.3;
    proxy_http_version 1.1; proxy_set_header Connection "";
    location /e/bench/ { proxy_pass http://origin/; } }
}
`,
    );
    pinned(1, 'nginx', ['-c', join(work, 'nginx.conf'), '-p', work]);
    pinned(0, 'nginx', ['-c', join(work, 'proxy.conf'), '-p', work]);
    const gatewayEnv = (port: number, admin: number, tls: boolean): NodeJS.ProcessEnv => ({
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(port),
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: String(admin),
      ADMIN_TOKEN,
      DATA_DIR: '',
      CONTROLLER_ENABLED: 'false',
      APPS_DOMAIN: DOMAIN,
      LOG_LEVEL: 'warn',
      ...(tls ? { TLS_CERT_FILE: pair.certFile, TLS_KEY_FILE: pair.keyFile } : {}),
    });
    // npm start's settings otherwise (access log on): the compiled gateway, as npm start runs it.
    pinned(0, process.execPath, ['dist/main.js'], gatewayEnv(tlsPort, tlsAdmin, true));
    pinned(0, process.execPath, ['dist/main.js'], gatewayEnv(plainPort, plainAdmin, false));
    for (const admin of [tlsAdmin, plainAdmin]) {
      await waitFor(`http://127.0.0.1:${admin}/healthz`);
      const put = await fetch(`http://127.0.0.1:${admin}/v1/endpoints/bench`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ public: true, routes: [{ url: `http://127.0.0.1:${originPort}` }] }),
      });
      if (put.status >= 300) throw new Error(`PUT bench: ${put.status} ${await put.text()}`);
    }
    await waitFor(`http://127.0.0.1:${originPort}/`);
    const tlsSystems: System[] = [
      { name: 'nginx (TLS, 1 worker)', url: `https://127.0.0.1:${nginxPort}/e/bench/` },
      { name: 'modelgate (TLS)', url: `https://127.0.0.1:${tlsPort}/e/bench/` },
    ];
    const plain: System = { name: 'modelgate (plain HTTP)', url: `http://127.0.0.1:${plainPort}/e/bench/` };
    const h1 = new Map<string, number[]>();
    const h2 = new Map<string, number[]>();
    // Prime: connections, JIT, TLS session caches.
    for (const s of [...tlsSystems, plain]) wrk(s.url);
    for (let r = 0; r < ROUNDS; r++) {
      const order = [...tlsSystems, plain];
      for (let k = 0; k < order.length; k++) {
        const s = order[(k + r) % order.length];
        const v1 = wrk(s.url);
        (h1.get(s.name) ?? h1.set(s.name, []).get(s.name)!).push(v1);
        log(`round ${r + 1} ${s.name} HTTP/1.1: ${v1.toFixed(0)} req/s`);
        if (s === plain) continue;
        const v2 = h2load(s.url);
        (h2.get(s.name) ?? h2.set(s.name, []).get(s.name)!).push(v2);
        log(`round ${r + 1} ${s.name} HTTP/2: ${v2.toFixed(0)} req/s`);
      }
    }
    const row = (name: string, m: Map<string, number[]>) => median(m.get(name) ?? [NaN]);
    const nginx1 = row(tlsSystems[0].name, h1);
    const nginx2 = row(tlsSystems[0].name, h2);
    const mg1 = row(tlsSystems[1].name, h1);
    const mg2 = row(tlsSystems[1].name, h2);
    const mgPlain = row(plain.name, h1);
    const report = `# TLS benchmark (${new Date().toISOString()}${quick ? ', quick' : ''})

Proxies pinned to CPU 0; wrk / h2load and the nginx origin (64 B) on CPU 1; ${ROUNDS} rounds × ${SECONDS} s,
systems alternated, medians. HTTP/1.1: \`wrk -t1 -c64\`. HTTP/2: \`h2load -t1 -c16 -m4\`. Load average at the
end: ${loadavg()[0].toFixed(1)} (a busy machine makes every figure lower; the ratios are taken within this run).

| system | HTTP/1.1 req/s | HTTP/2 req/s |
| --- | ---: | ---: |
| nginx (TLS, 1 worker) | ${nginx1.toFixed(0)} | ${nginx2.toFixed(0)} |
| modelgate (TLS) | ${mg1.toFixed(0)} | ${mg2.toFixed(0)} |
| modelgate (plain HTTP) | ${mgPlain.toFixed(0)} | – |

- modelgate TLS ÷ nginx TLS: HTTP/1.1 ${(mg1 / nginx1).toFixed(2)}×, HTTP/2 ${(mg2 / nginx2).toFixed(2)}×
- cost of TLS for modelgate (HTTP/1.1, keep-alive): TLS ÷ plain = ${(mg1 / mgPlain).toFixed(2)}×
`;
    writeFileSync(join(ROOT, 'bench', 'results', quick ? 'tls-quick.md' : 'tls.md'), report);
    process.stdout.write(report);
  } finally {
    for (const c of children) killGroup(c);
    ca.remove();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench tls failed: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
