import { randomUUID } from 'node:crypto'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import { apiKeyKey, MAX_CHARGED_TOKENS, type TokenReservation } from '@tollgate/core'
import { Redis } from 'ioredis'
import { afterEach, describe, expect, it } from 'vitest'
import { type Framework, startExpress, startFastify } from './helpers/gateways.js'
import { abortable, Cleanup, chat, closeServer, fake, listen, send, waitFor } from './helpers/http.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const AUTH = { authorization: 'Bearer sk-test-charging' }

interface Gateway {
  port: number
  settled: TokenReservation[]
}

interface Setup {
  backend: string
  maxConcurrency?: number
  /** The route's own limits and tokens. */
  limits?: string
  tokens?: string
  /** Plugin-wide options (`defaultTokens`, `store`). */
  extra?: Record<string, unknown>
  /** A handler instead of the forward: it settles what the body's `spend` says. */
  handler?: boolean
  /** The route's `deductWhen`. */
  deductWhen?: (request: unknown, statusCode: number) => boolean
}

async function start(framework: Framework, setup: Setup): Promise<Gateway> {
  const settled: TokenReservation[] = []
  const options = {
    backends: [{ url: setup.backend, maxConcurrency: setup.maxConcurrency }],
    keyGenerator: apiKeyKey,
    openaiHeaders: true,
    onTokensSettled: (_req: unknown, r: TokenReservation) => {
      settled.push(r)
    },
    ...setup.extra,
  }
  const rateLimit: Record<string, unknown> = {}
  if (setup.limits !== undefined) rateLimit.limits = setup.limits
  if (setup.tokens !== undefined) rateLimit.tokens = setup.tokens
  if (setup.deductWhen !== undefined) rateLimit.deductWhen = setup.deductWhen
  if (framework === 'Fastify') {
    const { port } = await startFastify(cleanup, options as never, (app) => {
      const config = { config: { rateLimit: rateLimit as never } }
      if (setup.handler === true) {
        app.post('/v1/chat/completions', config, (request) => {
          request.rateLimit?.settleTokens?.((request.body as { spend: number }).spend)
          return { ok: true }
        })
      } else app.post('/v1/chat/completions', config, app.tollgate.forward())
    })
    return { port, settled }
  }
  const { port } = await startExpress(cleanup, options as never, (app, gate) => {
    const limit = Object.keys(rateLimit).length > 0 ? [gate.limit(rateLimit as never)] : []
    if (setup.handler === true) {
      app.post('/v1/chat/completions', ...limit, (req, res) => {
        let text = ''
        req.on('data', (chunk: Buffer) => {
          text += chunk.toString()
        })
        req.on('end', () => {
          req.rateLimit?.settleTokens?.(JSON.parse(text).spend)
          res.json({ ok: true })
        })
      })
    } else app.post('/v1/chat/completions', ...limit, gate.forward())
  })
  return { port, settled }
}

function ask(gateway: Gateway, body: Record<string, unknown>) {
  return send(gateway.port, { path: '/v1/chat/completions', headers: AUTH, body })
}

/** `r` of the named window in a `RateLimit` header. */
function remainingIn(header: unknown, policy: string): number {
  const match = new RegExp(`"${policy}";r=(\\d+)`).exec(String(header))
  if (match === null) throw new Error(`no ${policy} in ${String(header)}`)
  return Number(match[1])
}

/** A backend that answers every completion with this JSON text (a usage the test writes). */
async function answering(text: string): Promise<string> {
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(text)
    })
  })
  const port = await listen(server)
  cleanup.add(() => closeServer(server), null)
  return `http://127.0.0.1:${port}`
}

