import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))
const run = promisify(execFile)

// The other tests import the TypeScript sources; this one checks what a user
// installs: the built ESM packages, resolved by name from the repository root.
describe('built packages', () => {
  const built = existsSync(`${root}packages/core/dist/index.js`)

  it.skipIf(!built && process.env.CI !== 'true')(
    'are importable by name with type declarations',
    async () => {
      const script = `
      const core = await import('@tollgate/core')
      const fastify = await import('@tollgate/fastify')
      const express = await import('@tollgate/express')
      console.log(JSON.stringify({
        parse: core.parseLimits('200 per day, 50 per hour').map((l) => l.windowMs),
        fastifyDefault: typeof fastify.default,
        expressFactory: typeof express.tollgate,
      }))`
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: root })
      expect(JSON.parse(stdout)).toEqual({
        parse: [86_400_000, 3_600_000],
        fastifyDefault: 'function',
        expressFactory: 'function',
      })
      for (const pkg of ['core', 'fastify', 'express']) {
        expect(existsSync(`${root}packages/${pkg}/dist/index.d.ts`)).toBe(true)
      }
    },
  )
})
