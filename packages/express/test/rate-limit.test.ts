import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Gate, type LimitDecision, type TollgateExpressOptions, tollgate } from '@tollgate/express'
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'

const servers: Server[] = []
const gates: Gate[] = []

afterEach(async () => {
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        }),
    ),
  )
  await Promise.all(gates.splice(0).map((gate) => gate.close()))
})

function gateWith(options?: TollgateExpressOptions): Gate {
  const gate = tollgate(options)
  gates.push(gate)
  return gate
}

// Errors from the middleware become a JSON 500 rather than Express's HTML page on stderr.
const jsonErrors: ErrorRequestHandler = (error, _req, res, _next) => {
  res.status(500).json({ error: String((error as Error).message) })
}

/** Listens on a real socket; every request goes through it. */
async function serve(build: (app: Express) => void, setup: (app: Express) => void = () => {}) {
  const app = express()
  setup(app)
  build(app)
  app.use(jsonErrors)
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  servers.push(server)
  const { port } = server.address() as AddressInfo
  const agent = request(`http://127.0.0.1:${port}`)
  return {
    get: (path: string, headers: Record<string, string> = {}) => agent.get(path).set(headers).timeout(10_000),
    post: (path: string, body: object) => agent.post(path).send(body).timeout(10_000),
  }
}

type Agent = Awaited<ReturnType<typeof serve>>

async function statuses(agent: Agent, path: string, n: number, headers: Record<string, string> = {}) {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await agent.get(path, headers)).status)
  return out
}

const ok: RequestHandler = (_req, res) => {
  res.json({ ok: true })
}

const showDecision: RequestHandler = (req, res) => {
  res.json({ decision: req.rateLimit ?? null })
}

describe('multiple windows', () => {
  it('rejects on the first full window and charges no window for the rejected request', async () => {
    const gate = gateWith()
    const agent = await serve((app) => {
      app.get('/chat', gate.limit('3 per minute, 2 per second'), (req, res) => {
        res.json({ windows: req.rateLimit?.windows.map((w) => ({ policy: w.policy, used: w.used })) })
      })
    })
    expect(await statuses(agent, '/chat', 2)).toEqual([200, 200])

    const rejected = await agent.get('/chat')
    expect(rejected.status).toBe(429)
    expect(rejected.body.error.limit).toBe('2 per 1 second')

    // Rejected requests while the second window is full must leave the minute's count at 2.
    let res = await agent.get('/chat')
    for (let tries = 0; res.status === 429 && tries < 50; tries++) {
      expect(res.body.error.limit).toBe('2 per 1 second')
      await new Promise((resolve) => setTimeout(resolve, 100))
      res = await agent.get('/chat')
    }
    expect(res.status).toBe(200)
    expect(res.body.windows).toEqual([
      { policy: '3-per-minute', used: 3 },
      { policy: '2-per-second', used: 1 },
    ])
    expect(res.headers.ratelimit).toMatch(/^"3-per-minute";r=0;t=\d+$/)

    const exhausted = await agent.get('/chat')
    expect(exhausted.status).toBe(429)
    expect(exhausted.body.error.limit).toBe('3 per 1 minute')
  })

  it('lists every window in RateLimit-Policy', async () => {
    const gate = gateWith({ defaultLimits: '200 per day, 50 per hour' })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
    })
    const res = await agent.get('/a')
    expect(res.headers['ratelimit-policy']).toBe('"200-per-day";q=200;w=86400, "50-per-hour";q=50;w=3600')
    expect(res.headers.ratelimit).toMatch(/^"50-per-hour";r=49;t=(3600|3599)$/)
  })
})

