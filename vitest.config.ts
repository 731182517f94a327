import { fileURLToPath } from 'node:url'
import { configDefaults, defineConfig } from 'vitest/config'

const src = (pkg: string, file = 'index') =>
  fileURLToPath(new URL(`./packages/${pkg}/src/${file}.ts`, import.meta.url))

// Tests run against the TypeScript sources; `npm test` builds first so the
// published dist is type-checked and importable too (see test/packages.test.ts).
// Exact matches: a plain '@tollgate/core' key would also catch '@tollgate/core/internal'.
const alias = [
  { find: /^@tollgate\/core$/, replacement: src('core') },
  { find: /^@tollgate\/core\/internal$/, replacement: src('core', 'internal') },
  { find: /^@tollgate\/fastify$/, replacement: src('fastify') },
  { find: /^@tollgate\/express$/, replacement: src('express') },
]

export default defineConfig({
  resolve: { alias },
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'core',
          include: ['packages/core/test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, '**/*.gc.test.ts'],
        },
      },
      // Tests that collect garbage by hand, to show a deadline still fires after a collection.
      {
        extends: true,
        test: { name: 'core-gc', include: ['packages/core/test/**/*.gc.test.ts'], execArgv: ['--expose-gc'] },
      },
      { extends: true, test: { name: 'fastify', include: ['packages/fastify/test/**/*.test.ts'] } },
      { extends: true, test: { name: 'express', include: ['packages/express/test/**/*.test.ts'] } },
      { extends: true, test: { name: 'e2e', include: ['test/**/*.test.ts', 'bench/**/*.test.ts'] } },
    ],
  },
})
