import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * takeSecretEnv in a real child process (the scrub edits the process's own start-up
 * environment block, so it cannot run inside the test worker): afterwards neither
 * process.env nor /proc/<pid>/environ, read by another process, holds the values.
 */
const ROOT = join(import.meta.dirname, '../../..');

describe.runIf(process.platform === 'linux')('secret environment', () => {
  it('hides ADMIN_TOKEN, TOKEN_SECRET and REDIS_URL from /proc/<pid>/environ and from children', () => {
    const script = `
      import { takeSecretEnv } from './src/config/secret-env.ts';
      import { execFileSync } from 'node:child_process';
      const taken = takeSecretEnv();
      const fromOutside = execFileSync('cat', ['/proc/' + process.pid + '/environ'], { encoding: 'latin1' });
      const child = execFileSync('sh', ['-c', 'env'], { encoding: 'utf8' });
      console.log(JSON.stringify({ taken, fromOutside, child, env: process.env.ADMIN_TOKEN ?? null }));
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        ADMIN_TOKEN: 'admin-token-value-0123456789',
        TOKEN_SECRET: 'token-secret-value-0123456789abcdef0123',
        REDIS_URL: 'redis://:redis-password-value@127.0.0.1:6390/0',
        OTHER: 'kept',
      },
    });
    const result = JSON.parse(out.trim().split('\n').pop()!);
    expect(result.taken.scrubbed).toBe(true);
    expect(result.taken.values).toEqual({
      ADMIN_TOKEN: 'admin-token-value-0123456789',
      TOKEN_SECRET: 'token-secret-value-0123456789abcdef0123',
      REDIS_URL: 'redis://:redis-password-value@127.0.0.1:6390/0',
    });
    for (const secret of ['admin-token-value', 'token-secret-value', 'redis-password-value']) {
      expect(result.fromOutside).not.toContain(secret);
      expect(result.child).not.toContain(secret);
    }
    expect(result.fromOutside).toContain('OTHER=kept');
    expect(result.fromOutside).toMatch(/ADMIN_TOKEN=\*+/);
    expect(result.env).toBeNull();
  });
});