/** Options for a store on the test Redis, under a prefix of this test's own (deleted afterwards). */
function sharedRedis(): Record<string, unknown> {
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
  const keyPrefix = `tollgate-charging-test:${randomUUID()}:`
  cleanup.add(async () => {
    const keys = await redis.keys(`${keyPrefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  }, null)
  return { store: { redis }, keyPrefix }
}

function completion(usage: string): string {
  return `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":${usage}}`
}

describe.each(['Fastify', 'Express'] as const)('what is charged when, through %s', (framework) => {
  it('charges a client that leaves a JSON answer under way its reservation, not 0', async () => {
    const backend = await fake(cleanup, { answerTokens: 300, timePerTokenMs: 5 })
    const gateway = await start(framework, { backend: backend.url, tokens: '10000 per minute' })
    const request = abortable(gateway.port, { headers: AUTH, body: chat({ max_tokens: 300 }) })
    await waitFor(() => backend.stats.tokens >= 10, 'the backend generating')
    request.abort()
    await request.answer
    await waitFor(() => gateway.settled.length === 1, 'the settle')
    const [settled] = gateway.settled
    expect(settled!.source).toBe('reserved')
    expect(settled!.reserved).toBeGreaterThanOrEqual(300)
    expect(settled!.charged).toBe(settled!.reserved)
  })

  it('charges a stream whose client left before its first byte the prompt, not the reservation', async () => {
    const backend = await fake(cleanup, { answerTokens: 300, timeToFirstTokenMs: 5_000 })
    const gateway = await start(framework, { backend: backend.url, tokens: '10000 per minute' })
    const prompt = 'tell me a long story '.repeat(20)
    const body = chat({ stream: true, max_tokens: 300, messages: [{ role: 'user', content: prompt }] })
    const request = abortable(gateway.port, { headers: AUTH, body })
    await waitFor(() => backend.stats.inFlight === 1, 'the backend working on it')
    request.abort()
    await request.answer
    await waitFor(() => gateway.settled.length === 1, 'the settle')
    const [settled] = gateway.settled
    expect(settled!.source).toBe('estimate')
    // The prompt's estimate, none of the 300 tokens it may generate.
    expect(settled!.charged).toBeGreaterThan(0)
    expect(settled!.charged).toBeLessThanOrEqual(settled!.reserved - 300)
  })

  it('still refunds a request whose client left before any backend had it', async () => {
    const backend = await fake(cleanup, { answerTokens: 200, timePerTokenMs: 5 })
    const gateway = await start(framework, {
      backend: backend.url,
      maxConcurrency: 1,
      tokens: '10000 per minute',
    })
    const first = abortable(gateway.port, { headers: AUTH, body: chat({ max_tokens: 200 }) })
    await waitFor(() => backend.stats.tokens >= 1, 'the first answer generating')
    const waiting = abortable(gateway.port, { headers: AUTH, body: chat({ max_tokens: 50 }) })
    await new Promise((resolve) => setTimeout(resolve, 100))
    waiting.abort()
    await waiting.answer
    await waitFor(() => gateway.settled.length === 1, 'the queued request settled')
    expect(gateway.settled[0]!.source).toBe('refund')
    expect(gateway.settled[0]!.charged).toBe(0)
    first.abort()
  })

  describe.each([
    ['its own tokens', { limits: '7 per minute', tokens: '100 per minute' }],
    ['defaultTokens', { limits: '7 per minute', extra: { defaultTokens: '100 per minute' } }],
    ['a handler', { limits: '7 per minute', tokens: '100 per minute', handler: true }],
    ['its own tokens, on Redis', { limits: '7 per minute', tokens: '100 per minute', redis: true }],
    // deductWhen would give a 429 back too: the count is given back once, not twice.
    [
      'deductWhen',
      { limits: '7 per minute', tokens: '100 per minute', deductWhen: (_r: unknown, s: number) => s !== 429 },
    ],
  ] as const)('a token 429 on a route with %s', (_name, setup) => {
    it('is charged to no request window', async () => {
      const backend = await fake(cleanup, { answerTokens: 150 })
      const extra = 'redis' in setup ? sharedRedis() : (setup as Setup).extra
      const gateway = await start(framework, { backend: backend.url, ...setup, extra })
      const first = await ask(gateway, chat({ max_tokens: 150, spend: 400 }))
      expect(first.status).toBe(200)
      expect(remainingIn(first.headers.ratelimit, '7-per-minute')).toBe(6)
      const refused = []
      for (let i = 0; i < 9; i++) refused.push(await ask(gateway, chat({ max_tokens: 150, spend: 400 })))
      expect(refused.map((a) => a.status)).toEqual(Array(9).fill(429))
      expect(refused.map((a) => a.json().error.type)).toEqual(Array(9).fill('tokens'))
      // Each retry was counted while its tokens were checked, and given back when they were refused.
      expect(refused.map((a) => remainingIn(a.headers.ratelimit, '7-per-minute'))).toEqual(Array(9).fill(5))
    })
  })

  it('reserves from the body on a forward route: max_tokens bounds the reservation', async () => {
    const backend = await fake(cleanup, { answerTokens: 90, timeToFirstTokenMs: 400 })
    const gateway = await start(framework, { backend: backend.url, tokens: '300 per minute' })
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => ask(gateway, chat({ max_tokens: 95 }))),
    )
    const admitted = answers.filter((a) => a.status === 200).length
    // 95 or so tokens each: three fit in 300 (a fourth may get the rest); the default estimate (1024) fits once.
    expect(admitted).toBeGreaterThanOrEqual(3)
    expect(admitted).toBeLessThanOrEqual(4)
  })
})

describe.each(['Fastify', 'Express'] as const)(
  'a backend usage that is no count, through %s',
  (framework) => {
    it.each([
      ['a 400-digit prompt_tokens', `{"prompt_tokens":1${'0'.repeat(400)},"completion_tokens":5}`],
      ['a negative count', '{"prompt_tokens":-5,"completion_tokens":5}'],
      ['a fraction', '{"prompt_tokens":2.5,"completion_tokens":5}'],
      ['a string', '{"prompt_tokens":"12","completion_tokens":5}'],
      ['null', '{"prompt_tokens":null,"completion_tokens":5}'],
    ])('charges the reservation for %s', async (_name, usage) => {
      const gateway = await start(framework, {
        backend: await answering(completion(usage)),
        tokens: '10000 per minute',
      })
      expect((await ask(gateway, chat({ max_tokens: 40 }))).status).toBe(200)
      await waitFor(() => gateway.settled.length === 1, 'the settle')
      const [settled] = gateway.settled
      expect(settled!.source).toBe('reserved')
      expect(settled!.charged).toBe(settled!.reserved)
      expect(settled!.charged).toBeGreaterThanOrEqual(40)
    })

    it('reads counts as JSON numbers: "completion_tokens":1e3 is 1000', async () => {
      const gateway = await start(framework, {
        backend: await answering(completion('{"prompt_tokens":7,"completion_tokens":1e3}')),
        tokens: '10000 per minute',
      })
      await ask(gateway, chat({ max_tokens: 40 }))
      await waitFor(() => gateway.settled.length === 1, 'the settle')
      expect(gateway.settled[0]!.source).toBe('usage')
      expect(gateway.settled[0]!.charged).toBe(1007)
    })

    it.each(['memory', 'Redis'] as const)('charges an absurd count the cap, in %s alike', async (where) => {
      const extra = where === 'Redis' ? sharedRedis() : {}
      const gateway = await start(framework, {
        backend: await answering(completion('{"prompt_tokens":1e21,"completion_tokens":5}')),
        tokens: '10000 per minute',
        extra,
      })
      expect((await ask(gateway, chat({ max_tokens: 40 }))).status).toBe(200)
      await waitFor(() => gateway.settled.length === 1, 'the settle')
      expect(gateway.settled[0]!.charged).toBe(MAX_CHARGED_TOKENS)
      const next = await ask(gateway, chat({ max_tokens: 40 }))
      expect(next.status).toBe(429)
      expect(next.json().error.type).toBe('tokens')
    })
  },
)

describe('Express: gate.limit({ tokens }) mounted with app.use in front of gate.forward()', () => {
  it('reserves before the body (it cannot see the route), settles to the usage, and a 429 gives the count back', async () => {
    const backend = await fake(cleanup, { answerTokens: 150 })
    const settled: TokenReservation[] = []
    const { port } = await startExpress(
      cleanup,
      {
        backends: [{ url: backend.url }],
        keyGenerator: apiKeyKey,
        onTokensSettled: (_req: unknown, r: TokenReservation) => {
          settled.push(r)
        },
      } as never,
      (app, gate) => {
        app.use('/v1', gate.limit({ limits: '7 per minute', tokens: '100 per minute' }))
        app.post('/v1/chat/completions', gate.forward())
      },
    )
    const gateway = { port, settled }
    const first = await ask(gateway, chat({ max_tokens: 150 }))
    expect(first.status).toBe(200)
    await waitFor(() => settled.length === 1, 'the settle')
    expect(settled[0]!.source).toBe('usage')
    const retries = []
    for (let i = 0; i < 3; i++) retries.push(await ask(gateway, chat({ max_tokens: 150 })))
    expect(retries.map((a) => a.json().error.type)).toEqual(['tokens', 'tokens', 'tokens'])
    expect(retries.map((a) => remainingIn(a.headers.ratelimit, '7-per-minute'))).toEqual([5, 5, 5])
  })
})
