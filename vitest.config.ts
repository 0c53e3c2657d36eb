import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Integration tests run real processes and sockets on a 2-core machine; one retry absorbs
    // scheduling hiccups, while a real failure still fails twice and is reported.
    retry: 1,
    reporters: ['default'],
  },
});