describe('limit()', () => {
  it('gives each limit() its own counters under the default limits', async () => {
    const gate = gateWith({ defaultLimits: '2 per minute' })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
      app.get('/b', gate.limit(), ok)
    })
    expect(await statuses(agent, '/a', 3)).toEqual([200, 200, 429])
    expect(await statuses(agent, '/b', 3)).toEqual([200, 200, 429])
  })

  it('lets an explicit limit replace the defaults', async () => {
    const gate = gateWith({ defaultLimits: '1 per minute' })
    const agent = await serve((app) => {
      app.get('/b', gate.limit('3 per minute'), ok)
      app.get('/d', gate.limit({ limits: '2/minute' }), ok)
    })
    expect((await agent.get('/b')).headers['ratelimit-policy']).toBe('"3-per-minute";q=3;w=60')
    expect(await statuses(agent, '/b', 3)).toEqual([200, 200, 429])
    expect(await statuses(agent, '/d', 3)).toEqual([200, 200, 429])
  })

  it('shares one scope across every route below app.use(path, limit())', async () => {
    const gate = gateWith()
    const agent = await serve((app) => {
      app.use('/api', gate.limit('3 per minute'))
      app.get('/api/a', ok)
      app.get('/api/b', ok)
      app.get('/health', ok)
    })
    expect(await statuses(agent, '/api/a', 2)).toEqual([200, 200])
    expect(await statuses(agent, '/api/b', 2)).toEqual([200, 429])
    expect(await statuses(agent, '/api/a', 1)).toEqual([429])
    const health = await agent.get('/health')
    expect(health.status).toBe(200)
    expect(health.headers.ratelimit).toBeUndefined()
  })

  it('shares counters between limit() calls given the same scope', async () => {
    const gate = gateWith()
    const agent = await serve((app) => {
      app.get('/x', gate.limit('2 per minute', { scope: 'models' }), ok)
      app.get('/y', gate.limit({ limits: '2 per minute', scope: 'models' }), ok)
    })
    expect(await statuses(agent, '/x', 1)).toEqual([200])
    expect(await statuses(agent, '/y', 2)).toEqual([200, 429])
  })

  it('leaves routes without limit() alone', async () => {
    const gate = gateWith({ defaultLimits: '1 per minute' })
    const agent = await serve((app) => {
      app.get('/limited', gate.limit(), ok)
      app.get('/free', ok)
    })
    expect(await statuses(agent, '/free', 3)).toEqual([200, 200, 200])
    expect((await agent.get('/free')).headers.ratelimit).toBeUndefined()
  })
})

describe('keys', () => {
  it('uses a global keyGenerator, and a limit() keyGenerator over it', async () => {
    const gate = gateWith({
      defaultLimits: '2 per minute',
      keyGenerator: (req) => req.get('x-api-key') ?? 'anonymous',
    })
    const agent = await serve((app) => {
      app.get('/global', gate.limit(), showDecision)
      app.get(
        '/tenant',
        gate.limit(undefined, { keyGenerator: (req) => `tenant:${req.get('x-tenant')}` }),
        ok,
      )
    })
    const alice = { 'x-api-key': 'alice' }
    const bob = { 'x-api-key': 'bob' }
    expect((await agent.get('/global', alice)).body.decision.key).toBe('alice')
    expect(await statuses(agent, '/global', 2, alice)).toEqual([200, 429])
    expect(await statuses(agent, '/global', 2, bob)).toEqual([200, 200])

    // The route's generator ignores the API key: alice and bob share tenant t1.
    expect(await statuses(agent, '/tenant', 1, { ...alice, 'x-tenant': 't1' })).toEqual([200])
    expect(await statuses(agent, '/tenant', 2, { ...bob, 'x-tenant': 't1' })).toEqual([200, 429])
    expect(await statuses(agent, '/tenant', 1, { ...bob, 'x-tenant': 't2' })).toEqual([200])
  })

  it('answers 500 JSON when an async keyGenerator rejects', async () => {
    const gate = gateWith({
      defaultLimits: '1 per minute',
      keyGenerator: async () => {
        throw new Error('key lookup failed')
      },
    })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
    })
    const res = await agent.get('/a')
    expect(res.status).toBe(500)
    expect(res.body.error.code).toBe('rate_limit_check_failed')
  })

  it('ignores X-Forwarded-For unless trust proxy is set', async () => {
    const gate = gateWith({ defaultLimits: '1 per minute' })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), showDecision)
    })
    const first = await agent.get('/a', { 'x-forwarded-for': '203.0.113.7' })
    expect(first.body.decision.key).toBe('127.0.0.1')
    expect((await agent.get('/a', { 'x-forwarded-for': '198.51.100.1' })).status).toBe(429)
  })

  it('keys on the forwarded client IP when trust proxy is set', async () => {
    const gate = gateWith({ defaultLimits: '1 per minute' })
    const agent = await serve(
      (app) => {
        app.get('/a', gate.limit(), showDecision)
      },
      (app) => app.set('trust proxy', 'loopback'),
    )
    const first = await agent.get('/a', { 'x-forwarded-for': '203.0.113.7' })
    expect(first.body.decision.key).toBe('203.0.113.7')
    expect((await agent.get('/a', { 'x-forwarded-for': '203.0.113.7' })).status).toBe(429)
    expect((await agent.get('/a', { 'x-forwarded-for': '198.51.100.1' })).status).toBe(200)
  })

  it('groups IPv6 clients by /64 and reads IPv4-mapped addresses as IPv4', async () => {
    const gate = gateWith({ defaultLimits: '2 per minute' })
    const agent = await serve(
      (app) => {
        app.get('/a', gate.limit(), showDecision)
      },
      (app) => app.set('trust proxy', true),
    )
    const from = (ip: string) => agent.get('/a', { 'x-forwarded-for': ip })
    const first = await from('2001:db8:1:2::1')
    expect(first.body.decision.key).toBe('2001:db8:1:2::/64')
    expect((await from('2001:db8:1:2:ffff:eeee:dddd:9')).status).toBe(200)
    expect((await from('2001:DB8:1:2::abcd')).status).toBe(429)
    expect((await from('2001:db8:1:3::1')).status).toBe(200)
    expect((await from('::ffff:192.0.2.5')).body.decision.key).toBe('192.0.2.5')
    expect((await from('192.0.2.5')).status).toBe(200)
    expect((await from('::ffff:192.0.2.5')).status).toBe(429)
  })

  it('groups a real IPv6 loopback client by /64', async () => {
    const gate = gateWith({ defaultLimits: '1 per minute' })
    const app = express()
    app.get('/a', gate.limit(), showDecision)
    const server = await new Promise<Server | null>((resolve) => {
      const s = app.listen(0, '::1', () => resolve(s))
      s.once('error', () => resolve(null))
    })
    if (server === null) {
      console.warn('IPv6 loopback unavailable; skipping the socket variant of the /64 test')
      return
    }
    servers.push(server)
    const { port } = server.address() as AddressInfo
    const res = await request(`http://[::1]:${port}`).get('/a').timeout(10_000)
    expect(res.body.decision.key).toBe('0:0:0:0::/64')
  })
})

