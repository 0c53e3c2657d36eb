import { execFile } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { connect as h2connect, constants as h2c } from 'node:http2';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnGateway, startTestGateway, TEST_ADMIN_TOKEN, type TestGateway } from '../../support/gateway.js';
import { createTestCa, type TestCa } from '../../support/tls-certs.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { eventually, sleep } from '../../support/eventually.js';

const run = promisify(execFile);
const DOMAIN = 'apps.test';

/** curl against the gateway's TLS port, resolving *.apps.test to loopback. */
async function curl(ca: TestCa, port: number, url: string, extra: string[] = []): Promise<{ status: number; version: string; body: string }> {
  const host = new URL(url).hostname;
  const { stdout } = await run('curl', ['-sS', '--cacert', ca.caFile, '--resolve', `${host}:${port}:127.0.0.1`, '-w', '\n%{http_code} %{http_version}', ...extra, url]);
  const cut = stdout.lastIndexOf('\n');
  const [status, version] = stdout.slice(cut + 1).split(' ');
  return { status: Number(status), version, body: stdout.slice(0, cut) };
}

/** The serial number of the certificate the TLS listener presents for `servername`. */
function presentedSerial(port: number, servername: string, ca: TestCa): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', servername, ca: ca.caPem }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.once('error', reject);
  });
}

