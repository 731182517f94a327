import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Gate, keepRawBody, type TollgateExpressOptions, tollgate } from '@tollgate/express'
import express, { type Express } from 'express'
import { describe, expect, it, vi } from 'vitest'
import { describeForwarding, type SuiteOptions } from '../../../test/helpers/forward-suite.js'
import { Cleanup, chat, closeServer, fake, send } from '../../../test/helpers/http.js'

const cleanup = new Cleanup()

function gateWith(options: TollgateExpressOptions): Gate {
  const gate = tollgate(options)
  cleanup.add(() => gate.close(), null)
  return gate
}

async function listen(app: Express): Promise<number> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  cleanup.add(() => closeServer(server), null)
  return (server.address() as AddressInfo).port
}

describeForwarding('Express', cleanup, async (_cleanup, options: SuiteOptions) => {
  const { defaultLimits, trustProxy, ...gatewayOptions } = options
  const gate = gateWith({ ...gatewayOptions, ...(defaultLimits === undefined ? {} : { defaultLimits }) })
  const app = express()
  if (trustProxy !== undefined) app.set('trust proxy', trustProxy)
  const limit = defaultLimits === undefined ? [] : [gate.limit()]
  app.post('/v1/chat/completions', ...limit, gate.forward())
  app.get('/v1/models', gate.listModels())
  app.get('/gateway/*rest', gate.forward({ rewrite: { stripPrefix: '/gateway', addPrefix: '/v1' } }))
  app.all('/*rest', gate.forward())
  return { port: await listen(app), backends: gate.backends }
})

// Odd spacing, key order and escapes: only forwarding the original bytes keeps them.
const ODD_BODY = '{ "model" :"fake-model","messages":[{"content":"h\\u00e9llo ✓","role":"user"}] ,"z":1.50}'

describe('Express: mounting', () => {
  it('forwards the whole path of a route in a router mounted under a path', async () => {
    const backend = await fake(cleanup)
    const gate = gateWith({ backends: [{ url: backend.url }] })
    const app = express()
    const v1 = express.Router()
    v1.post('/chat/completions', gate.forward())
    app.use('/v1', v1)
    const port = await listen(app)
    const answer = await send(port, { path: '/v1/chat/completions?q=1', body: chat() })
    expect(answer.status).toBe(200)
    expect(backend.lastRequest?.url).toBe('/v1/chat/completions?q=1')
  })

  it('applies rewrite to the whole path under a mounted router', async () => {
    const backend = await fake(cleanup)
    const gate = gateWith({ backends: [{ url: backend.url }] })
    const app = express()
    const api = express.Router()
    api.get('/*rest', gate.forward({ rewrite: { stripPrefix: '/api', addPrefix: '/v1' } }))
    app.use('/api', api)
    const port = await listen(app)
    const answer = await send(port, { path: '/api/models' })
    expect(answer.status).toBe(200)
    expect(backend.lastRequest?.url).toBe('/v1/models')
  })
})

describe('Express: whatever body parser ran before gate.forward()', () => {
  it('forwards the exact bytes when express.json() keeps them with { verify: keepRawBody }', async () => {
    const backend = await fake(cleanup, { models: ['fake-model', 'other'] })
    const other = await fake(cleanup, { models: ['other'] })
    const gate = gateWith({
      backends: [
        { url: backend.url, models: backend.models },
        { url: other.url, models: other.models },
      ],
    })
    const app = express()
    app.use(express.json({ verify: keepRawBody }))
    app.post('/v1/chat/completions', gate.forward())
    const port = await listen(app)
    for (let i = 0; i < 3; i++) {
      const answer = await send(port, {
        path: '/v1/chat/completions',
        headers: { 'content-type': 'application/json' },
        body: ODD_BODY,
      })
      expect(answer.status).toBe(200)
      // The parsed `model` routes the request: only one backend serves it.
      expect(answer.headers['x-backend']).toBe(backend.name)
    }
    expect(backend.lastRequest?.body.equals(Buffer.from(ODD_BODY))).toBe(true)
  })

  it('forwards equivalent JSON after a plain express.json(), warning once', async () => {
    const backend = await fake(cleanup)
    const warn = vi.fn()
    const gate = gateWith({ backends: [{ url: backend.url }], logger: { warn } })
    const app = express()
    app.use(express.json())
    app.post('/v1/chat/completions', gate.forward())
    const port = await listen(app)
    for (let i = 0; i < 2; i++) {
      const answer = await send(port, {
        path: '/v1/chat/completions',
        headers: { 'content-type': 'application/json' },
        body: ODD_BODY,
      })
      expect(answer.status).toBe(200)
    }
    const received = backend.lastRequest!
    expect(JSON.parse(received.body.toString('utf8'))).toEqual(JSON.parse(ODD_BODY))
    expect(received.headers['content-length']).toBe(String(received.body.length))
    expect(warn).toHaveBeenCalledTimes(1)
    expect(String(warn.mock.calls[0]![0])).toMatch(/keepRawBody/)
  })

  it('reads the body itself when no parser ran, for model routing and forwarding alike', async () => {
    const alpha = await fake(cleanup, { models: ['alpha'] })
    const beta = await fake(cleanup, { models: ['beta'] })
    const gate = gateWith({ backends: [alpha, beta].map((f) => ({ url: f.url, models: f.models })) })
    const app = express()
    app.post('/v1/chat/completions', gate.forward())
    const port = await listen(app)
    const body = ODD_BODY.replace('fake-model', 'beta')
    const answer = await send(port, {
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json' },
      body,
    })
    expect(answer.status).toBe(200)
    expect(answer.headers['x-backend']).toBe(beta.name)
    expect(beta.lastRequest?.body.equals(Buffer.from(body))).toBe(true)
  })

  it('forwards a non-JSON body untouched after express.json() and with model routing on', async () => {
    const backend = await fake(cleanup)
    const gate = gateWith({ backends: [{ url: backend.url, models: ['fake-model'] }] })
    const app = express()
    app.use(express.json())
    app.post('/v1/audio/transcriptions', gate.forward())
    const port = await listen(app)
    const body = Buffer.from(
      '--x\r\nContent-Disposition: form-data; name="file"\r\n\r\n\u0000\u00ff\r\n--x--\r\n',
      'latin1',
    )
    await send(port, {
      path: '/v1/audio/transcriptions',
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
      body,
    })
    expect(backend.lastRequest?.body.equals(body)).toBe(true)
  })

  it('answers a body over maxBodyBytes with 413, without forwarding', async () => {
    const backend = await fake(cleanup, { models: ['fake-model'] })
    const gate = gateWith({ backends: [{ url: backend.url, models: ['fake-model'] }], maxBodyBytes: 1_000 })
    const app = express()
    app.post('/v1/chat/completions', gate.forward())
    const port = await listen(app)
    const answer = await send(port, {
      path: '/v1/chat/completions',
      body: chat({ padding: 'x'.repeat(2_000) }),
    })
    expect(answer.status).toBe(413)
    expect(answer.json().error.code).toBe('body_too_large')
    expect(backend.stats.requests).toBe(0)
  })

  it('says what to write when forward() is used without backends', () => {
    const gate = gateWith({ defaultLimits: '1 per second' })
    expect(() => gate.forward()).toThrow(/backends/)
  })
})
