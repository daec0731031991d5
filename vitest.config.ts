import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // The chaos and fuzz suites (test/faults) run on their own: `npm run test:faults` sets
    // WEFT_FAULTS=1 (CI runs it after `npm test`, see the verify script).
    exclude: [...configDefaults.exclude, ...(process.env.WEFT_FAULTS ? [] : ['test/faults/**'])],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Each file opens its own databases; two cores, so keep the pool small.
    maxWorkers: 2,
    globalSetup: ['test/global-setup.ts'],
    // Webhook secrets are stored encrypted and refused without a key (src/core/secret-box.ts): the
    // suite runs with a fixed test key; tests of the keyless case pass their own SecretBox.
    env: {
      WEFT_SECRET_KEY:
        process.env.WEFT_SECRET_KEY ??
        '7e57000000000000000000000000000000000000000000000000000000007e57',
    },
  },
});
