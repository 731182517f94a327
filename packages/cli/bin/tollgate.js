#!/usr/bin/env node
// The `tollgate` command. An installed package ships its built dist/, which runs as it is. Only in a
// clone of the repository, where the packages are TypeScript until built, does a missing dist/ get
// built once (turbo, as `npm run build` does) before running.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const entry = new URL('../dist/bin.js', import.meta.url)
if (!existsSync(fileURLToPath(entry))) {
  const root = fileURLToPath(new URL('../../..', import.meta.url))
  // tsconfig.json is not in the tarball (`files` is bin, dist, src), so an installed copy, whatever
  // the project around it holds, is never taken for a clone and never builds.
  const inClone =
    existsSync(fileURLToPath(new URL('../tsconfig.json', import.meta.url))) &&
    existsSync(`${root}/turbo.json`)
  if (!inClone) {
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
      // npx is npx.cmd on Windows, which only a shell runs.
      shell: process.platform === 'win32',
    },
  )
  if (built.status !== 0) process.exit(built.status ?? 1)
}
await import(entry.href)
