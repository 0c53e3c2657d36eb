import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { TokenAccessChecker } from '../../src/auth/access-checker.js';
import { remoteJwksSource } from '../../src/auth/external-keys.js';
import { TokenCache } from '../../src/auth/token-cache.js';
import { TokenVerifier } from '../../src/auth/verifier.js';
import { GatewayError } from '../../src/errors/gateway-error.js';
import { silentLogger } from '../../src/obs/logger.js';
import { Metrics } from '../../src/obs/metrics.js';
import type { RouteTable } from '../../src/schema/route-table.js';

/** A real JWKS endpoint on port 0; `mode` switches its behaviour between requests. */
class JwksServer {
  keys: JWK[] = [];
  mode: 'ok' | 'error' | 'hang' = 'ok';
  hits = 0;
  readonly server: Server;
  constructor() {
    this.server = createServer((req, res) => {
      this.hits++;
      if (this.mode === 'hang') return; // never answers
      if (this.mode === 'error') {
        res.writeHead(503).end('down');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
    });
  }
  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const servers: JwksServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function keyPair(kid: string): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

function checkerFor(url: string, timeoutMs = 500) {
  const source = remoteJwksSource(url, { logger: silentLogger(), timeoutMs, failureCooldownMs: 200 });
  const verifier = new TokenVerifier({ secret: 'x'.repeat(32), external: [source], issuers: ['https://idp.example'] });
  return new TokenAccessChecker({ verifier, cache: new TokenCache({ max: 100, leewaySeconds: 30 }), logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), warmers: [() => source.warm!()] });
}

function endpoint(): RouteTable {
  return { id: randomUUID(), name: 'llm', public: false, version: 1, routes: [] };
}

async function outcome(checker: TokenAccessChecker, table: RouteTable, token: string): Promise<string> {
  try {
    await checker.check(table, { authorization: `Bearer ${token}`, remoteAddress: '127.0.0.1', xForwardedFor: undefined, isPreflight: false });
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return (err as GatewayError).code;
  }
}

function sign(key: CryptoKey, kid: string, aud: string, extra: { exp?: number; iss?: string } = {}) {
  return new SignJWT({ jti: randomUUID() })
    .setProtectedHeader({ alg: 'RS256', kid })
    .setIssuer(extra.iss ?? 'https://idp.example')
    .setAudience(aud)
    .setSubject('svc')
    .setExpirationTime(extra.exp ?? Math.floor(Date.now() / 1000) + 300)
    .sign(key);
}

describe('TOKEN_JWKS_URL', () => {
  it('verifies tokens against keys served by a real JWKS endpoint, with the same claim checks', async () => {
    const jwks = new JwksServer();
    servers.push(jwks);
    const k1 = await keyPair('k1');
    jwks.keys = [k1.jwk];
    const checker = checkerFor(await jwks.listen());
    await checker.start();
    const ep = endpoint();
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id))).toBe('ok');
    expect(await outcome(checker, endpoint(), await sign(k1.privateKey, 'k1', ep.id))).toBe('GW_AUTH_FORBIDDEN');
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id, { exp: Math.floor(Date.now() / 1000) - 120 }))).toBe('GW_AUTH_EXPIRED');
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id, { iss: 'https://other.example' }))).toBe('GW_AUTH_INVALID');
    const stranger = await keyPair('k1');
    expect(await outcome(checker, ep, await sign(stranger.privateKey, 'k1', ep.id))).toBe('GW_AUTH_INVALID');
    expect(jwks.hits).toBe(1);
  });

  it('picks up a rotated key (unknown kid triggers a refetch)', async () => {
    const jwks = new JwksServer();
    servers.push(jwks);
    const k1 = await keyPair('k1');
    jwks.keys = [k1.jwk];
    const source = remoteJwksSource(await jwks.listen(), { logger: silentLogger(), unknownKidCooldownMs: 0 });
    const verifier = new TokenVerifier({ secret: 'x'.repeat(32), external: [source] });
    const checker = new TokenAccessChecker({ verifier, cache: new TokenCache({ max: 100, leewaySeconds: 30 }), logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }) });
    const ep = endpoint();
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id))).toBe('ok');
    const k2 = await keyPair('k2');
    jwks.keys = [k1.jwk, k2.jwk];
    expect(await outcome(checker, ep, await sign(k2.privateKey, 'k2', ep.id))).toBe('ok');
  });

  it('JWKS server down → GW_AUTH_INVALID fast, never a 500', async () => {
    const jwks = new JwksServer();
    const url = await jwks.listen();
    await jwks.close(); // nothing listens on that port now
    const k1 = await keyPair('k1');
    const checker = checkerFor(url);
    await checker.start(); // logs, does not throw
    const ep = endpoint();
    const started = Date.now();
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id))).toBe('GW_AUTH_INVALID');
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id))).toBe('GW_AUTH_INVALID');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('a JWKS server that answers 503 or hangs → GW_AUTH_INVALID within the timeout; recovers when it answers', async () => {
    const jwks = new JwksServer();
    servers.push(jwks);
    const k1 = await keyPair('k1');
    jwks.keys = [k1.jwk];
    jwks.mode = 'hang';
    const checker = checkerFor(await jwks.listen(), 300);
    const ep = endpoint();
    let started = Date.now();
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id))).toBe('GW_AUTH_INVALID');
    expect(Date.now() - started).toBeLessThan(2000);
    // Within the failure cooldown: no fetch at all.
    const hits = jwks.hits;
    started = Date.now();
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id))).toBe('GW_AUTH_INVALID');
    expect(Date.now() - started).toBeLessThan(100);
    expect(jwks.hits).toBe(hits);

    jwks.mode = 'error';
    await new Promise((r) => setTimeout(r, 250));
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id))).toBe('GW_AUTH_INVALID');

    jwks.mode = 'ok';
    await new Promise((r) => setTimeout(r, 250));
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id))).toBe('ok');
  });

  it('keeps using the last fetched keys while the JWKS endpoint is failing', async () => {
    const jwks = new JwksServer();
    servers.push(jwks);
    const k1 = await keyPair('k1');
    jwks.keys = [k1.jwk];
    const source = remoteJwksSource(await jwks.listen(), { logger: silentLogger(), maxAgeMs: 0, failureCooldownMs: 1000 });
    const verifier = new TokenVerifier({ secret: 'x'.repeat(32), external: [source] });
    const checker = new TokenAccessChecker({ verifier, cache: new TokenCache({ max: 0, leewaySeconds: 30 }), logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }) });
    const ep = endpoint();
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id))).toBe('ok');
    jwks.mode = 'error';
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id))).toBe('ok');
    expect(await outcome(checker, ep, await sign(k1.privateKey, 'k1', ep.id))).toBe('ok');
  });
});
