import { chmod, cp, mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Consumer, createConsumer, run } from './packing.js'

const fixtures = fileURLToPath(new URL('./consumer/', import.meta.url))

interface Failed {
  code?: number
  stdout?: string
  stderr?: string
}

async function node(cwd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(process.execPath, args, { cwd, timeout: 30_000 })
  } catch (err) {
    const f = err as Failed
    throw new Error(`node ${args.join(' ')} exited ${f.code}:\n${f.stdout ?? ''}${f.stderr ?? ''}`)
  }
}

interface Exited {
  code: number
  stdout: string
  stderr: string
}

/** Runs a file as a user's shell would (through its shebang), resolving to how it exited. */
async function exec(file: string, args: string[], cwd: string): Promise<Exited> {
  try {
    const { stdout, stderr } = await run(file, args, { cwd, timeout: 30_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const f = err as Failed
    if (typeof f.code !== 'number') throw err
    return { code: f.code, stdout: f.stdout ?? '', stderr: f.stderr ?? '' }
  }
}

/** The command as npm links it into a project: node_modules/.bin/tollgate. */
function tollgate(cwd: string, args: string[]): Promise<Exited> {
  return exec(join(cwd, 'node_modules', '.bin', 'tollgate'), args, cwd)
}

// A user's project with the packed tarballs installed: what TypeScript and Node see there is what
// a user of the published packages sees, with no `paths` or aliases into the repository.
describe('the packed packages in a consumer project', () => {
  let consumer: Consumer

  beforeAll(async () => {
    consumer = await createConsumer(fixtures)
  }, 60_000)
  afterAll(async () => {
    await consumer?.remove()
  })

  it('type-check a Fastify app, an Express app and a CommonJS require (incl. request.rateLimit and req.rateLimit)', async () => {
    const tsc = join(consumer.dir, 'node_modules', 'typescript', 'bin', 'tsc')
    let output = ''
    try {
      await run(process.execPath, [tsc, '-p', 'tsconfig.json', '--pretty', 'false'], {
        cwd: consumer.dir,
        timeout: 60_000,
      })
    } catch (err) {
      const f = err as Failed
      output = `${f.stdout ?? ''}${f.stderr ?? ''}` || String(err)
    }
    // The fixtures' @ts-expect-error lines make the check fail if the decision were `any`.
    expect(output).toBe('')
  }, 90_000)

  it('load with require() from CommonJS, without a warning', async () => {
    const script = `
      const core = require('@tollgate/core')
      const fastify = require('@tollgate/fastify')
      const express = require('@tollgate/express')
      const cli = require('@tollgate/cli')
      console.log(JSON.stringify({
        windows: core.parseLimits('200 per day, 50 per hour').map((l) => l.windowMs),
        fastifyPlugin: typeof fastify.default,
        expressFactory: typeof express.tollgate,
        optionError: express.OptionError === core.OptionError,
        checkConfigFile: typeof cli.checkConfigFile,
      }))`
    const { stdout, stderr } = await node(consumer.dir, ['-e', script])
    // Node >= 20.19 loads ESM for require() without an ExperimentalWarning when nothing awaits at top level.
    expect(stderr).toBe('')
    expect(JSON.parse(stdout)).toEqual({
      windows: [86_400_000, 3_600_000],
      fastifyPlugin: 'function',
      expressFactory: 'function',
      optionError: true,
      checkConfigFile: 'function',
    })
  })

  it('limit requests from an Express app that requires them', async () => {
    // One real request through the CommonJS entry, so require() gives a working package, not
    // just a module object.
    const script = `
      const express = require('express')
      const { tollgate } = require('@tollgate/express')
      const gate = tollgate({ defaultLimits: '1 per minute' })
      const app = express()
      app.get('/', gate.limit(), (req, res) => res.json({ remaining: req.rateLimit.binding.remaining }))
      const server = app.listen(0, '127.0.0.1', async () => {
        const url = 'http://127.0.0.1:' + server.address().port + '/'
        const first = await fetch(url)
        const second = await fetch(url)
        console.log(JSON.stringify({ first: first.status, body: await first.json(), second: second.status }))
        server.close()
        await gate.close()
      })`
    const { stdout } = await node(consumer.dir, ['-e', script])
    expect(JSON.parse(stdout)).toEqual({ first: 200, body: { remaining: 0 }, second: 429 })
  })

  it('import as ESM with a working Fastify plugin', async () => {
    const script = `
      import Fastify from 'fastify'
      import tollgate from '@tollgate/fastify'
      const app = Fastify()
      await app.register(tollgate, { defaultLimits: '1 per minute' })
      app.get('/', async (request) => ({ remaining: request.rateLimit.binding.remaining }))
      const url = (await app.listen({ port: 0, host: '127.0.0.1' })) + '/'
      const first = await fetch(url)
      const second = await fetch(url)
      console.log(JSON.stringify({ first: first.status, body: await first.json(), second: second.status }))
      await app.close()`
    const { stdout } = await node(consumer.dir, ['--input-type=module', '-e', script])
    expect(JSON.parse(stdout)).toEqual({ first: 200, body: { remaining: 0 }, second: 429 })
  })

  it('run `tollgate check` from node_modules/.bin: 0 for a valid file, 1 with file:line:col for an invalid one', async () => {
    await writeFile(
      join(consumer.dir, 'gateway.yaml'),
      [
        'defaultLimits: 200 per day, 50 per hour',
        'backends:',
        '  - { url: "http://127.0.0.1:8001", id: a }',
        'routes:',
        '  - { method: POST, path: /v1/chat/completions, forward: true }',
        '',
      ].join('\n'),
    )
    await writeFile(join(consumer.dir, 'bad.yaml'), 'backends:\n  - { url: "ftp://10.0.0.2" }\n')
    const good = await tollgate(consumer.dir, ['check', '--config', 'gateway.yaml'])
    expect(good).toMatchObject({ code: 0, stderr: '' })
    expect(good.stdout).toMatch(/^gateway\.yaml: ok \(1 backend, 1 route\)\n {2}listen 127\.0\.0\.1:8080\n/)
    expect(good.stdout).toContain(
      '  route POST /v1/chat/completions → forward, limits 200 per day, 50 per hour (default)\n',
    )
    const bad = await tollgate(consumer.dir, ['check', '--config', 'bad.yaml'])
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/^bad\.yaml:2:12: backends\[0\]\.url must be an http:\/\/ or https:\/\/ URL/)
  })

  it('never build outside a clone: an installed copy without dist/ says so and exits 1', async () => {
    // A user's turbo monorepo around node_modules must not be taken for the tollgate repository.
    const project = join(consumer.dir, 'turbo-project')
    const installed = join(project, 'node_modules', '@tollgate', 'cli')
    await mkdir(installed, { recursive: true })
    await cp(join(consumer.dir, 'node_modules', '@tollgate', 'cli'), installed, { recursive: true })
    await rm(join(installed, 'dist'), { recursive: true })
    for (const turbo of [join(project, 'turbo.json'), join(project, 'node_modules', 'turbo.json')]) {
      await writeFile(turbo, '{ "tasks": { "build": {} } }\n')
    }
    const launcher = join(installed, 'bin', 'tollgate.js')
    await chmod(launcher, 0o755)
    const result = await exec(launcher, ['check', '--config', 'gateway.yaml'], project)
    expect(result).toEqual({
      code: 1,
      stdout: '',
      stderr: 'tollgate: dist/ is missing from @tollgate/cli; reinstall the package\n',
    })
  })
})
