import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TokenIssuer } from '../../../src/auth/issuer.js';
import { runCli } from '../../../src/cli/run.js';

const SECRET = 'cli-test-secret-0123456789abcdef0123456789';

function io(env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t), env: { DATA_DIR: '', ...env } },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

describe('runCli', () => {
  it('--help lists the commands', async () => {
    const t = io();
    expect(await runCli(['--help'], t.io)).toBe(0);
    expect(t.out()).toMatch(/token\s+create a token/);
  });

  it('an unknown command is one line on stderr, exit 2', async () => {
    const t = io();
    expect(await runCli(['frobnicate'], t.io)).toBe(2);
    expect(t.err().trim().split('\n')).toHaveLength(1);
  });

  it('usage errors exit 2 with one line', async () => {
    const t = io();
    expect(await runCli(['token', 'create', '--ttl', '1h'], t.io)).toBe(2);
    expect(t.err()).toBe('modelgate token: --endpoint NAME is required (see modelgate token --help)\n');
    const u = io();
    expect(await runCli(['token', 'create', '--bogus'], u.io)).toBe(2);
    expect(u.err().trim().split('\n')).toHaveLength(1);
  });
});

describe('modelgate token verify', () => {
  it('valid token: prints claims and verdict, exit 0; wrong endpoint id: exit 1', async () => {
    const aud = randomUUID();
    const { token } = await new TokenIssuer(SECRET).issue({ endpointId: aud, sub: 'alice', exp: Math.floor(Date.now() / 1000) + 600 });
    const t = io({ TOKEN_SECRET: SECRET });
    expect(await runCli(['token', 'verify', token], t.io)).toBe(0);
    expect(t.out()).toContain('"sub":"alice"');
    expect(t.out()).toContain('verdict: valid');
    expect(t.out()).not.toContain(SECRET);
    const u = io({ TOKEN_SECRET: SECRET });
    expect(await runCli(['token', 'verify', token, '--endpoint-id', randomUUID()], u.io)).toBe(1);
    expect(u.out()).toContain('verdict: invalid: GW_AUTH_FORBIDDEN');
    const v = io({ TOKEN_SECRET: SECRET });
    expect(await runCli(['token', 'verify', `BackendAI ${token}`, '--endpoint-id', aud, '--json'], v.io)).toBe(0);
    expect(JSON.parse(v.out())).toMatchObject({ valid: true, code: null, claims: { aud, sub: 'alice' } });
  });

  it('expired, foreign and garbage tokens: exit 1 with the gateway code', async () => {
    const expired = (await new TokenIssuer(SECRET).issue({ endpointId: randomUUID(), sub: 'a', exp: Math.floor(Date.now() / 1000) - 120 })).token;
    const foreign = (await new TokenIssuer('another-secret-0123456789abcdef0123456789').issue({ endpointId: randomUUID(), sub: 'a', exp: Math.floor(Date.now() / 1000) + 60 })).token;
    for (const [token, code] of [[expired, 'GW_AUTH_EXPIRED'], [foreign, 'GW_AUTH_INVALID'], ['garbage', 'GW_AUTH_INVALID']]) {
      const t = io({ TOKEN_SECRET: SECRET });
      expect(await runCli(['token', 'verify', token], t.io)).toBe(1);
      expect(t.out()).toContain(`verdict: invalid: ${code}`);
    }
  });

  it('no key configured → one clear line, exit 1', async () => {
    const t = io();
    expect(await runCli(['token', 'verify', 'a.b.c'], t.io)).toBe(1);
    expect(t.err()).toMatch(/^modelgate token: no key to verify with: set TOKEN_SECRET/);
  });
});
