import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, base64url, exportJWK, exportPKCS8, exportSPKI, generateKeyPair } from 'jose';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import type { AccessRequest } from '../../../src/auth/access.js';
import { TokenAccessChecker } from '../../../src/auth/access-checker.js';
import { CidrList } from '../../../src/auth/cidr.js';
import { loadPublicKeyFile, type ExternalKeySource } from '../../../src/auth/external-keys.js';
import { TokenIssuer } from '../../../src/auth/issuer.js';
import { RevocationSet } from '../../../src/auth/revocation-set.js';
import { TokenCache } from '../../../src/auth/token-cache.js';
import { TokenVerifier, type VerifiedClaims } from '../../../src/auth/verifier.js';
import { GatewayError } from '../../../src/errors/gateway-error.js';
import { toHttp } from '../../../src/errors/to-http.js';
import { silentLogger } from '../../../src/obs/logger.js';
import { Metrics } from '../../../src/obs/metrics.js';
import type { RouteTable } from '../../../src/schema/route-table.js';

const SECRET = 'unit-test-secret-0123456789abcdef0123456789';
const OTHER_SECRET = 'another-deployment-secret-0123456789abcdef';
const T0 = Date.UTC(2030, 0, 1);

class ManualClock {
  constructor(public ms: number) {}
  now = () => this.ms;
  advance(seconds: number) {
    this.ms += seconds * 1000;
  }
}

/** Counts signature checks, to show which paths cost crypto. */
class CountingVerifier extends TokenVerifier {
  calls = 0;
  override async verify(token: string): Promise<VerifiedClaims> {
    this.calls++;
    return super.verify(token);
  }
}

function table(name: string, extra: Partial<RouteTable> = {}): RouteTable {
  return { id: randomUUID(), name, public: false, version: 1, routes: [], ...extra };
}

function req(authorization: string | undefined, extra: Partial<AccessRequest> = {}): AccessRequest {
  return { authorization, remoteAddress: '127.0.0.1', xForwardedFor: undefined, isPreflight: false, ...extra };
}

async function outcome(checker: TokenAccessChecker, endpoint: RouteTable, request: AccessRequest): Promise<string> {
  try {
    await checker.check(endpoint, request);
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    return (err as GatewayError).code;
  }
}

function syncOutcome(checker: TokenAccessChecker, endpoint: RouteTable, request: AccessRequest): string {
  try {
    const result = checker.check(endpoint, request);
    return result === undefined ? 'ok(sync)' : 'async';
  } catch (err) {
    return (err as GatewayError).code;
  }
}

interface Setup {
  clock: ManualClock;
  checker: TokenAccessChecker;
  verifier: CountingVerifier;
  revocations: RevocationSet;
  issuer: TokenIssuer;
  metrics: Metrics;
}

function setup(opts: { external?: ExternalKeySource[]; issuers?: string[]; trustedProxies?: string[]; cacheMax?: number } = {}): Setup {
  const clock = new ManualClock(T0);
  const verifier = new CountingVerifier({ secret: SECRET, external: opts.external, issuers: opts.issuers, clock });
  const revocations = new RevocationSet();
  const metrics = new Metrics({ defaultMetrics: false });
  const checker = new TokenAccessChecker({
    verifier,
    cache: new TokenCache({ max: opts.cacheMax ?? 1000, leewaySeconds: 30 }),
    revocations,
    trustedProxies: opts.trustedProxies ? CidrList.compile(opts.trustedProxies) : null,
    logger: silentLogger(),
    metrics,
    clock,
  });
  return { clock, checker, verifier, revocations, issuer: new TokenIssuer(SECRET, clock), metrics };
}

async function counter(metrics: Metrics, name: string, label: string): Promise<number> {
  const data = await metrics.registry.getSingleMetric(name)!.get();
  return data.values.find((v) => Object.values(v.labels).includes(label))?.value ?? 0;
}

