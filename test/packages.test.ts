import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { assertBuilt } from './packed/packing.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const run = promisify(execFile)

// The other tests import the TypeScript sources; this one checks the built ESM packages, resolved
// by name from the repository root through the workspace links. test/packed/ checks what a user
// installs: the tarballs, in a project of their own.
describe('built packages', () => {
  it('are importable by name with type declarations', async () => {
    assertBuilt()
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
  })
})