describe('TLS at the edge: HTTP/2 and HTTP/1.1 on one port', () => {
  let ca: TestCa;
  let gw: TestGateway;
  let up: TestUpstream;
  let pair: { certFile: string; keyFile: string };
  let agent: Agent;

  beforeAll(async () => {
    ca = createTestCa();
    pair = ca.issue('gateway', [`*.${DOMAIN}`, 'localhost', '127.0.0.1']);
    const sniDir = join(ca.dir, 'sni');
    (await import('node:fs')).mkdirSync(sniDir);
    ca.issue('other', ['other.example'], { dir: sniDir });
    up = await startUpstream((req, res, body) => {
      if (req.url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: first\n\n');
        setTimeout(() => res.end('data: last\n\n'), 400);
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ url: req.url, proto: req.headers['x-forwarded-proto'], auth: req.headers.authorization ?? null, body: body.toString() }));
    });
    gw = await startTestGateway({
      APPS_DOMAIN: DOMAIN,
      TLS_CERT_FILE: pair.certFile,
      TLS_KEY_FILE: pair.keyFile,
      TLS_CERTS_DIR: sniDir,
      H2_MAX_CONCURRENT_STREAMS: '50',
      H2_MAX_EARLY_RESETS: '20',
      HOLD_TIMEOUT_MS: '5000',
    });
    await gw.admin('PUT', '/v1/endpoints/demo', { public: true, routes: [{ id: 'r1', url: up.url }] });
    await gw.admin('PUT', '/v1/endpoints/secret', { public: false, routes: [{ id: 'r1', url: up.url }] });
    agent = new Agent({ allowH2: true, connect: { ca: ca.caPem, servername: `demo.${DOMAIN}` } });
  });

  afterAll(async () => {
    await agent?.close();
    await gw?.stop();
    await up?.close();
    ca?.remove();
  });

  it('serves HTTP/2 to curl --http2 and HTTP/1.1 to curl --http1.1, with X-Forwarded-Proto https', async () => {
    const h2 = await curl(ca, gw.port, `https://demo.${DOMAIN}:${gw.port}/v1/models`, ['--http2', '-d', 'hello']);
    expect(h2.version).toBe('2');
    expect(h2.status).toBe(200);
    expect(JSON.parse(h2.body)).toMatchObject({ url: '/v1/models', proto: 'https', body: 'hello' });
    const h1 = await curl(ca, gw.port, `https://demo.${DOMAIN}:${gw.port}/x`, ['--http1.1']);
    expect(h1.version).toBe('1.1');
    expect(JSON.parse(h1.body)).toMatchObject({ url: '/x', proto: 'https' });
    const path = await curl(ca, gw.port, `https://localhost:${gw.port}/e/demo/y`, ['--http2']);
    expect(JSON.parse(path.body)).toMatchObject({ url: '/y' });
  });

  it('applies the same auth and JSON errors over HTTP/2 (undici with allowH2)', async () => {
    const missing = await request(`https://127.0.0.1:${gw.port}/e/secret/`, { dispatcher: agent });
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toContain('BackendAI');
    expect(((await missing.body.json()) as { error: { code: string } }).error.code).toBe('GW_AUTH_MISSING');
    const token = await gw.admin('POST', '/v1/endpoints/secret/tokens', { ttl_seconds: 600 });
    const ok = await request(`https://127.0.0.1:${gw.port}/e/secret/z`, { dispatcher: agent, headers: { authorization: `BackendAI ${token.body.token}` } });
    expect(ok.statusCode).toBe(200);
    // Private endpoints strip the token before forwarding, over HTTP/2 as over HTTP/1.1.
    expect(await ok.body.json()).toMatchObject({ url: '/z', auth: null });
    const unknown = await request(`https://127.0.0.1:${gw.port}/e/nope/`, { dispatcher: agent });
    expect(unknown.statusCode).toBe(404);
    await unknown.body.dump();
  });

  it('streams SSE event by event to an HTTP/2 client', async () => {
    const started = Date.now();
    const res = await request(`https://127.0.0.1:${gw.port}/e/demo/sse`, { dispatcher: agent });
    const chunks = res.body[Symbol.asyncIterator]();
    const first = await chunks.next();
    const firstAt = Date.now() - started;
    expect(String(first.value)).toContain('data: first');
    // The upstream holds the last event back 400 ms: the first one must not wait for it.
    expect(firstAt).toBeLessThan(350);
    let rest = '';
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) rest += String(next.value);
    expect(rest).toContain('data: last');
  });

  it('holds an HTTP/2 request until a route appears', async () => {
    await gw.admin('PUT', '/v1/endpoints/later', { public: true, routes: [] });
    const pending = request(`https://127.0.0.1:${gw.port}/e/later/held`, { dispatcher: agent });
    await sleep(300);
    await gw.admin('PUT', '/v1/endpoints/later/routes', { routes: [{ id: 'r', url: up.url }] });
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ url: '/held' });
  });

  it('proxies a WebSocket over TLS (wss://, HTTP/1.1 by ALPN)', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    wss.on('connection', (sock) => sock.on('message', (m) => sock.send(`echo:${String(m)}`)));
    await new Promise<void>((r) => wss.once('listening', () => r()));
    try {
      await gw.admin('PUT', '/v1/endpoints/wsdemo', { public: true, routes: [{ id: 'w', url: `http://127.0.0.1:${(wss.address() as { port: number }).port}` }] });
      const client = new WebSocket(`wss://127.0.0.1:${gw.port}/e/wsdemo/`, { ca: ca.caPem });
      const reply = await new Promise<string>((resolve, reject) => {
        client.once('open', () => client.send('hi'));
        client.once('message', (m) => resolve(String(m)));
        client.once('error', reject);
      });
      expect(reply).toBe('echo:hi');
      client.close();
    } finally {
      wss.close();
    }
  });

  it('chooses certificates by SNI and refuses TLS 1.1', async () => {
    const other = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ port: gw.port, host: '127.0.0.1', servername: 'other.example', ca: ca.caPem }, () => {
        resolve(String(s.getPeerCertificate().subject.CN));
        s.end();
      });
      s.once('error', reject);
    });
    expect(other).toBe('other.example');
    await expect(
      new Promise((resolve, reject) => {
        const s = tlsConnect({ port: gw.port, host: '127.0.0.1', servername: `demo.${DOMAIN}`, ca: ca.caPem, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => resolve(s));
        s.once('error', reject);
      }),
    ).rejects.toThrow();
  });

  it('advertises its HTTP/2 limits and closes a connection that resets streams rapidly (CVE-2023-44487)', async () => {
    const session = h2connect(`https://127.0.0.1:${gw.port}`, { ca: ca.caPem, servername: `demo.${DOMAIN}` });
    session.on('error', () => {});
    await new Promise<void>((resolve) => session.once('remoteSettings', () => resolve()));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(50);
    const closed = new Promise<number | undefined>((resolve) => {
      session.once('goaway', (code: number) => resolve(code));
      session.once('close', () => resolve(undefined));
    });
    for (let i = 0; i < 200 && !session.closed && !session.destroyed; i++) {
      try {
        const stream = session.request({ ':path': '/e/demo/slow', ':authority': `demo.${DOMAIN}` });
        stream.on('error', () => {});
        stream.close(h2c.NGHTTP2_CANCEL);
      } catch {
        break;
      }
      if (i % 20 === 19) await sleep(5);
    }
    const code = await Promise.race([closed, sleep(5000).then(() => 'still open' as const)]);
    expect(code).not.toBe('still open');
    session.destroy();
    // Other clients are unaffected.
    const after = await curl(ca, gw.port, `https://demo.${DOMAIN}:${gw.port}/ok`, ['--http2']);
    expect(after.status).toBe(200);
  });

  it('refuses an HTTP/2 header list over MAX_HEADER_BYTES', async () => {
    const session = h2connect(`https://127.0.0.1:${gw.port}`, { ca: ca.caPem, servername: `demo.${DOMAIN}` });
    session.on('error', () => {});
    const outcome = await new Promise<string>((resolve) => {
      const stream = session.request({ ':path': '/e/demo/big', ':authority': `demo.${DOMAIN}`, 'x-big': 'a'.repeat(40_000) });
      stream.on('response', (headers) => resolve(String(headers[':status'] ?? '')));
      stream.on('error', () => resolve('refused'));
      stream.on('close', () => resolve('refused'));
      stream.end();
    });
    session.destroy();
    expect(['431', 'refused']).toContain(outcome);
  });

  it('rotates the certificate on file change under traffic without a failed request', async () => {
    const before = await presentedSerial(gw.port, `demo.${DOMAIN}`, ca);
    let stop = false;
    const failures: string[] = [];
    let done = 0;
    const loop = async (h2: boolean) => {
      const dispatcher = new Agent({ allowH2: h2, connect: { ca: ca.caPem, servername: `demo.${DOMAIN}` } });
      while (!stop) {
        try {
          const res = await request(`https://127.0.0.1:${gw.port}/e/demo/rot`, { dispatcher });
          await res.body.dump();
          if (res.statusCode === 200) done++;
          else failures.push(String(res.statusCode));
        } catch (err) {
          failures.push(String(err));
        }
      }
      await dispatcher.close();
    };
    const loops = [loop(true), loop(false), loop(false)];
    await sleep(200);
    // The usual atomic update: write beside, rename over.
    const next = ca.issue('gateway-next', [`*.${DOMAIN}`, 'localhost', '127.0.0.1']);
    writeFileSync(`${pair.keyFile}.tmp`, next.key);
    writeFileSync(`${pair.certFile}.tmp`, next.cert);
    renameSync(`${pair.keyFile}.tmp`, pair.keyFile);
    renameSync(`${pair.certFile}.tmp`, pair.certFile);
    await eventually(async () => (await presentedSerial(gw.port, `demo.${DOMAIN}`, ca)) !== before, { timeoutMs: 5000, stepMs: 50 });
    await sleep(200);
    stop = true;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    expect(done).toBeGreaterThan(20);
  });
});

