import http from 'node:http'
import { apiKeyKey, type TokenReservation } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import { type Framework, startExpress, startFastify } from './helpers/gateways.js'
import { Cleanup, fake, listen, send, waitFor } from './helpers/http.js'

/**
 * The gateway reads a body the way the engine behind it will (Python's `json.loads(bytes)`: a
 * UTF-8 byte order mark, bare NaN/Infinity), or refuses it: a body it could not account for is
 * never forwarded. Both adapters, real sockets.
 */
const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const BOM = Buffer.from([0xef, 0xbb, 0xbf])
const JSON_TYPE = { 'content-type': 'application/json', authorization: 'Bearer sk-body' }
const NO_TYPE = { authorization: 'Bearer sk-body' }

interface Gateway {
  port: number
  settled: TokenReservation[]
}

/** A gateway whose one backend declares `fake-model` only; the fake itself serves `hidden` too. */
async function start(
  framework: Framework,
  backendUrl: string,
  tokens: string,
  modelNames?: Record<string, string>,
): Promise<Gateway> {
  const settled: TokenReservation[] = []
  const options = {
    backends: [{ url: backendUrl, models: ['fake-model'], modelNames }],
    keyGenerator: apiKeyKey,
    defaultTokens: tokens,
    onTokensSettled: (_req: unknown, r: TokenReservation) => {
      settled.push(r)
    },
  }
  if (framework === 'Fastify') {
    const { port } = await startFastify(cleanup, options as never, (app) => {
      app.post('/v1/chat/completions', app.tollgate.forward())
    })
    return { port, settled }
  }
  const { port } = await startExpress(cleanup, options as never, (app, gate) => {
    app.post('/v1/chat/completions', gate.forward())
  })
  return { port, settled }
}

const bytes = (value: object) => Buffer.from(JSON.stringify(value))
const chat = (extra: object = {}) => ({
  model: 'fake-model',
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
})

describe.each(['Fastify', 'Express'] as const)(
  'a body read as the engine reads it, through %s',
  (framework) => {
    it('charges a 10,000-token prompt sent after a UTF-8 byte order mark', async () => {
      const backend = await fake(cleanup, { answerTokens: 10 })
      const gateway = await start(framework, backend.url, '20000 per minute')
      const body = Buffer.concat([
        BOM,
        bytes(chat({ messages: [{ role: 'user', content: 'x'.repeat(40_000) }] })),
      ])
      const answers = await Promise.all(
        Array.from({ length: 10 }, () =>
          send(gateway.port, { path: '/v1/chat/completions', headers: JSON_TYPE, body }),
        ),
      )
      const ok = answers.filter((a) => a.status === 200).length
      expect(ok).toBeGreaterThanOrEqual(1)
      expect(ok).toBeLessThanOrEqual(2)
      expect(answers.every((a) => a.status === 200 || a.status === 429)).toBe(true)
      expect(backend.stats.promptTokens).toBeLessThanOrEqual(20_000)
    })

    it('asks a stream sent after a byte order mark for its usage, and charges it', async () => {
      const backend = await fake(cleanup, { answerTokens: 7 })
      const gateway = await start(framework, backend.url, '20000 per minute')
      const body = Buffer.concat([BOM, bytes(chat({ stream: true }))])
      const answer = await send(gateway.port, { path: '/v1/chat/completions', headers: JSON_TYPE, body })
      expect(answer.status).toBe(200)
      expect(answer.text()).not.toContain('"usage"')
      await waitFor(() => gateway.settled.length === 1, 'the settle')
      expect(gateway.settled[0]).toMatchObject({ source: 'usage', charged: backend.stats.promptTokens + 7 })
    })

    it.each([
      ['after a byte order mark', JSON_TYPE, Buffer.concat([BOM, bytes(chat({ model: 'hidden' }))])],
      ['with a bare NaN and no Content-Type', NO_TYPE, Buffer.from('{"model":"hidden","temperature":NaN}')],
      [
        'nested deeper than a framework parses',
        JSON_TYPE,
        Buffer.from(`{"model":"hidden","x":${'['.repeat(100)}${']'.repeat(100)}}`),
      ],
    ])('answers 404 for a model no backend declares, %s', async (_what, headers, body) => {
      const backend = await fake(cleanup, { models: ['fake-model', 'hidden'] })
      const gateway = await start(framework, backend.url, '20000 per minute')
      const answer = await send(gateway.port, { path: '/v1/chat/completions', headers, body })
      expect(answer.status).toBe(404)
      expect(answer.json().error.code).toBe('unknown_model')
      expect(backend.stats.requests).toBe(0)
    })

    it('renames the model (modelNames) in a body sent after a byte order mark', async () => {
      const backend = await fake(cleanup, { models: ['served-name'] })
      const gateway = await start(framework, backend.url, '20000 per minute', { 'fake-model': 'served-name' })
      const body = Buffer.concat([BOM, bytes(chat())])
      const answer = await send(gateway.port, { path: '/v1/chat/completions', headers: JSON_TYPE, body })
      expect(answer.status).toBe(200)
      expect(answer.json().model).toBe('served-name')
      expect(backend.lastRequest!.body.subarray(0, 3)).toEqual(BOM)
    })

    it('refuses a body with a bare NaN it was told is JSON, or reads it; never forwards it unread', async () => {
      const backend = await fake(cleanup, { models: ['fake-model', 'hidden'] })
      const gateway = await start(framework, backend.url, '20000 per minute')
      const body = Buffer.from('{"model":"hidden","temperature":NaN}')
      const answer = await send(gateway.port, { path: '/v1/chat/completions', headers: JSON_TYPE, body })
      // Fastify's own JSON parser refuses it (400); read by the scan it is an unknown model (404).
      expect([400, 404]).toContain(answer.status)
      expect(backend.stats.requests).toBe(0)
    })

    it.each([
      ['UTF-16LE', Buffer.from(JSON.stringify(chat({ max_tokens: 5000 })), 'utf16le')],
      [
        'UTF-16 with a BOM',
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(JSON.stringify(chat()), 'utf16le')]),
      ],
    ])('answers 415 to %s JSON rather than forward what it cannot read', async (_what, body) => {
      const backend = await fake(cleanup)
      const gateway = await start(framework, backend.url, '20000 per minute')
      const answer = await send(gateway.port, { path: '/v1/chat/completions', headers: NO_TYPE, body })
      expect(answer.status).toBe(415)
      expect(answer.json().error.code).toBe('unsupported_json_encoding')
      expect(backend.stats.requests).toBe(0)
    })

    it.each([
      ['max_tokens: "5000"', '{"max_tokens":"5000"}'],
      ['n: 2.5', '{"n":2.5}'],
      ['n_predict: -1', '{"n_predict":-1}'],
      ['max_tokens: NaN', '{"max_tokens":NaN}'],
    ])('answers 400 to %s rather than guess what it costs', async (_what, fields) => {
      const backend = await fake(cleanup)
      const gateway = await start(framework, backend.url, '20000 per minute')
      const body = Buffer.from(`{"model":"fake-model","messages":[],${fields.slice(1)}`)
      const answer = await send(gateway.port, { path: '/v1/chat/completions', headers: NO_TYPE, body })
      expect(answer.status).toBe(400)
      expect(answer.json().error).toMatchObject({
        type: 'invalid_request_error',
        code: 'invalid_token_field',
      })
      expect(backend.stats.requests).toBe(0)
    })
  },
)