describe('cost', () => {
  it('charges a fixed cost per request', async () => {
    const gate = gateWith({ defaultLimits: '5 per minute', cost: 2 })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
    })
    expect((await agent.get('/a')).headers.ratelimit).toMatch(/^"5-per-minute";r=3;/)
    expect(await statuses(agent, '/a', 2)).toEqual([200, 429])
  })

  it('charges what a cost function returns, reading the parsed body', async () => {
    const gate = gateWith()
    const agent = await serve((app) => {
      app.post(
        '/v1/completions',
        express.json(),
        gate.limit('10 per minute', { cost: (req) => (req.body as { max_tokens: number }).max_tokens }),
        (req, res) => {
          res.json({ remaining: req.rateLimit?.binding.remaining })
        },
      )
    })
    expect((await agent.post('/v1/completions', { max_tokens: 6 })).body).toEqual({ remaining: 4 })
    const rejected = await agent.post('/v1/completions', { max_tokens: 5 })
    expect(rejected.status).toBe(429)
    expect(rejected.headers.ratelimit).toMatch(/;r=4;/)
    expect((await agent.post('/v1/completions', { max_tokens: 4 })).status).toBe(200)
  })

  it('answers 500 when a cost function returns a bad cost', async () => {
    const gate = gateWith({ defaultLimits: '5 per minute', cost: () => Number.NaN })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
    })
    const res = await agent.get('/a')
    expect(res.status).toBe(500)
    expect(res.body.error.code).toBe('rate_limit_check_failed')
  })
})

describe('application limits', () => {
  it('counts once across every limit(), on top of their own limits', async () => {
    const gate = gateWith({ defaultLimits: '10 per minute', applicationLimits: '3 per minute' })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
      app.get('/b', gate.limit(), ok)
      app.get('/c', gate.limit('1 per minute'), ok)
    })
    expect((await agent.get('/a')).headers['ratelimit-policy']).toBe(
      '"10-per-minute";q=10;w=60, "3-per-minute";q=3;w=60',
    )
    expect(await statuses(agent, '/b', 1)).toEqual([200])
    expect(await statuses(agent, '/c', 2)).toEqual([200, 429])
    const rejected = await agent.get('/b')
    expect(rejected.status).toBe(429)
    expect(rejected.body.error.limit).toBe('3 per 1 minute')
  })

  it('lets limit() without defaults use the application limits alone', async () => {
    const gate = gateWith({ applicationLimits: '2 per minute' })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
      app.get('/b', gate.limit(), ok)
    })
    expect(await statuses(agent, '/a', 1)).toEqual([200])
    expect(await statuses(agent, '/b', 2)).toEqual([200, 429])
  })
})

