import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { Agent, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { tollgate as expressTollgate } from '@tollgate/express'
import fastifyTollgate from '@tollgate/fastify'
import express from 'express'
import Fastify from 'fastify'
import { afterAll, describe, expect, it } from 'vitest'
import { type FakeModelServer, startFakeModelServer } from '../../examples/fake-model-server.js'
import {
  type Answer,
  type ChildServer,
  chat,
  freePort,
  IN_CI,
  send,
  spawnFakeBackend,
  waitFor,
} from './support.js'

const fakes: FakeModelServer[] = []
const children: ChildServer[] = []
afterAll(async () => {
  await Promise.all(fakes.map((f) => f.close()))
  await Promise.all(children.map((c) => c.kill()))
})

/** A backend whose streams last `tokens × 20 ms`. */
async function slowBackend(): Promise<FakeModelServer> {
  const fake = await startFakeModelServer({ name: 'slow', timePerTokenMs: 20 })
  fakes.push(fake)
  return fake
}

function streamChat(port: number, tokens: number, agent?: Agent): Promise<Answer> {
  return chat(port, true, { maxTokens: tokens, agent })
}

const refused = (port: number) =>
  send(port, { path: '/v1/models' }).then(
    () => false,
    (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED',
  )

describe('Fastify: app.close()', () => {
  async function gateway(fake: FakeModelServer, shutdownTimeoutMs?: number) {
    const app = Fastify()
    await app.register(fastifyTollgate, { backends: [{ url: fake.url }], shutdownTimeoutMs })
    app.post('/v1/chat/completions', app.tollgate.forward())
    await app.listen({ port: 0, host: '127.0.0.1' })
    return { app, port: (app.server.address() as AddressInfo).port }
  }

  it('stops taking connections and lets an in-flight stream finish', async () => {
    const fake = await slowBackend()
    const { app, port } = await gateway(fake)
    // A keep-alive client: its connection, idle once the stream ends, must not hold close() open.
    const agent = new Agent({ keepAlive: true })
    afterAll(() => agent.destroy())
    const stream = streamChat(port, 40, agent)
    await waitFor(() => fake.stats.inFlight === 1, 5_000, 'the stream to start')
    const closed = app.close()
    await waitFor(() => refused(port), 5_000, 'the gateway to stop accepting connections')
    const answer = await stream
    expect(answer.status).toBe(200)
    expect(answer.body).toContain('data: [DONE]')
    await closed
    expect(fake.stats.completed).toBe(1)
  })

  it('cuts a stream still running at the deadline, visibly, and close() resolves', async () => {
    const fake = await slowBackend()
    const { app, port } = await gateway(fake, 200)
    // 500 tokens × 20 ms: ten seconds, far past the 200 ms deadline.
    const stream = streamChat(port, 500)
    await waitFor(() => fake.stats.inFlight === 1, 5_000, 'the stream to start')
    const startedClosing = Date.now()
    await app.close()
    expect(Date.now() - startedClosing).toBeLessThan(5_000)
    const answer = await stream
    expect(answer.body).not.toContain('data: [DONE]')
    expect(answer.aborted || answer.body.includes('event: error')).toBe(true)
    // The backend saw the cut too: its generation stopped rather than running on for nobody.
    await waitFor(() => fake.stats.cancelled === 1, 5_000, 'the backend to see the cancellation')
  })
})

describe('Express: gate.close() with server.close()', () => {
  async function gateway(fake: FakeModelServer, shutdownTimeoutMs?: number) {
    const gate = expressTollgate({ backends: [{ url: fake.url }], shutdownTimeoutMs })
    const app = express()
    app.post('/v1/chat/completions', gate.forward())
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s))
    })
    const close = () =>
      Promise.all([new Promise<void>((resolve) => server.close(() => resolve())), gate.close()])
    return { gate, close, port: (server.address() as AddressInfo).port }
  }

  it('lets an in-flight stream finish, then everything closes', async () => {
    const fake = await slowBackend()
    const { close, port } = await gateway(fake)
    const agent = new Agent({ keepAlive: true })
    afterAll(() => agent.destroy())
    const stream = streamChat(port, 40, agent)
    await waitFor(() => fake.stats.inFlight === 1, 5_000, 'the stream to start')
    const closed = close()
    await waitFor(() => refused(port), 5_000, 'the server to stop accepting connections')
    const answer = await stream
    expect(answer.body).toContain('data: [DONE]')
    await closed
  })

  it('answers 503 to a forward that arrives after gate.close() began', async () => {
    const fake = await slowBackend()
    const { gate, close, port } = await gateway(fake)
    const stream = streamChat(port, 30)
    await waitFor(() => fake.stats.inFlight === 1, 5_000, 'the stream to start')
    const gateClosed = gate.close()
    const late = await chat(port)
    expect(late.status).toBe(503)
    expect(JSON.parse(late.body).error.code).toBe('no_backend_available')
    expect((await stream).body).toContain('data: [DONE]')
    await gateClosed
    await close()
  })

  it('cuts a stream still running at the deadline, and close resolves', async () => {
    const fake = await slowBackend()
    const { close, port } = await gateway(fake, 200)
    const stream = streamChat(port, 500)
    await waitFor(() => fake.stats.inFlight === 1, 5_000, 'the stream to start')
    await close()
    const answer = await stream
    expect(answer.body).not.toContain('data: [DONE]')
    expect(answer.aborted || answer.body.includes('event: error')).toBe(true)
  })
})

// The examples import the built packages, as a user's app would.
const root = fileURLToPath(new URL('../../', import.meta.url))
const built =
  existsSync(`${root}packages/fastify/dist/index.js`) && existsSync(`${root}packages/express/dist/index.js`)
if (!built && !IN_CI)
  console.warn('packages are not built (npm run build): skipping the example SIGTERM tests')

describe.skipIf(!built && !IN_CI)('examples stop gracefully on SIGTERM', () => {
  for (const [example, listening] of [
    ['fastify-gateway.js', /Server listening at (http:\/\/127\.0\.0\.1:\d+)/],
    ['express-gateway.js', /gateway on (http:\/\/127\.0\.0\.1:\d+)/],
  ] as const) {
    it(`${example}: the in-flight stream completes, then the process exits 0`, async () => {
      const backend = await spawnFakeBackend(await freePort(), 'b', ['--tpt', '20'])
      children.push(backend)
      const child = spawn(process.execPath, [`${root}examples/${example}`], {
        env: { ...process.env, BACKENDS: backend.url, PORT: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
      try {
        const base = await urlFrom(child, listening)
        const port = Number(new URL(base).port)
        const stream = streamChat(port, 40)
        // Headers of an event stream are flushed at once: the stream is in flight at the backend.
        await new Promise((resolve) => setTimeout(resolve, 200))
        child.kill('SIGTERM')
        const answer = await stream
        expect(answer.body).toContain('data: [DONE]')
        expect(await exited).toBe(0)
      } finally {
        child.kill('SIGKILL')
      }
    })
  }
})

function urlFrom(child: ChildProcess, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`no listening line in: ${out}`)), 10_000)
    const onData = (chunk: Buffer) => {
      out += chunk
      const match = pattern.exec(out)
      if (match) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)))
  })
}