describe.each(['Fastify', 'Express'] as const)('a 10 MB nested body on a token route, %s', (framework) => {
  it('does not block the event loop for a parse of the whole body', async () => {
    // A backend that reads nothing of the body, so only the gateway's work is measured.
    const bare = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}')
      })
    })
    const port = await listen(bare)
    cleanup.add(() => new Promise<void>((r) => bare.close(() => r())), null)
    const gateway = await start(framework, `http://127.0.0.1:${port}`, '100000 per minute')
    // Warm: the first forward of a process loads the HTTP client's modules, which is no block of a body.
    expect(
      (await send(gateway.port, { path: '/v1/chat/completions', headers: JSON_TYPE, body: bytes(chat()) }))
        .status,
    ).toBe(200)
    const depth = 4_999_000
    const body = Buffer.from(`{"model":"fake-model","messages":${'['.repeat(depth)}${']'.repeat(depth)}}`)
    let last = performance.now()
    let maxLag = 0
    const timer = setInterval(() => {
      const now = performance.now()
      maxLag = Math.max(maxLag, now - last)
      last = now
    }, 5)
    cleanup.add(() => clearInterval(timer), null)
    const answer = await send(gateway.port, { path: '/v1/chat/completions', headers: JSON_TYPE, body })
    clearInterval(timer)
    expect(answer.status).toBe(200)
    await waitFor(() => gateway.settled.length === 2, 'the settle')
    expect(gateway.settled[1]!.charged).toBe(7)
    // What a whole parse costs on this machine, from a tenth of the body (measured after, so its
    // garbage is not collected during the measurement): the old estimate blocked ten times this.
    const tenth = `${'['.repeat(depth / 10)}${']'.repeat(depth / 10)}`
    const parseStarted = performance.now()
    JSON.parse(tenth)
    const tenthParseMs = performance.now() - parseStarted
    // A behaviour bound, generous: the longest block is well under a parse of the whole body.
    expect(maxLag).toBeLessThan(Math.max(6 * tenthParseMs, 300))
  }, 60_000)
})