describe('TokenAccessChecker: HS256 tokens', () => {
  let s: Setup;
  let llm: RouteTable;
  let token: string;
  let jti: string;

  beforeEach(async () => {
    s = setup();
    llm = table('llm');
    ({ token, jti } = await s.issuer.issue({ endpointId: llm.id, sub: 'alice', exp: T0 / 1000 + 3600 }));
  });

  it('accepts a valid token with either scheme; the second call is a synchronous cache hit', async () => {
    const request = req(`BackendAI ${token}`);
    expect(await outcome(s.checker, llm, request)).toBe('ok');
    expect(syncOutcome(s.checker, llm, req(`bearer ${token}`))).toBe('ok(sync)');
    expect(syncOutcome(s.checker, llm, req(`BACKENDAI ${token}`))).toBe('ok(sync)');
    expect(s.verifier.calls).toBe(1);
    expect(await counter(s.metrics, 'modelgate_token_cache_total', 'hit')).toBe(2);
    expect(await counter(s.metrics, 'modelgate_token_cache_total', 'miss')).toBe(1);
  });

  it('public endpoints and CORS preflights pass without a token', () => {
    expect(s.checker.check(table('pub', { public: true }), req(undefined))).toBeUndefined();
    expect(s.checker.check(table('pub', { public: true }), req('Bearer garbage'))).toBeUndefined();
    expect(s.checker.check(llm, req(undefined, { isPreflight: true }))).toBeUndefined();
  });

  it.each([
    { name: 'no header', header: undefined, code: 'GW_AUTH_MISSING' },
    { name: 'empty header', header: '', code: 'GW_AUTH_MISSING' },
    { name: 'scheme only', header: 'BackendAI', code: 'GW_AUTH_MISSING' },
    { name: 'unknown scheme', header: 'Basic dXNlcjpwYXNz', code: 'GW_AUTH_MISSING' },
    { name: 'base64 garbage', header: 'BackendAI aGVsbG8.d29ybGQ.Zm9vYmFy', code: 'GW_AUTH_INVALID' },
    { name: 'binary garbage', header: 'BackendAI %%%.^^^.&&&', code: 'GW_AUTH_INVALID' },
    { name: 'not a JWT', header: 'BackendAI hello', code: 'GW_AUTH_INVALID' },
    { name: '100 KB token', header: `BackendAI ${'a'.repeat(100 * 1024)}.b.c`, code: 'GW_AUTH_INVALID' },
  ])('$name → $code', async ({ header, code }) => {
    expect(await outcome(s.checker, llm, req(header))).toBe(code);
  });

  it('extra spaces or trailing words → GW_AUTH_INVALID, no crypto', async () => {
    expect(await outcome(s.checker, llm, req(`BackendAI  ${token}`))).toBe('GW_AUTH_INVALID');
    expect(await outcome(s.checker, llm, req(`BackendAI ${token} x`))).toBe('GW_AUTH_INVALID');
    expect(await outcome(s.checker, llm, req(`Bearer\t${token}`))).toBe('GW_AUTH_MISSING');
    expect(s.verifier.calls).toBe(0);
  });

  it('a 100 KB token costs no crypto', async () => {
    expect(await outcome(s.checker, llm, req(`Bearer ${'x'.repeat(100_000)}`))).toBe('GW_AUTH_INVALID');
    expect(s.verifier.calls).toBe(0);
  });

  it('alg none → GW_AUTH_INVALID', async () => {
    const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
    const payload = base64url.encode(JSON.stringify({ iss: 'modelgate', aud: llm.id, jti: 'x', exp: T0 / 1000 + 60 }));
    expect(await outcome(s.checker, llm, req(`BackendAI ${header}.${payload}.`))).toBe('GW_AUTH_INVALID');
    expect(await outcome(s.checker, llm, req(`BackendAI ${header}.${payload}.c2ln`))).toBe('GW_AUTH_INVALID');
  });

  it("another deployment's secret → GW_AUTH_INVALID", async () => {
    const other = new TokenIssuer(OTHER_SECRET, s.clock);
    const { token: foreign } = await other.issue({ endpointId: llm.id, sub: 'eve', exp: T0 / 1000 + 60 });
    expect(await outcome(s.checker, llm, req(`BackendAI ${foreign}`))).toBe('GW_AUTH_INVALID');
  });

  it('a tampered payload → GW_AUTH_INVALID', async () => {
    const [h, , sig] = token.split('.');
    const payload = base64url.encode(JSON.stringify({ iss: 'modelgate', aud: llm.id, jti, sub: 'mallory', exp: T0 / 1000 + 99_999 }));
    expect(await outcome(s.checker, llm, req(`BackendAI ${h}.${payload}.${sig}`))).toBe('GW_AUTH_INVALID');
  });

  it('HS256 with the right secret but a foreign iss, or without jti → GW_AUTH_INVALID', async () => {
    const key = new TextEncoder().encode(SECRET);
    const badIss = await new SignJWT({ jti: 'j1' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('elsewhere').setAudience(llm.id).setExpirationTime(T0 / 1000 + 60).sign(key);
    const noJti = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuer('modelgate').setAudience(llm.id).setExpirationTime(T0 / 1000 + 60).sign(key);
    const noExp = await new SignJWT({ jti: 'j2' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('modelgate').setAudience(llm.id).sign(key);
    const hs384 = await new SignJWT({ jti: 'j3' }).setProtectedHeader({ alg: 'HS384' }).setIssuer('modelgate').setAudience(llm.id).setExpirationTime(T0 / 1000 + 60).sign(key);
    for (const t of [badIss, noJti, noExp, hs384]) expect(await outcome(s.checker, llm, req(`BackendAI ${t}`))).toBe('GW_AUTH_INVALID');
  });

  it('an RS256 token with no external key configured → GW_AUTH_INVALID', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const rs = await new SignJWT({ jti: 'j' }).setProtectedHeader({ alg: 'RS256' }).setIssuer('modelgate').setAudience(llm.id).setExpirationTime(T0 / 1000 + 60).sign(privateKey);
    expect(await outcome(s.checker, llm, req(`BackendAI ${rs}`))).toBe('GW_AUTH_INVALID');
  });

  it('aud of another endpoint → 403 GW_AUTH_FORBIDDEN with insufficient_scope', async () => {
    const other = table('other');
    const request = req(`BackendAI ${token}`);
    let error: unknown;
    try {
      await s.checker.check(other, request);
    } catch (err) {
      error = err;
    }
    expect((error as GatewayError).code).toBe('GW_AUTH_FORBIDDEN');
    const http = toHttp(error, 'rid');
    expect(http.status).toBe(403);
    expect(http.headers['www-authenticate']).toBe('BackendAI realm="other", error="insufficient_scope"');
    // Cached now: still forbidden there, still fine on its own endpoint.
    expect(syncOutcome(s.checker, other, request)).toBe('GW_AUTH_FORBIDDEN');
    expect(syncOutcome(s.checker, llm, request)).toBe('ok(sync)');
  });

  it('a recreated endpoint (same name, new id) refuses a cached token', async () => {
    expect(await outcome(s.checker, llm, req(`BackendAI ${token}`))).toBe('ok');
    const recreated = table('llm');
    expect(syncOutcome(s.checker, recreated, req(`BackendAI ${token}`))).toBe('GW_AUTH_FORBIDDEN');
  });

  it('expired → GW_AUTH_EXPIRED with a 401 challenge; within the 30 s leeway → ok', async () => {
    const { token: short } = await s.issuer.issue({ endpointId: llm.id, sub: 'a', exp: T0 / 1000 + 10 });
    s.clock.advance(10 + 29);
    expect(await outcome(s.checker, llm, req(`BackendAI ${short}`))).toBe('ok');
    const { token: short2 } = await s.issuer.issue({ endpointId: llm.id, sub: 'a', exp: T0 / 1000 + 5 });
    let error: unknown;
    try {
      await s.checker.check(llm, req(`BackendAI ${short2}`));
    } catch (err) {
      error = err;
    }
    expect((error as GatewayError).code).toBe('GW_AUTH_EXPIRED');
    const http = toHttp(error, 'rid');
    expect(http.status).toBe(401);
    expect(http.headers['www-authenticate']).toBe('BackendAI realm="llm", error="invalid_token", error_description="token expired"');
  });

  it('an expired token with a bad signature is GW_AUTH_INVALID, not EXPIRED', async () => {
    const other = new TokenIssuer(OTHER_SECRET, s.clock);
    const { token: foreign } = await other.issue({ endpointId: llm.id, sub: 'eve', exp: T0 / 1000 - 3600 });
    expect(await outcome(s.checker, llm, req(`BackendAI ${foreign}`))).toBe('GW_AUTH_INVALID');
  });

  it('cached then expired → GW_AUTH_EXPIRED synchronously', async () => {
    expect(await outcome(s.checker, llm, req(`BackendAI ${token}`))).toBe('ok');
    s.clock.advance(3600 + 29);
    expect(syncOutcome(s.checker, llm, req(`BackendAI ${token}`))).toBe('ok(sync)');
    s.clock.advance(2);
    expect(syncOutcome(s.checker, llm, req(`BackendAI ${token}`))).toBe('GW_AUTH_EXPIRED');
    expect(s.verifier.calls).toBe(1);
  });

  it('revoked → GW_AUTH_REVOKED; cached then revoked → GW_AUTH_REVOKED synchronously', async () => {
    const { token: t2, jti: j2 } = await s.issuer.issue({ endpointId: llm.id, sub: 'b', exp: T0 / 1000 + 3600 });
    s.revocations.add(j2, T0 / 1000 + 3600);
    expect(await outcome(s.checker, llm, req(`BackendAI ${t2}`))).toBe('GW_AUTH_REVOKED');

    expect(await outcome(s.checker, llm, req(`BackendAI ${token}`))).toBe('ok');
    s.revocations.add(jti, T0 / 1000 + 3600);
    expect(syncOutcome(s.checker, llm, req(`BackendAI ${token}`))).toBe('GW_AUTH_REVOKED');
    expect(toHttp(new Error('x'), 'r').status).toBe(500); // sanity: toHttp maps unknowns, auth errors never are
  });

  it('a flood of one bad token costs one verification (single flight, then the negative cache)', async () => {
    const other = new TokenIssuer(OTHER_SECRET, s.clock);
    const { token: foreign } = await other.issue({ endpointId: llm.id, sub: 'eve', exp: T0 / 1000 + 60 });
    const burst = await Promise.all(Array.from({ length: 50 }, () => outcome(s.checker, llm, req(`BackendAI ${foreign}`))));
    expect(new Set(burst)).toEqual(new Set(['GW_AUTH_INVALID']));
    expect(syncOutcome(s.checker, llm, req(`BackendAI ${foreign}`))).toBe('GW_AUTH_INVALID');
    expect(s.verifier.calls).toBe(1);
    expect(await counter(s.metrics, 'modelgate_auth_failures_total', 'GW_AUTH_INVALID')).toBe(51);
    expect(await counter(s.metrics, 'modelgate_token_cache_total', 'negative_hit')).toBe(1);
  });

  it('a burst of one new valid token costs one verification', async () => {
    const burst = await Promise.all(Array.from({ length: 20 }, () => outcome(s.checker, llm, req(`BackendAI ${token}`))));
    expect(new Set(burst)).toEqual(new Set(['ok']));
    expect(s.verifier.calls).toBe(1);
  });

  it('with the cache off every request verifies, results unchanged', async () => {
    const off = setup({ cacheMax: 0 });
    const { token: t } = await off.issuer.issue({ endpointId: llm.id, sub: 'a', exp: T0 / 1000 + 60 });
    expect(await outcome(off.checker, llm, req(`Bearer ${t}`))).toBe('ok');
    expect(await outcome(off.checker, llm, req(`Bearer ${t}`))).toBe('ok');
    expect(off.verifier.calls).toBe(2);
  });

  it('a WebSocket query token is used only when there is no Authorization header', async () => {
    expect(await outcome(s.checker, llm, req(undefined, { queryToken: token }))).toBe('ok');
    expect(await outcome(s.checker, llm, req('Basic x', { queryToken: token }))).toBe('GW_AUTH_MISSING');
    expect(await outcome(s.checker, llm, req(undefined, { queryToken: '' }))).toBe('GW_AUTH_MISSING');
  });

  it('401s carry the endpoint realm; a missing token has no error attribute', async () => {
    try {
      s.checker.check(llm, req(undefined));
    } catch (err) {
      expect(toHttp(err, 'r').headers['www-authenticate']).toBe('BackendAI realm="llm"');
    }
    expect.assertions(1);
  });
});

describe('TokenAccessChecker: allowed_cidrs', () => {
  it('checks the client address before anything else, IPv4 and IPv6', async () => {
    const s = setup();
    const ep = table('llm', { allowed_cidrs: ['10.0.0.0/8', '2001:db8::/32'] });
    const { token } = await s.issuer.issue({ endpointId: ep.id, sub: 'a', exp: T0 / 1000 + 60 });
    expect(await outcome(s.checker, ep, req(`Bearer ${token}`, { remoteAddress: '192.0.2.1' }))).toBe('GW_AUTH_FORBIDDEN');
    expect(await outcome(s.checker, ep, req(undefined, { remoteAddress: '192.0.2.1', isPreflight: true }))).toBe('GW_AUTH_FORBIDDEN');
    expect(await outcome(s.checker, ep, req(`Bearer ${token}`, { remoteAddress: '::ffff:10.2.3.4' }))).toBe('ok');
    expect(await outcome(s.checker, ep, req(`Bearer ${token}`, { remoteAddress: '2001:db8::7' }))).toBe('ok');
    expect(await outcome(s.checker, ep, req(undefined, { remoteAddress: '10.2.3.4' }))).toBe('GW_AUTH_MISSING');
    const pub = table('pub', { public: true, allowed_cidrs: ['10.0.0.0/8'] });
    expect(await outcome(s.checker, pub, req(undefined, { remoteAddress: '192.0.2.1' }))).toBe('GW_AUTH_FORBIDDEN');
    expect(await outcome(s.checker, pub, req(undefined, { remoteAddress: '10.0.0.1' }))).toBe('ok');
  });

  it('trusts X-Forwarded-For only from TRUSTED_PROXIES', async () => {
    const s = setup({ trustedProxies: ['127.0.0.1'] });
    const ep = table('llm', { public: true, allowed_cidrs: ['203.0.113.0/24'] });
    expect(await outcome(s.checker, ep, req(undefined, { remoteAddress: '127.0.0.1', xForwardedFor: '203.0.113.9' }))).toBe('ok');
    expect(await outcome(s.checker, ep, req(undefined, { remoteAddress: '198.51.100.2', xForwardedFor: '203.0.113.9' }))).toBe('GW_AUTH_FORBIDDEN');
    expect(await outcome(s.checker, ep, req(undefined, { remoteAddress: '127.0.0.1', xForwardedFor: '203.0.113.9, 198.51.100.2' }))).toBe('GW_AUTH_FORBIDDEN');
  });

  it('an empty list means no restriction; invalid entries are dropped (fail safe)', async () => {
    const s = setup();
    expect(await outcome(s.checker, table('a', { public: true, allowed_cidrs: [] }), req(undefined, { remoteAddress: '192.0.2.1' }))).toBe('ok');
    const broken = table('b', { public: true, allowed_cidrs: ['nonsense', '10.0.0.0/8'] });
    expect(await outcome(s.checker, broken, req(undefined, { remoteAddress: '10.0.0.1' }))).toBe('ok');
    expect(await outcome(s.checker, broken, req(undefined, { remoteAddress: '192.0.2.1' }))).toBe('GW_AUTH_FORBIDDEN');
    const allBroken = table('c', { public: true, allowed_cidrs: ['nonsense'] });
    expect(await outcome(s.checker, allBroken, req(undefined, { remoteAddress: '10.0.0.1' }))).toBe('GW_AUTH_FORBIDDEN');
  });
});

describe('external issuer via TOKEN_PUBLIC_KEY_FILE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mg-keys-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['RS256', 'ES256', 'EdDSA'] as const)('%s (PEM SPKI and JWK) verifies with the same claim checks', async (alg) => {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const pemFile = join(dir, `${alg}.pem`);
    writeFileSync(pemFile, await exportSPKI(publicKey));
    const jwkFile = join(dir, `${alg}.jwk.json`);
    writeFileSync(jwkFile, JSON.stringify(await exportJWK(publicKey)));
    for (const file of [pemFile, jwkFile]) {
      const s = setup({ external: [await loadPublicKeyFile(file)] });
      const ep = table('llm');
      const sign = (claims: Record<string, unknown>, exp: number) =>
        new SignJWT(claims).setProtectedHeader({ alg }).setIssuer('idp').setAudience(ep.id).setSubject('bob').setExpirationTime(exp).sign(privateKey);
      const good = await sign({ jti: `j-${alg}` }, T0 / 1000 + 60);
      expect(await outcome(s.checker, ep, req(`BackendAI ${good}`))).toBe('ok');
      expect(syncOutcome(s.checker, ep, req(`Bearer ${good}`))).toBe('ok(sync)');
      expect(await outcome(s.checker, table('other'), req(`BackendAI ${good}`))).toBe('GW_AUTH_FORBIDDEN');
      expect(await outcome(s.checker, ep, req(`BackendAI ${await sign({}, T0 / 1000 - 60)}`))).toBe('GW_AUTH_EXPIRED');
      s.revocations.add(`j-${alg}`, T0 / 1000 + 60);
      expect(syncOutcome(s.checker, ep, req(`Bearer ${good}`))).toBe('GW_AUTH_REVOKED');
      // A key pair the gateway does not know.
      const stranger = await generateKeyPair(alg);
      const forged = await new SignJWT({}).setProtectedHeader({ alg }).setAudience(ep.id).setExpirationTime(T0 / 1000 + 60).sign(stranger.privateKey);
      expect(await outcome(s.checker, ep, req(`BackendAI ${forged}`))).toBe('GW_AUTH_INVALID');
    }
  });

  it('no HS/RS confusion: an HS256 token keyed with the public key PEM is refused', async () => {
    const { publicKey } = await generateKeyPair('RS256', { extractable: true });
    const pem = await exportSPKI(publicKey);
    const file = join(dir, 'confusion.pem');
    writeFileSync(file, pem);
    const s = setup({ external: [await loadPublicKeyFile(file)] });
    const ep = table('llm');
    const forged = await new SignJWT({ jti: 'j' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('modelgate')
      .setAudience(ep.id)
      .setExpirationTime(T0 / 1000 + 60)
      .sign(new TextEncoder().encode(pem));
    expect(await outcome(s.checker, ep, req(`BackendAI ${forged}`))).toBe('GW_AUTH_INVALID');
  });

  it('an ES256 key does not accept an RS256 token, and TOKEN_ISSUERS restricts iss', async () => {
    const es = await generateKeyPair('ES256', { extractable: true });
    const file = join(dir, 'es.pem');
    writeFileSync(file, await exportSPKI(es.publicKey));
    const s = setup({ external: [await loadPublicKeyFile(file)], issuers: ['https://idp.example'] });
    const ep = table('llm');
    const rs = await generateKeyPair('RS256');
    const rsToken = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setAudience(ep.id).setExpirationTime(T0 / 1000 + 60).sign(rs.privateKey);
    expect(await outcome(s.checker, ep, req(`BackendAI ${rsToken}`))).toBe('GW_AUTH_INVALID');
    const mk = (iss: string) => new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setIssuer(iss).setAudience(ep.id).setExpirationTime(T0 / 1000 + 60).sign(es.privateKey);
    expect(await outcome(s.checker, ep, req(`BackendAI ${await mk('https://idp.example')}`))).toBe('ok');
    expect(await outcome(s.checker, ep, req(`BackendAI ${await mk('https://evil.example')}`))).toBe('GW_AUTH_INVALID');
  });

  it('refuses private keys, symmetric JWKs and junk at load time, naming the setting', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const cases: [string, string][] = [
      ['priv.pem', await exportPKCS8(privateKey)],
      ['priv.jwk', JSON.stringify(await exportJWK(privateKey))],
      ['oct.jwk', JSON.stringify({ kty: 'oct', k: 'c2VjcmV0' })],
      ['junk.txt', 'hello'],
      ['junk.json', '{"kty":'],
    ];
    for (const [name, text] of cases) {
      const file = join(dir, name);
      writeFileSync(file, text);
      await expect(loadPublicKeyFile(file)).rejects.toThrow(/^TOKEN_PUBLIC_KEY_FILE: /);
    }
    await expect(loadPublicKeyFile(join(dir, 'missing.pem'))).rejects.toThrow(/ENOENT/);
  });
});