describe('TLS start-up errors and the plain listener', () => {
  let ca: TestCa;
  beforeAll(() => {
    ca = createTestCa();
  });
  afterAll(() => ca?.remove());

  it('stops with one clear line for a missing file or a key that does not match', async () => {
    const a = ca.issue('a', ['a.test']);
    const b = ca.issue('b', ['b.test']);
    const mismatched = await spawnGateway({ TLS_CERT_FILE: a.certFile, TLS_KEY_FILE: b.keyFile }).catch((err: Error) => err.message);
    expect(mismatched).toMatch(/TLS_KEY_FILE: .*b\.key does not match the certificate in TLS_CERT_FILE/);
    const missing = await spawnGateway({ TLS_CERT_FILE: join(ca.dir, 'nope.crt'), TLS_KEY_FILE: a.keyFile }).catch((err: Error) => err.message);
    expect(missing).toMatch(/TLS_CERT_FILE: cannot read .*nope\.crt \(ENOENT\)/);
    const half = await spawnGateway({ TLS_CERT_FILE: a.certFile }).catch((err: Error) => err.message);
    expect(half).toMatch(/TLS_CERT_FILE and TLS_KEY_FILE go together/);
  });

  it('redirects plain HTTP to HTTPS with HTTP_REDIRECT, but answers /healthz itself; the admin API speaks TLS too', async () => {
    const pair = ca.issue('gw', [`*.${DOMAIN}`, 'localhost', '127.0.0.1']);
    const admin = ca.issue('admin', ['localhost', '127.0.0.1']);
    const gw = await spawnGateway({
      APPS_DOMAIN: DOMAIN,
      TLS_CERT_FILE: pair.certFile,
      TLS_KEY_FILE: pair.keyFile,
      GATEWAY_HTTP_PORT: '0',
      HTTP_REDIRECT: 'true',
      ADMIN_TLS_CERT_FILE: admin.certFile,
      ADMIN_TLS_KEY_FILE: admin.keyFile,
    });
    try {
      const started = gw.lines.find((l) => l.includes('modelgate started'))!;
      const entry = JSON.parse(started) as { gateway: string; admin: string; http?: string };
      expect(entry.gateway.startsWith('https://')).toBe(true);
      expect(entry.admin.startsWith('https://')).toBe(true);
      const httpPort = Number(new URL(entry.http!).port);
      // fetch may not set Host, so a plain node:http request does.
      const redirect = await new Promise<{ status: number; location?: string }>((resolve, reject) => {
        httpGet({ port: httpPort, host: '127.0.0.1', path: '/v1/chat?x=1', headers: { host: `demo.${DOMAIN}` } }, (res) => {
          res.resume();
          resolve({ status: res.statusCode!, location: res.headers.location });
        }).once('error', reject);
      });
      expect(redirect.status).toBe(308);
      expect(redirect.location).toBe(`https://demo.${DOMAIN}:${gw.port}/v1/chat?x=1`);
      const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
      expect(health.status).toBe(200);
      const dispatcher = new Agent({ connect: { ca: ca.caPem } });
      const list = await request(`https://127.0.0.1:${gw.adminPort}/v1/endpoints`, { dispatcher, headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } });
      expect(list.statusCode).toBe(200);
      await list.body.dump();
      await dispatcher.close();
    } finally {
      await gw.stop();
    }
  });
});
