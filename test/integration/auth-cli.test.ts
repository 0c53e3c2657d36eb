import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { describe, expect, it } from 'vitest';
import { createAdminApp } from '../../src/admin/app.js';
import { endpointsRoutes } from '../../src/admin/endpoints-routes.js';
import { tokensRoutes } from '../../src/admin/tokens-routes.js';
import { TokenIssuer } from '../../src/auth/issuer.js';
import { runCli } from '../../src/cli/run.js';
import { silentLogger } from '../../src/obs/logger.js';
import { Metrics } from '../../src/obs/metrics.js';
import { MemoryStore } from '../../src/store/memory-store.js';

const SECRET = 'cli-test-secret-0123456789abcdef0123456789';
const ADMIN = 'cli-admin-token-0123456789';

function io(env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), env: { DATA_DIR: '', ...env } },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

describe('modelgate token create (against a real admin API)', () => {
  it('prints the token, which verifies; API errors are one line', async () => {
    const store = await MemoryStore.open({ dataDir: null, logger: silentLogger() });
    const issuer = new TokenIssuer(SECRET);
    const app = createAdminApp({ adminToken: ADMIN, bodyLimitBytes: 1 << 20, logger: silentLogger(), metrics: new Metrics({ defaultMetrics: false }) }, [
      endpointsRoutes({ store, endpointUrl: (n) => `http://${n}.localhost/` }),
      tokensRoutes({ store, issuer, maxLifetimeSeconds: 86_400 }),
    ]);
    const server = createServer(getRequestListener(app.fetch));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const adminUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await app.request('/v1/endpoints/llm', { method: 'PUT', headers: { authorization: `Bearer ${ADMIN}` }, body: '{}' });
      const t = io({ ADMIN_TOKEN: ADMIN });
      expect(await runCli(['token', 'create', '--endpoint', 'llm', '--ttl', '1h', '--sub', 'me', '--admin-url', adminUrl], t.io)).toBe(0);
      const token = t.out().trim();
      expect(token.split('.')).toHaveLength(3);
      expect(t.err()).toMatch(/^token for endpoint llm: jti .+, sub me, expires /);
      const v = io({ TOKEN_SECRET: SECRET });
      expect(await runCli(['token', 'verify', token], v.io)).toBe(0);

      const j = io({ ADMIN_TOKEN: ADMIN });
      expect(await runCli(['token', 'create', '--endpoint', 'llm', '--json', '--admin-url', adminUrl], j.io)).toBe(0);
      expect(Object.keys(JSON.parse(j.out())).sort()).toEqual(['expires_at', 'jti', 'sub', 'token']);

      const bad = io({ ADMIN_TOKEN: ADMIN });
      expect(await runCli(['token', 'create', '--endpoint', 'llm', '--ttl', '9y', '--admin-url', adminUrl], bad.io)).toBe(1);
      expect(bad.err()).toMatch(/^modelgate token: ADM_INVALID: invalid request \(duration: is beyond the maximum/);

      const missing = io({ ADMIN_TOKEN: ADMIN });
      expect(await runCli(['token', 'create', '--endpoint', 'nope', '--admin-url', adminUrl], missing.io)).toBe(1);
      expect(missing.err()).toContain('ADM_NOT_FOUND');

      const unauth = io({ ADMIN_TOKEN: 'wrong-admin-token-0123456789' });
      expect(await runCli(['token', 'create', '--endpoint', 'llm', '--admin-url', adminUrl], unauth.io)).toBe(1);
      expect(unauth.err()).toContain('ADM_UNAUTHORIZED');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await store.close();
    }
  });

  it('an unreachable admin API is one line, exit 1', async () => {
    const t = io({ ADMIN_TOKEN: ADMIN });
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((r) => closed.close(() => r()));
    expect(await runCli(['token', 'create', '--endpoint', 'llm', '--admin-url', url], t.io)).toBe(1);
    expect(t.err()).toBe(`modelgate token: cannot reach the admin API at ${url}: ECONNREFUSED\n`);
  });
});
