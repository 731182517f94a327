import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { BackendConfig, BackendSnapshot } from '@tollgate/core'
import type { Gate } from '@tollgate/express'
import type { Express } from 'express'
import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import type { FakeModelServer } from '../examples/fake-model-server.js'
import { type Answer, Cleanup, chat, closeServer, fake, openStream, send } from './helpers/http.js'

// The examples are plain JavaScript without type declarations: describe what this test relies on.
interface FastifyExample {
  buildGateway(options: { backends: BackendConfig[]; strategy?: string }): Promise<FastifyInstance>
}
interface ExpressExample {
  buildGateway(options: { backends: BackendConfig[]; strategy?: string }): { app: Express; gate: Gate }
}
const fastifyExample = '../examples/fastify-gateway.js'
const expressExample = '../examples/express-gateway.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

async function threeFakes(): Promise<FakeModelServer[]> {
  return [
    await fake(cleanup, { name: 'fast', answerTokens: 4 }),
    await fake(cleanup, { name: 'medium', answerTokens: 4, timeToFirstTokenMs: 20 }),
    await fake(cleanup, { name: 'slow', answerTokens: 4, timeToFirstTokenMs: 60 }),
  ]
}

const asBackends = (fakes: FakeModelServer[]): BackendConfig[] =>
  fakes.map((f) => ({ url: f.url, id: f.name, models: f.models }))

const ask = (port: number): Promise<Answer> => send(port, { path: '/v1/chat/completions', body: chat() })

/** Chat, stream, models and the backends page, as the example's comments and README describe them. */
async function checkDocumentedRoutes(port: number, fakes: FakeModelServer[]): Promise<void> {
  const answer = await ask(port)
  expect(answer.status).toBe(200)
  expect(answer.json().choices[0].message.content).toBeTypeOf('string')
  expect(fakes.map((f) => f.name)).toContain(answer.headers['x-backend'])
  expect(answer.headers['ratelimit-policy']).toBeDefined()

  const stream = await openStream(port, { body: chat({ stream: true }) })
  expect(stream.headers['content-type']).toMatch(/text\/event-stream/)
  const events = await stream.rest()
  expect(events.at(-1)).toBe('data: [DONE]')

  const models = await send(port, { path: '/v1/models' })
  expect(models.status).toBe(200)
  expect(models.json().data.map((m: { id: string }) => m.id)).toEqual(['fake-model'])
  // From the registry, not from whichever backend was picked.
  expect(models.json().data[0].owned_by).toBe('tollgate')

  const page = await send(port, { path: '/gateway/backends' })
  expect(page.status).toBe(200)
  const snapshot = page.json() as BackendSnapshot[]
  expect(snapshot.map((b) => b.id).sort()).toEqual(['fast', 'medium', 'slow'])
  expect(snapshot.reduce((sum, b) => sum + b.totalRequests, 0)).toBeGreaterThanOrEqual(2)
  for (const b of snapshot) expect(b).toMatchObject({ status: 'healthy', inFlight: 0 })
}

describe('examples/fastify-gateway.js', () => {
  it('serves chat, streams, models and the backends page with limits', async () => {
    const { buildGateway } = (await import(fastifyExample)) as FastifyExample
    const fakes = await threeFakes()
    const app = await buildGateway({ backends: asBackends(fakes) })
    cleanup.add(() => app.close(), null)
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as AddressInfo).port
    await checkDocumentedRoutes(port, fakes)

    const limited = await ask(port)
    expect(limited.headers['ratelimit-policy']).toMatch(/200.*50|50.*200/)
    // The models route is declared without limits.
    expect((await send(port, { path: '/v1/models' })).headers['ratelimit-policy']).toBeUndefined()
  })

  it('keeps answering with least-latency when a backend dies', async () => {
    const { buildGateway } = (await import(fastifyExample)) as FastifyExample
    const fakes = await threeFakes()
    const app = await buildGateway({ backends: asBackends(fakes) })
    cleanup.add(() => app.close(), null)
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as AddressInfo).port
    fakes[0]!.setFailureMode('reset')
    for (let i = 0; i < 6; i++) expect((await ask(port)).status).toBe(200)
  })
})

describe('examples/express-gateway.js', () => {
  async function started(): Promise<{ port: number; fakes: FakeModelServer[] }> {
    const { buildGateway } = (await import(expressExample)) as ExpressExample
    const fakes = await threeFakes()
    const { app, gate } = buildGateway({ backends: asBackends(fakes) })
    cleanup.add(() => gate.close(), null)
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s))
    })
    cleanup.add(() => closeServer(server), null)
    return { port: (server.address() as AddressInfo).port, fakes }
  }

  it('serves chat, streams, models and the backends page with limits', async () => {
    const { port, fakes } = await started()
    await checkDocumentedRoutes(port, fakes)
  })

  it('turns away chat requests over 5 per second before they reach a backend', async () => {
    const { port, fakes } = await started()
    const answers = await Promise.all(Array.from({ length: 7 }, () => ask(port)))
    const statuses = answers.map((a) => a.status).sort()
    // Requests may straddle a one-second window boundary, so allow one extra through.
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(5)
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(6)
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(1)
    const reached = fakes.reduce((sum, f) => sum + f.stats.requests, 0)
    expect(reached).toBe(statuses.filter((s) => s === 200).length)
  })
})
