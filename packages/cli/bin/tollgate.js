#!/usr/bin/env node
// The `tollgate` command. In a clone of the repository the packages are TypeScript until built:
// then this builds them once (turbo, as `npm run build` does) before running.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const entry = new URL('../dist/bin.js', import.meta.url)
if (!existsSync(fileURLToPath(entry))) {
  const root = fileURLToPath(new URL('../../..', import.meta.url))
  if (!existsSync(`${root}/turbo.json`)) {
    console.error('tollgate: dist/ is missing from @tollgate/cli; reinstall the package')
    process.exit(1)
  }
  console.error('tollgate: building the packages once (npm run build)…')
  const built = spawnSync(
    'npx',
    ['turbo', 'run', 'build', '--filter=@tollgate/cli...', '--output-logs=errors-only'],
    {
      cwd: root,
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  )
  if (built.status !== 0) process.exit(built.status ?? 1)
}
await import(entry.href)