describe('skip and allowList', () => {
  it('does not count or annotate skipped requests', async () => {
    const gate = gateWith({ defaultLimits: '1 per minute', skip: (req) => req.get('x-internal') === 'yes' })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), showDecision)
    })
    for (let i = 0; i < 3; i++) {
      const res = await agent.get('/a', { 'x-internal': 'yes' })
      expect(res.status).toBe(200)
      expect(res.headers.ratelimit).toBeUndefined()
      expect(res.body).toEqual({ decision: null })
    }
    expect(await statuses(agent, '/a', 2)).toEqual([200, 429])
  })

  it('accepts an async skip per limit()', async () => {
    const gate = gateWith({ defaultLimits: '1 per minute' })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(undefined, { skip: async () => true }), ok)
    })
    expect(await statuses(agent, '/a', 3)).toEqual([200, 200, 200])
  })

  it('never limits allow-listed clients, by IP or by predicate', async () => {
    const byIp = gateWith({ defaultLimits: '1 per minute', allowList: ['127.0.0.1'] })
    const byKey = gateWith({
      defaultLimits: '1 per minute',
      keyGenerator: (req) => req.get('x-api-key') ?? 'anonymous',
      allowList: (_req, key) => key.startsWith('admin-'),
    })
    const agent = await serve((app) => {
      app.get('/ip', byIp.limit(), ok)
      app.get('/key', byKey.limit(), ok)
    })
    expect(await statuses(agent, '/ip', 3)).toEqual([200, 200, 200])
    expect((await agent.get('/ip')).headers.ratelimit).toBeUndefined()
    expect(await statuses(agent, '/key', 3, { 'x-api-key': 'admin-1' })).toEqual([200, 200, 200])
    expect(await statuses(agent, '/key', 2, { 'x-api-key': 'user-1' })).toEqual([200, 429])
  })
})

describe('responses', () => {
  it('sends the IETF headers on allowed and rejected responses, and a JSON 429', async () => {
    const gate = gateWith({ defaultLimits: '2 per minute' })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
    })
    const allowed = await agent.get('/a')
    expect(allowed.status).toBe(200)
    expect(allowed.headers['ratelimit-policy']).toBe('"2-per-minute";q=2;w=60')
    expect(allowed.headers.ratelimit).toMatch(/^"2-per-minute";r=1;t=(60|59)$/)
    expect(allowed.headers['retry-after']).toBeUndefined()
    expect(allowed.headers['x-ratelimit-limit']).toBeUndefined()
    await agent.get('/a')

    const rejected = await agent.get('/a')
    expect(rejected.status).toBe(429)
    expect(rejected.headers['content-type']).toMatch(/^application\/json/)
    expect(rejected.headers['ratelimit-policy']).toBe('"2-per-minute";q=2;w=60')
    expect(rejected.headers.ratelimit).toMatch(/^"2-per-minute";r=0;t=\d+$/)
    const retryAfter = rejected.headers['retry-after']
    expect(retryAfter).toMatch(/^\d+$/)
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1)
    expect(Number(retryAfter)).toBeLessThanOrEqual(60)
    expect(rejected.body.error).toMatchObject({
      type: 'rate_limit_exceeded',
      code: 'rate_limit_exceeded',
      limit: '2 per 1 minute',
      retry_after: Number(retryAfter),
    })
    expect(rejected.body.error.message).toContain('2 per 1 minute')
  })

  it('sends Retry-After of at least 1 second when the window is about to reset', async () => {
    const gate = gateWith({ defaultLimits: '1 per second' })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
    })
    await agent.get('/a')
    const rejected = await agent.get('/a')
    expect(rejected.status).toBe(429)
    expect(rejected.headers['retry-after']).toBe('1')
    expect(rejected.body.error.limit).toBe('1 per 1 second')
  })

  it.each([
    ['legacy', false],
    ['both', true],
  ] as const)('sends the %s headers', async (mode, ietf) => {
    const gate = gateWith({ defaultLimits: '3 per minute', headers: mode })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
    })
    const res = await agent.get('/a')
    expect(res.headers.ratelimit !== undefined).toBe(ietf)
    expect(res.headers['ratelimit-policy'] !== undefined).toBe(ietf)
    expect(res.headers['x-ratelimit-limit']).toBe('3')
    expect(res.headers['x-ratelimit-remaining']).toBe('2')
    expect(res.headers['x-ratelimit-reset']).toMatch(/^(60|59)$/)
    await statuses(agent, '/a', 2)
    const rejected = await agent.get('/a')
    expect(rejected.status).toBe(429)
    expect(rejected.headers['x-ratelimit-remaining']).toBe('0')
    expect(rejected.headers['retry-after']).toMatch(/^\d+$/)
  })

  it('sends no rate-limit headers with headers: false, but still Retry-After on a 429', async () => {
    const gate = gateWith({ defaultLimits: '1 per minute', headers: false })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
    })
    const allowed = await agent.get('/a')
    expect(Object.keys(allowed.headers).filter((n) => n.includes('ratelimit'))).toEqual([])
    const rejected = await agent.get('/a')
    expect(rejected.status).toBe(429)
    expect(Object.keys(rejected.headers).filter((n) => n.includes('ratelimit'))).toEqual([])
    expect(Number(rejected.headers['retry-after'])).toBeGreaterThanOrEqual(1)
  })

  it('builds the 429 body with rejectionBody and calls onExceeded first', async () => {
    const exceeded: LimitDecision[] = []
    const gate = gateWith({
      defaultLimits: '1 per minute',
      onExceeded: (req, decision) => {
        expect(req.path).toBe('/a')
        exceeded.push(decision)
      },
      rejectionBody: (req, decision) => ({
        message: `slow down on ${req.path}`,
        limit: decision.limit,
        seen: exceeded.length,
      }),
    })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
    })
    await agent.get('/a')
    const rejected = await agent.get('/a')
    expect(rejected.status).toBe(429)
    expect(rejected.body).toEqual({ message: 'slow down on /a', limit: '1 per 1 minute', seen: 1 })
    expect(exceeded).toHaveLength(1)
    expect(exceeded[0]).toMatchObject({ allowed: false, key: '127.0.0.1', limit: '1 per 1 minute' })
  })

  it('answers the default 429, not a hang, when rejectionBody throws', async () => {
    const gate = gateWith({
      defaultLimits: '1 per minute',
      rejectionBody: () => {
        throw new Error('broken body builder')
      },
    })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), ok)
    })
    await agent.get('/a')
    const res = await agent.get('/a')
    expect(res.status).toBe(429)
    expect(res.body.error.code).toBe('rate_limit_exceeded')
  })

  it('shows the decision to the handler as req.rateLimit', async () => {
    const gate = gateWith({ defaultLimits: '5 per minute' })
    const agent = await serve((app) => {
      app.get('/a', gate.limit(), showDecision)
    })
    const { decision } = (await agent.get('/a')).body
    expect(decision).toMatchObject({
      allowed: true,
      key: '127.0.0.1',
      retryAfter: 0,
      limit: '5 per 1 minute',
      binding: { policy: '5-per-minute', used: 1, remaining: 4 },
    })
    expect(decision.windows).toHaveLength(1)
  })
})

