import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { TokenReservation, TokenSpec } from '@tollgate/core'
import { apiKeyKey } from '@tollgate/core'
import { Redis } from 'ioredis'
import OpenAI from 'openai'
import { afterEach, describe, expect, it } from 'vitest'
import { type Framework, recordingLogger, startExpress, startFastify } from './helpers/gateways.js'
import { Cleanup, chat, fake, listen, openStream, send, waitFor } from './helpers/http.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const AUTH = { authorization: 'Bearer sk-test-secret' }

interface Gateway {
  port: number
  settled: TokenReservation[]
}

interface GatewaySetup {
  backends: { url: string }[]
  tokens: TokenSpec<unknown>
  extra?: Record<string, unknown>
}

async function start(framework: Framework, setup: GatewaySetup): Promise<Gateway> {
  const settled: TokenReservation[] = []
  const options = {
    backends: setup.backends,
    keyGenerator: apiKeyKey,
    openaiHeaders: true,
    onTokensSettled: (_req: unknown, r: TokenReservation) => {
      settled.push(r)
    },
    ...setup.extra,
  }
  if (framework === 'Fastify') {
    const { port } = await startFastify(cleanup, options as never, (app) => {
      app.post(
        '/v1/chat/completions',
        { config: { rateLimit: { tokens: setup.tokens as never } } },
        app.tollgate.forward(),
      )
    })
    return { port, settled }
  }
  const { port } = await startExpress(cleanup, options as never, (app, gate) => {
    app.post('/v1/chat/completions', gate.limit({ tokens: setup.tokens as never }), gate.forward())
  })
  return { port, settled }
}

async function settledCount(gateway: Gateway, n: number): Promise<TokenReservation[]> {
  await waitFor(() => gateway.settled.length >= n, `${n} settled reservations`)
  return gateway.settled
}

function events(text: string): string[] {
  return text.split('\n\n').filter((e) => e.trim() !== '')
}

