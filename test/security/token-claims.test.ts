import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TEST_TOKEN_SECRET, type TestGateway } from '../support/gateway.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';

/**
 * Issue 21, finding 8 (tokens): a token is for exactly one endpoint, so an `aud` array naming
 * several endpoints is refused even when one of them is this endpoint; a token "issued" in the
 * future (beyond the 30 s leeway) is refused. Both for external issuers and HS256 tokens.
 */
describe('security: token claims', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mg-claims-'));
  let gw: TestGateway;
  let up: TestUpstream;
  let key: CryptoKey;
  let endpointId: string;
  let otherId: string;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256', { extractable: true });
    key = pair.privateKey;
    const file = join(dir, 'issuer.pem');
    writeFileSync(file, await exportSPKI(pair.publicKey));
    gw = await startTestGateway({ TOKEN_PUBLIC_KEY_FILE: file });
    up = await startUpstream();
    endpointId = (await gw.admin('PUT', '/v1/endpoints/llm', { public: false, routes: [{ id: 'a', url: up.url }] })).body.id;
    otherId = (await gw.admin('PUT', '/v1/endpoints/other', { public: false, routes: [{ id: 'b', url: up.url }] })).body.id;
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const now = () => Math.floor(Date.now() / 1000);
  const external = (aud: string | string[], iat = now()) =>
    new SignJWT({ jti: randomUUID() }).setProtectedHeader({ alg: 'RS256' }).setAudience(aud).setIssuedAt(iat).setExpirationTime(now() + 300).sign(key);
  const internal = (aud: string | string[], iat = now()) =>
    new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('modelgate')
      .setAudience(aud)
      .setIssuedAt(iat)
      .setExpirationTime(now() + 300)
      .sign(new TextEncoder().encode(TEST_TOKEN_SECRET));

  const call = async (token: string, host = 'llm') => {
    const res = await fetch(`${gw.url}/e/${host}/`, { headers: { authorization: `BackendAI ${token}` } });
    const text = await res.text();
    return { status: res.status, code: res.status === 200 ? 'ok' : (JSON.parse(text).error.code as string) };
  };

  it.each([
    ['external', external],
    ['HS256', internal],
  ] as const)('%s: aud as a string or a one-element array is fine', async (_kind, sign) => {
    expect(await call(await sign(endpointId))).toEqual({ status: 200, code: 'ok' });
    expect(await call(await sign([endpointId]))).toEqual({ status: 200, code: 'ok' });
  });

  it.each([
    ['external', external],
    ['HS256', internal],
  ] as const)('%s: aud naming several endpoints is refused on each of them', async (_kind, sign) => {
    const multi = await sign([endpointId, otherId]);
    expect(await call(multi, 'llm')).toEqual({ status: 401, code: 'GW_AUTH_INVALID' });
    expect(await call(multi, 'other')).toEqual({ status: 401, code: 'GW_AUTH_INVALID' });
    // Same endpoint twice is still "more than one element".
    expect(await call(await sign([endpointId, endpointId]))).toEqual({ status: 401, code: 'GW_AUTH_INVALID' });
  });

  it.each([
    ['external', external],
    ['HS256', internal],
  ] as const)('%s: iat in the future beyond the leeway is refused; within it, accepted', async (_kind, sign) => {
    expect(await call(await sign(endpointId, now() + 3600))).toEqual({ status: 401, code: 'GW_AUTH_INVALID' });
    expect(await call(await sign(endpointId, now() + 120))).toEqual({ status: 401, code: 'GW_AUTH_INVALID' });
    expect(await call(await sign(endpointId, now() + 10))).toEqual({ status: 200, code: 'ok' });
  });
});