describe('configuration errors', () => {
  it.each([
    [{ defaultLimits: '10 per fortnight' }, '10 per fortnight'],
    [{ defaultLimits: '1 per 0 seconds' }, '1 per 0 seconds'],
    [{ applicationLimits: '5 per minute,' }, '5 per minute,'],
    [{ defaultLimit: '1 per minute' }, 'defaultLimit'],
    [{ headers: 'draft-7' }, 'draft-7'],
    [{ cost: 1.5 }, '1.5'],
    [{ skip: true }, 'skip'],
    [{ keyPrefix: 'a{b}' }, 'a{b}'],
    [{ store: 'redis' }, 'redis'],
    [{ store: { redis: {}, timeoutMs: -5 } }, 'store.redis'],
  ])('tollgate(%j) throws, quoting the value', (options, quoted) => {
    expect(() => tollgate(options as TollgateExpressOptions)).toThrow(quoted)
  })

  it('limit() rejects bad notation and options, quoting them', () => {
    const gate = gateWith({ defaultLimits: '1 per minute' })
    expect(() => gate.limit('5 per minute; 1 per 0 hours')).toThrow('5 per minute; 1 per 0 hours')
    expect(() => gate.limit('ten per minute')).toThrow('ten per minute')
    expect(() => gate.limit(undefined, { cost: -1 })).toThrow('-1')
    expect(() => gate.limit({ limits: '1/minute', limit: 3 } as never)).toThrow('limit')
    expect(() => gate.limit(false as never)).toThrow(/false/)
  })

  it('limit() without default limits says what to write', () => {
    const gate = gateWith()
    expect(() => gate.limit()).toThrow(/gate\.limit\('10 per minute'\).*defaultLimits/)
    expect(() => gate.limit({ cost: 2 })).toThrow(/defaultLimits/)
  })

  it('close() can be called twice', async () => {
    const gate = tollgate({ defaultLimits: '1 per minute' })
    gate.limit()
    await gate.close()
    await gate.close()
  })
})
