import { defineConfig } from 'vitest/config';

/**
 * Two projects. `unit`: pure code, no sockets to other processes, no Redis, no retries: a
 * failure is a bug. `integration`: real upstreams, a real redis-server (global setup), child
 * processes; on a busy 2-core machine one retry absorbs a scheduling hiccup, and a real failure
 * still fails twice and is reported.
 */
export default defineConfig({
  test: {
    pool: 'forks',
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 5_000,
          retry: 0,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/security/**/*.test.ts', 'test/e2e/**/*.test.ts', 'test/browser/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
          retry: 1,
        },
      },
    ],
  },
});
