import type { Server } from 'node:http'
import type { BackendsHandle } from '@tollgate/core'
import { tollgate as expressTollgate } from '@tollgate/express'
import fastifyTollgate from '@tollgate/fastify'
import express from 'express'
import Fastify from 'fastify'
import OpenAI from 'openai'
import { afterEach, describe, expect, it } from 'vitest'
import type { FakeModelServer } from '../examples/fake-model-server.js'
import { Cleanup, closeServer, fake, portOf } from './helpers/http.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

interface Started {
  base: string
  backends: BackendsHandle
}

type BackendList = { url: string; id: string; models: string[] }[]

async function fastifyGateway(backends: BackendList): Promise<Started> {
  const app = Fastify()
  cleanup.add(() => app.close(), null)
  await app.register(fastifyTollgate, { defaultLimits: '100 per minute', backends })
  app.post('/v1/chat/completions', app.tollgate.forward())
  app.post('/v1/completions', app.tollgate.forward())
  app.get('/v1/models', app.tollgate.listModels())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    base: `http://127.0.0.1:${portOf(app.server)}`,
    backends: app.tollgate.backends,
  }
}

async function expressGateway(backends: BackendList): Promise<Started> {
  const gate = expressTollgate({ defaultLimits: '100 per minute', backends })
  cleanup.add(() => gate.close(), null)
  const app = express()
  app.post('/v1/chat/completions', gate.limit(), gate.forward())
  app.post('/v1/completions', gate.limit(), gate.forward())
  app.get('/v1/models', gate.listModels())
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  cleanup.add(() => closeServer(server), null)
  return { base: `http://127.0.0.1:${portOf(server)}`, backends: gate.backends }
}

describe.each([
  ['Fastify', fastifyGateway],
  ['Express', expressGateway],
])('the openai client through the %s gateway', (_name, startGateway) => {
  let fakes: FakeModelServer[]
  let client: OpenAI
  let backends: BackendsHandle

  async function setUp(): Promise<void> {
    fakes = [
      await fake(cleanup, { name: 'one', models: ['fake-model', 'small'], answerTokens: 8 }),
      await fake(cleanup, { name: 'two', models: ['fake-model'], answerTokens: 8, timePerTokenMs: 5 }),
    ]
    const started = await startGateway(fakes.map((f) => ({ url: f.url, id: f.name, models: f.models })))
    backends = started.backends
    // No retries: an error must surface as the gateway sent it.
    client = new OpenAI({ apiKey: 'test-key', baseURL: `${started.base}/v1`, maxRetries: 0, timeout: 10_000 })
  }

  it('creates a chat completion', async () => {
    await setUp()
    const completion = await client.chat.completions.create({
      model: 'fake-model',
      messages: [{ role: 'user', content: 'Say hello' }],
    })
    expect(completion.object).toBe('chat.completion')
    expect(completion.choices[0]?.message.content?.split(' ')).toHaveLength(8)
    expect(completion.usage?.completion_tokens).toBe(8)
    // The API key reaches the backend untouched.
    const seen = fakes.find((f) => f.lastRequest !== null)!
    expect(seen.lastRequest?.headers.authorization).toBe('Bearer test-key')
  })

  it('streams a chat completion chunk by chunk, usage last', async () => {
    await setUp()
    const stream = await client.chat.completions.create({
      model: 'fake-model',
      messages: [{ role: 'user', content: 'Say hello' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    const words: string[] = []
    let usage: OpenAI.CompletionUsage | null | undefined
    let finish: string | null | undefined
    for await (const chunk of stream) {
      const choice = chunk.choices[0]
      if (choice?.delta.content) words.push(choice.delta.content)
      if (choice?.finish_reason) finish = choice.finish_reason
      if (chunk.usage) usage = chunk.usage
    }
    expect(words).toHaveLength(8)
    expect(finish).toBe('stop')
    expect(usage?.completion_tokens).toBe(8)
  })

  it('creates a legacy completion routed by model', async () => {
    await setUp()
    const completion = await client.completions.create({ model: 'small', prompt: 'Say hello' })
    expect(completion.object).toBe('text_completion')
    expect(completion.system_fingerprint).toBe('one')
  })

  it('lists the models from the registry', async () => {
    await setUp()
    const ids: string[] = []
    for await (const model of client.models.list()) ids.push(model.id)
    expect(ids).toEqual(['fake-model', 'small'])
    expect(fakes[0]!.stats.requests + fakes[1]!.stats.requests).toBe(0)
  })

  it('surfaces an unknown model as a 404 APIError', async () => {
    await setUp()
    const error = await client.chat.completions
      .create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    expect(error).toBeInstanceOf(OpenAI.NotFoundError)
    const apiError = error as InstanceType<typeof OpenAI.APIError>
    expect(apiError.status).toBe(404)
    expect(apiError.code).toBe('unknown_model')
    expect(apiError.message).toMatch(/fake-model, small/)
  })

  it('surfaces no backend being available as a 503 APIError', async () => {
    await setUp()
    await Promise.all(fakes.map((f) => backends.drain(f.name)))
    const error = await client.chat.completions
      .create({ model: 'fake-model', messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    expect(error).toBeInstanceOf(OpenAI.InternalServerError)
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503)
  })
})
