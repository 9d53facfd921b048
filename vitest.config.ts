import { defineConfig } from 'vitest/config';

// `@anchorage/client…` resolves to the workspace package's TypeScript sources
// (the `anchorage-source` export condition), so suites need no client build and
// every module sees one copy of its classes; spawned processes run dist/.
const conditions = ['anchorage-source'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', 'dist/**', 'packages/*/dist/**'],
    // Integration tests start real processes against SoftHSM2 tokens; keep the
    // 2-core CI machines from oversubscribing.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
