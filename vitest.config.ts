import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Each file opens its own databases; two cores, so keep the pool small.
    maxWorkers: 2,
    globalSetup: ['test/global-setup.ts'],
  },
});
