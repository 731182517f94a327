import type { AddressInfo } from 'node:net'
import tollgate from '@tollgate/fastify'
import Fastify, { type FastifyInstance } from 'fastify'
import { describe, expect, it } from 'vitest'
import { describeForwarding, type SuiteOptions } from '../../../test/helpers/forward-suite.js'
import { Cleanup, chat, fake, send } from '../../../test/helpers/http.js'

const cleanup = new Cleanup()

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

describeForwarding('Fastify', cleanup, async (cleanup, options: SuiteOptions) => {
  const { defaultLimits, trustProxy, ...gateway } = options
  const app = Fastify({ trustProxy: trustProxy ?? false })
  cleanup.add(() => app.close(), null)
  await app.register(tollgate, { ...gateway, ...(defaultLimits === undefined ? {} : { defaultLimits }) })
  const limited = defaultLimits === undefined ? { config: { rateLimit: false as const } } : {}
  app.post('/v1/chat/completions', limited, app.tollgate.forward())
  app.get('/v1/models', { config: { rateLimit: false } }, app.tollgate.listModels())
  app.get(
    '/gateway/*',
    { config: { rateLimit: false } },
    app.tollgate.forward({ rewrite: { stripPrefix: '/gateway', addPrefix: '/v1' } }),
  )
  app.route({
    method: ['GET', 'POST'],
    url: '/*',
    config: { rateLimit: false },
    handler: app.tollgate.forward(),
  })
  return { port: await listen(app), backends: app.tollgate.backends }
})

describe('Fastify: forward routes and the body parser', () => {
  it('forwards the original bytes of a large JSON body that Fastify also parsed', async () => {
    const backend = await fake(cleanup)
    const app = Fastify()
    cleanup.add(() => app.close(), null)
    await app.register(tollgate, { backends: [{ url: backend.url }] })
    let parsedModel: unknown
    app.post(
      '/v1/chat/completions',
      {
        preHandler: async (req) => {
          parsedModel = (req.body as { model?: unknown }).model
        },
      },
      app.tollgate.forward(),
    )
    const port = await listen(app)
    // Big enough to arrive in several chunks.
    const content = 'ü'.repeat(200_000)
    const body = `{"model":"fake-model",   "messages":[{"role":"user","content":"${content}"}]}`
    const answer = await send(port, {
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body,
    })
    expect(answer.status).toBe(200)
    expect(parsedModel).toBe('fake-model')
    expect(backend.lastRequest?.body.equals(Buffer.from(body))).toBe(true)
  })

  it('keeps answering 415 to unknown content types on routes that do not forward', async () => {
    const backend = await fake(cleanup)
    const app = Fastify()
    cleanup.add(() => app.close(), null)
    await app.register(tollgate, { backends: [{ url: backend.url }] })
    app.post('/v1/files', app.tollgate.forward())
    app.post('/local', async () => ({ ok: true }))
    const port = await listen(app)
    const headers = { 'content-type': 'application/octet-stream' }
    const local = await send(port, { path: '/local', headers, body: 'abc' })
    expect(local.status).toBe(415)
    expect(local.json().code).toBe('FST_ERR_CTP_INVALID_MEDIA_TYPE')
    expect((await send(port, { path: '/v1/files', headers, body: 'abc' })).headers['x-backend']).toBe(
      backend.name,
    )
    expect(backend.lastRequest?.body.toString()).toBe('abc')
  })

  it('forwards the whole path of a route declared under a prefix', async () => {
    const backend = await fake(cleanup)
    const app = Fastify()
    cleanup.add(() => app.close(), null)
    await app.register(tollgate, { backends: [{ url: backend.url }] })
    await app.register(
      async (v1) => {
        v1.post('/chat/completions', app.tollgate.forward())
      },
      { prefix: '/v1' },
    )
    const port = await listen(app)
    const answer = await send(port, { path: '/v1/chat/completions?q=1', body: chat() })
    expect(answer.status).toBe(200)
    expect(backend.lastRequest?.url).toBe('/v1/chat/completions?q=1')
  })

  it('answers a body over maxBodyBytes with 413, without forwarding', async () => {
    const backend = await fake(cleanup)
    const app = Fastify()
    cleanup.add(() => app.close(), null)
    await app.register(tollgate, { backends: [{ url: backend.url }], maxBodyBytes: 1_000 })
    app.post('/v1/chat/completions', app.tollgate.forward())
    const port = await listen(app)
    const answer = await send(port, {
      path: '/v1/chat/completions',
      body: chat({ padding: 'x'.repeat(2_000) }),
    })
    expect(answer.status).toBe(413)
    expect(backend.stats.requests).toBe(0)
  })

  it('says what to write when forward() is used without backends', async () => {
    const app = Fastify()
    cleanup.add(() => app.close(), null)
    await app.register(tollgate, { defaultLimits: '1 per second' })
    expect(() => app.tollgate.forward()).toThrow(/backends/)
  })
})