describe.each(['Fastify', 'Express'] as const)('token budgets through %s', (framework) => {
  it('charges a JSON answer its usage and says so in the headers', async () => {
    const backend = await fake(cleanup, { answerTokens: 12 })
    const gateway = await start(framework, { backends: [{ url: backend.url }], tokens: '10000 per minute' })
    const answer = await send(gateway.port, {
      path: '/v1/chat/completions',
      headers: AUTH,
      body: chat({ max_tokens: 50 }),
    })
    expect(answer.status).toBe(200)
    const usage = answer.json().usage
    const [settled] = await settledCount(gateway, 1)
    expect(settled!.source).toBe('usage')
    expect(settled!.charged).toBe(usage.prompt_tokens + usage.completion_tokens)
    expect(answer.headers['ratelimit-policy']).toContain('"tokens-10000-per-minute";q=10000;qu="tokens";w=60')
    expect(answer.headers['x-ratelimit-limit-tokens']).toBe('10000')
    expect(answer.headers['x-ratelimit-reset-tokens']).toMatch(/^\d+(ms|s|m\d+s)$/)
    // The next request sees what the first was really charged, minus its own reservation.
    const next = await send(gateway.port, {
      path: '/v1/chat/completions',
      headers: AUTH,
      body: chat({ max_tokens: 50 }),
    })
    expect(Number(next.headers['x-ratelimit-remaining-tokens'])).toBeLessThan(10000 - settled!.charged!)
  })

  it('asks a stream for its usage, charges it, and hides the usage chunk the client did not ask for', async () => {
    const backend = await fake(cleanup, { answerTokens: 9 })
    const gateway = await start(framework, { backends: [{ url: backend.url }], tokens: '10000 per minute' })
    const answer = await send(gateway.port, {
      path: '/v1/chat/completions',
      headers: AUTH,
      body: chat({ stream: true }),
    })
    expect(answer.status).toBe(200)
    const text = answer.text()
    expect(text).not.toContain('"usage"')
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true)
    const [settled] = await settledCount(gateway, 1)
    expect(settled!.source).toBe('usage')
    expect(settled!.charged).toBe(backend.stats.promptTokens + backend.stats.tokens)
  })

  it('passes the usage chunk on when the client asked for it', async () => {
    const backend = await fake(cleanup, { answerTokens: 9 })
    const gateway = await start(framework, { backends: [{ url: backend.url }], tokens: '10000 per minute' })
    const answer = await send(gateway.port, {
      path: '/v1/chat/completions',
      headers: AUTH,
      body: chat({ stream: true, stream_options: { include_usage: true } }),
    })
    const usageEvent = events(answer.text()).find((e) => e.includes('"usage":{'))
    expect(usageEvent).toBeDefined()
    const usage = JSON.parse(usageEvent!.slice('data: '.length)).usage
    const [settled] = await settledCount(gateway, 1)
    expect(settled!.charged).toBe(usage.prompt_tokens + usage.completion_tokens)
  })

  it('charges a client that goes away mid-stream for what was generated until then', async () => {
    const backend = await fake(cleanup, { answerTokens: 400, timePerTokenMs: 20 })
    const gateway = await start(framework, { backends: [{ url: backend.url }], tokens: '10000 per minute' })
    const stream = await openStream(gateway.port, {
      headers: AUTH,
      body: chat({ stream: true, max_tokens: 400 }),
    })
    let seen = 0
    while (seen < 6) {
      const event = await stream.nextEvent()
      if (event?.includes('"content":"') && !event.includes('"content":""')) seen++
    }
    stream.abort()
    const [settled] = await settledCount(gateway, 1)
    expect(settled!.source).toBe('estimate')
    expect(settled!.charged).toBeGreaterThanOrEqual(seen)
    // Far below the 400-token answer it asked for (and was reserved for).
    expect(settled!.charged).toBeLessThan(200)
    expect(settled!.reserved).toBeGreaterThan(400)
  })

  it('charges a failed-over request once, for the attempt that answered', async () => {
    const failing = await fake(cleanup, { failureMode: 'error-503', name: 'failing' })
    const backend = await fake(cleanup, { answerTokens: 7, name: 'good' })
    const gateway = await start(framework, {
      backends: [{ url: failing.url }, { url: backend.url }],
      tokens: '10000 per minute',
      extra: { strategy: 'round-robin' },
    })
    for (let i = 0; i < 2; i++) {
      const answer = await send(gateway.port, { path: '/v1/chat/completions', headers: AUTH, body: chat() })
      expect(answer.status).toBe(200)
      expect(answer.headers['x-backend']).toBe('good')
    }
    const settled = await settledCount(gateway, 2)
    for (const s of settled) {
      expect(s.source).toBe('usage')
      expect(s.charged).toBe(backend.stats.promptTokens / 2 + 7)
    }
  })

  it('refunds a request no backend answered', async () => {
    const failing = await fake(cleanup, { failureMode: 'error-503' })
    const gateway = await start(framework, { backends: [{ url: failing.url }], tokens: '10000 per minute' })
    const answer = await send(gateway.port, { path: '/v1/chat/completions', headers: AUTH, body: chat() })
    expect(answer.status).toBe(503)
    const [settled] = await settledCount(gateway, 1)
    expect(settled!.charged).toBe(0)
    expect(settled!.source).toBe('refund')
  })

  it('counts the streamed text of a backend that reports no usage, and says so', async () => {
    const words = ['alpha ', 'beta ', 'gamma ', 'delta ']
    const bare = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        for (const word of words) {
          res.write(
            `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: word }, finish_reason: null }] })}\n\n`,
          )
        }
        res.write(
          `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`,
        )
        res.end('data: [DONE]\n\n')
      })
    })
    const port = await listen(bare)
    cleanup.add(() => new Promise<void>((r) => bare.close(() => r())), null)
    const gateway = await start(framework, {
      backends: [{ url: `http://127.0.0.1:${port}` }],
      tokens: '10000 per minute',
    })
    const answer = await send(gateway.port, {
      path: '/v1/chat/completions',
      headers: AUTH,
      body: chat({ stream: true }),
    })
    expect(answer.status).toBe(200)
    const [settled] = await settledCount(gateway, 1)
    expect(settled!.source).toBe('estimate')
    // The prompt 'user' + 'hi' (the role is in the prompt too) is two tokens at 4 characters a
    // token; the answer is its characters at 4 a token, or its number of content events if more.
    const streamed = Math.max(words.length, Math.ceil(words.join('').length / 4))
    expect(settled!.charged).toBe(2 + streamed)
  })

  it('never refuses a first request for a default estimate above the budget, then answers 429 naming the budget until a window is unused', async () => {
    const backend = await fake(cleanup, { answerTokens: 60 })
    const gateway = await start(framework, { backends: [{ url: backend.url }], tokens: '100 per minute' })
    const first = await send(gateway.port, { path: '/v1/chat/completions', headers: AUTH, body: chat() })
    expect(first.status).toBe(200)
    const [settled] = await settledCount(gateway, 1)
    // Another such request could cost its whole estimate again: it waits for an unused window.
    const second = await send(gateway.port, { path: '/v1/chat/completions', headers: AUTH, body: chat() })
    expect(second.status).toBe(429)
    expect(second.json().error.policy).toBe('tokens-100-per-minute')
    expect(second.json().error.message).toContain('100 per minute')
    expect(Number(second.headers['retry-after'])).toBeGreaterThan(0)
    expect(second.headers['x-ratelimit-remaining-tokens']).toBe(String(100 - settled!.charged!))
  })

  it('keeps 50 concurrent requests within the budget plus one request', async () => {
    const backend = await fake(cleanup, { answerTokens: 20 })
    const gateway = await start(framework, { backends: [{ url: backend.url }], tokens: '400 per minute' })
    const answers = await Promise.all(
      Array.from({ length: 50 }, () =>
        send(gateway.port, { path: '/v1/chat/completions', headers: AUTH, body: chat({ max_tokens: 20 }) }),
      ),
    )
    const ok = answers.filter((a) => a.status === 200)
    expect(answers.every((a) => a.status === 200 || a.status === 429)).toBe(true)
    const perRequest = ok[0]!.json().usage.total_tokens as number
    const spent = backend.stats.promptTokens + backend.stats.tokens
    expect(spent).toBeLessThanOrEqual(400 + perRequest)
    expect(spent).toBeGreaterThan(400 - perRequest)
  })

  it('answers 500, once logged, for a tokens function giving a string that does not parse', async () => {
    const backend = await fake(cleanup)
    const { logger, warnings } = recordingLogger()
    const gateway = await start(framework, {
      backends: [{ url: backend.url }],
      tokens: (req: unknown) =>
        (req as { headers: Record<string, string> }).headers['x-plan'] === 'gold'
          ? '1000 per minute'
          : 'lots per day',
      extra: { logger },
    })
    const gold = await send(gateway.port, {
      path: '/v1/chat/completions',
      headers: { ...AUTH, 'x-plan': 'gold' },
      body: chat(),
    })
    expect(gold.status).toBe(200)
    expect(gold.headers['x-ratelimit-limit-tokens']).toBe('1000')
    for (let i = 0; i < 2; i++) {
      const bad = await send(gateway.port, { path: '/v1/chat/completions', headers: AUTH, body: chat() })
      expect(bad.status).toBe(500)
    }
    expect(warnings.filter((w) => w.includes('lots per day'))).toHaveLength(1)
    expect(backend.stats.completed).toBe(1)
  })

  it('works with the official openai client, streaming and not', async () => {
    const backend = await fake(cleanup, { answerTokens: 5 })
    const gateway = await start(framework, { backends: [{ url: backend.url }], tokens: '10000 per minute' })
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${gateway.port}/v1`,
      apiKey: 'sk-client',
      maxRetries: 0,
    })
    const completion = await client.chat.completions.create({
      model: 'fake-model',
      messages: [{ role: 'user', content: 'hi' }],
    })
    expect(completion.usage?.completion_tokens).toBe(5)
    const stream = await client.chat.completions.create({
      model: 'fake-model',
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    })
    let text = ''
    for await (const chunk of stream) {
      expect(chunk.usage ?? undefined).toBeUndefined()
      text += chunk.choices[0]?.delta?.content ?? ''
    }
    expect(text.length).toBeGreaterThan(0)
    const settled = await settledCount(gateway, 2)
    expect(settled.map((s) => s.source)).toEqual(['usage', 'usage'])
  })
})

describe.each(['Fastify', 'Express'] as const)('token budgets on one Redis through %s', (framework) => {
  it('two gateway instances enforce one budget', async () => {
    const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    cleanup.add(() => redis.quit(), null)
    await redis.ping()
    const keyPrefix = `tollgate-tokens-test:${randomUUID()}:`
    const backend = await fake(cleanup, { answerTokens: 30 })
    const setup = {
      backends: [{ url: backend.url }],
      tokens: '100 per minute',
      extra: { store: { redis }, keyPrefix },
    }
    const one = await start(framework, setup)
    const two = await start(framework, setup)
    const body = chat({ max_tokens: 20 })
    const first = await send(one.port, { path: '/v1/chat/completions', headers: AUTH, body })
    expect(first.status).toBe(200)
    const charged = (await settledCount(one, 1))[0]!.charged!
    const second = await send(two.port, { path: '/v1/chat/completions', headers: AUTH, body })
    expect(second.status).toBe(200)
    // The second instance saw what the first was charged, and reserved its own estimate.
    const reserved = (await settledCount(two, 1))[0]!.reserved
    expect(second.headers['x-ratelimit-remaining-tokens']).toBe(String(100 - charged - reserved))
    const statuses: number[] = []
    for (let i = 0; i < 8 && !statuses.includes(429); i++) {
      const answer = await send((i % 2 === 0 ? one : two).port, {
        path: '/v1/chat/completions',
        headers: AUTH,
        body,
      })
      statuses.push(answer.status)
      if (answer.status === 200) await settledCount(i % 2 === 0 ? one : two, Math.floor(i / 2) + 2)
    }
    expect(statuses).toContain(429)
    const spent = [...one.settled, ...two.settled].reduce((sum, r) => sum + r.charged!, 0)
    expect(spent).toBeLessThanOrEqual(100)
    const keys = await redis.keys(`${keyPrefix}*`)
    expect(keys.length).toBeGreaterThan(0)
    for (const key of keys) expect(key).not.toContain('sk-test-secret')
    await redis.del(...keys)
  })
})

describe.each(['Fastify', 'Express'] as const)(
  'token budgets of a route that is not forwarded, %s',
  (framework) => {
    it('charges what the handler settles, and keeps the reservation when it settles nothing', async () => {
      const settled: TokenReservation[] = []
      const options = {
        keyGenerator: apiKeyKey,
        onTokensSettled: (_req: unknown, r: TokenReservation) => {
          settled.push(r)
        },
        defaultMaxTokens: 40,
      }
      let port: number
      if (framework === 'Fastify') {
        ;({ port } = await startFastify(cleanup, options, (app) => {
          const config = { config: { rateLimit: { tokens: '1000 per minute' } } }
          app.get('/work', config, async (request) => {
            request.rateLimit?.settleTokens?.(30)
            return { ok: true }
          })
          app.get('/idle', config, async () => ({ ok: true }))
        }))
      } else {
        ;({ port } = await startExpress(cleanup, options, (app, gate) => {
          app.get('/work', gate.limit({ tokens: '1000 per minute' }), (req, res) => {
            req.rateLimit?.settleTokens?.(30)
            res.json({ ok: true })
          })
          app.get('/idle', gate.limit({ tokens: '1000 per minute' }), (_req, res) => {
            res.json({ ok: true })
          })
        }))
      }
      expect((await send(port, { path: '/work', headers: AUTH })).status).toBe(200)
      expect((await send(port, { path: '/idle', headers: AUTH })).status).toBe(200)
      await waitFor(() => settled.length === 2, 'two settled reservations')
      const bySource = Object.fromEntries(settled.map((s) => [s.source, s.charged]))
      expect(bySource).toEqual({ settled: 30, reserved: 40 })
    })
  },
)

describe.each(['Fastify', 'Express'] as const)('request limits chosen per request, %s', (framework) => {
  it('applies the string the function gives, and answers 500 for one that does not parse', async () => {
    const { logger, warnings } = recordingLogger()
    const plans: Record<string, string> = { gold: '3 per minute', free: '1 per minute', broken: 'often' }
    const limits = (req: unknown) =>
      plans[String((req as { headers: Record<string, string> }).headers['x-plan'])] ?? false
    const options = { keyGenerator: apiKeyKey, logger }
    let port: number
    if (framework === 'Fastify') {
      ;({ port } = await startFastify(cleanup, options, (app) => {
        app.get('/a', { config: { rateLimit: { limits } } }, async () => ({ ok: true }))
      }))
    } else {
      ;({ port } = await startExpress(cleanup, options, (app, gate) => {
        app.get('/a', gate.limit({ limits }), (_req, res) => {
          res.json({ ok: true })
        })
      }))
    }
    const get = async (plan: string, key: string) =>
      (await send(port, { path: '/a', headers: { authorization: `Bearer ${key}`, 'x-plan': plan } })).status
    expect([await get('free', 'f'), await get('free', 'f')]).toEqual([200, 429])
    expect([
      await get('gold', 'g'),
      await get('gold', 'g'),
      await get('gold', 'g'),
      await get('gold', 'g'),
    ]).toEqual([200, 200, 200, 429])
    expect([await get('broken', 'b'), await get('broken', 'b')]).toEqual([500, 500])
    expect(warnings.filter((w) => w.includes('often'))).toHaveLength(1)
    // No plan: the function says false, so no request limit applies.
    expect([await get('none', 'n'), await get('none', 'n')]).toEqual([200, 200])
  })
})
