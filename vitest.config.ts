import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { defineConfig } from 'vitest/config';

// `@anchorage/client…` resolves to the workspace package's TypeScript sources
// (the files its `anchorage-source` export condition names, as in
// tsconfig.test.json), so suites need no client build and every module sees one
// copy of its classes. Aliases, not a resolve condition: vitest hands conditions
// on to Node, and worker threads (the CSR verifier pool) would then ask Node to
// load .ts files. Spawned processes and workers run dist/.
const CLIENT = resolve(import.meta.dirname, 'packages/client');
const clientExports = (JSON.parse(readFileSync(resolve(CLIENT, 'package.json'), 'utf8')) as { exports: Record<string, string | Record<string, string>> }).exports;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const alias = Object.entries(clientExports).flatMap(([key, target]) => {
  const source = typeof target === 'object' ? target['anchorage-source'] : undefined;
  if (source === undefined) return [];
  const spec = escape(`@anchorage/client${key.slice(1)}`).replace('\\*', '(.+)');
  return [{ find: new RegExp(`^${spec}$`), replacement: resolve(CLIENT, source).replace('*', '$1') }];
});

export default defineConfig({
  resolve: { alias },
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
