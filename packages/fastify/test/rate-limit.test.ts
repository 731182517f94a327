import type { AddressInfo } from 'node:net'
import tollgate, { type LimitDecision, type TollgateFastifyOptions } from '@tollgate/fastify'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { afterEach, describe, expect, it, vi } from 'vitest'

const open: FastifyInstance[] = []

afterEach(async () => {
  await Promise.all(open.splice(0).map((app) => app.close()))
})

interface Started {
  app: FastifyInstance
  get(path: string, headers?: Record<string, string>): Promise<Response>
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>
}

/** An app with the plugin and `routes`, listening on a real socket. */
async function start(
  options: TollgateFastifyOptions,
  routes: (app: FastifyInstance) => void,
  serverOptions: FastifyServerOptions = {},
): Promise<Started> {
  const app = Fastify(serverOptions)
  open.push(app)
  await app.register(tollgate, options)
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const base = `http://127.0.0.1:${port}`
  return {
    app,
    // A generous bound so that a hang fails the test instead of the suite.
    get: (path, headers = {}) => fetch(base + path, { headers, signal: AbortSignal.timeout(10_000) }),
    post: (path, body, headers = {}) =>
      fetch(base + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      }),
  }
}

async function statuses(send: () => Promise<Response>, n: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const res = await send()
    await res.arrayBuffer()
    out.push(res.status)
  }
  return out
}

const ok = async () => ({ ok: true })

// biome-ignore lint/suspicious/noExplicitAny: bodies are checked by the assertions, not by types
type Json = any

const json = (res: Response): Promise<Json> => res.json()

describe('multiple windows', () => {
  it('rejects on the first full window and charges no window for the rejected request', async () => {
    const { get } = await start({}, (app) => {
      app.get('/chat', { config: { rateLimit: '3 per minute, 2 per second' } }, async (request) => ({
        windows: request.rateLimit?.windows.map((w) => ({ policy: w.policy, used: w.used })),
      }))
    })
    expect(await statuses(() => get('/chat'), 2)).toEqual([200, 200])

    const rejected = await get('/chat')
    expect(rejected.status).toBe(429)
    expect((await json(rejected)).error.limit).toBe('2 per 1 second')

    // Rejected requests while the second window is full must leave the minute's count at 2.
    let res = await get('/chat')
    for (let tries = 0; res.status === 429 && tries < 50; tries++) {
      expect((await json(res)).error.limit).toBe('2 per 1 second')
      await new Promise((resolve) => setTimeout(resolve, 100))
      res = await get('/chat')
    }
    expect(res.status).toBe(200)
    expect((await json(res)).windows).toEqual([
      { policy: '3-per-minute', used: 3 },
      { policy: '2-per-second', used: 1 },
    ])
    expect(res.headers.get('ratelimit')).toMatch(/^"3-per-minute";r=0;t=\d+$/)

    const exhausted = await get('/chat')
    expect(exhausted.status).toBe(429)
    expect((await json(exhausted)).error.limit).toBe('3 per 1 minute')
    expect(Number(exhausted.headers.get('retry-after'))).toBeGreaterThan(1)
  })

  it('lists every window in RateLimit-Policy', async () => {
    const { get } = await start({ defaultLimits: '200 per day, 50 per hour' }, (app) => {
      app.get('/a', ok)
    })
    const res = await get('/a')
    expect(res.headers.get('ratelimit-policy')).toBe('"200-per-day";q=200;w=86400, "50-per-hour";q=50;w=3600')
    expect(res.headers.get('ratelimit')).toMatch(/^"50-per-hour";r=49;t=(3600|3599)$/)
  })
})

describe('route limits', () => {
  it('gives each route its own counters under the default limits', async () => {
    const { get } = await start({ defaultLimits: '2 per minute' }, (app) => {
      app.get('/a', ok)
      app.get('/b', ok)
    })
    expect(await statuses(() => get('/a'), 3)).toEqual([200, 200, 429])
    expect(await statuses(() => get('/b'), 3)).toEqual([200, 200, 429])
  })

  it('lets an explicit route limit replace the defaults', async () => {
    const { get } = await start({ defaultLimits: '1 per minute' }, (app) => {
      app.get('/b', { config: { rateLimit: '3 per minute' } }, ok)
      app.get('/d', { config: { rateLimit: { limits: '2/minute' } } }, ok)
    })
    const first = await get('/b')
    expect(first.headers.get('ratelimit-policy')).toBe('"3-per-minute";q=3;w=60')
    expect(await statuses(() => get('/b'), 3)).toEqual([200, 200, 429])
    expect(await statuses(() => get('/d'), 3)).toEqual([200, 200, 429])
  })

  it('takes false as no limit and sends no headers', async () => {
    const { get } = await start(
      { defaultLimits: '1 per minute', applicationLimits: '1 per minute' },
      (app) => {
        app.get('/c', { config: { rateLimit: false } }, async (request) => ({ decision: request.rateLimit }))
      },
    )
    for (let i = 0; i < 5; i++) {
      const res = await get('/c')
      expect(res.status).toBe(200)
      expect(await json(res)).toEqual({ decision: null })
      expect(res.headers.get('ratelimit')).toBeNull()
      expect(res.headers.get('ratelimit-policy')).toBeNull()
      expect(res.headers.get('x-ratelimit-limit')).toBeNull()
    }
  })

  it('leaves routes alone when there are no default limits', async () => {
    const { get } = await start({}, (app) => {
      app.get('/free', ok)
    })
    const res = await get('/free')
    expect(res.status).toBe(200)
    expect(res.headers.get('ratelimit')).toBeNull()
  })

  it('counts HEAD requests against the GET route they mirror', async () => {
    const { get, app } = await start({ defaultLimits: '3 per minute' }, (a) => {
      a.get('/g', ok)
    })
    const head = () => app.inject({ method: 'HEAD', url: '/g' })
    expect((await head()).headers.ratelimit).toMatch(/;r=2;/)
    expect((await get('/g')).headers.get('ratelimit')).toMatch(/;r=1;/)
    expect((await head()).headers.ratelimit).toMatch(/;r=0;/)
    expect((await head()).statusCode).toBe(429)
    expect((await get('/g')).status).toBe(429)
  })

  it('shares counters between routes given the same scope', async () => {
    const { get } = await start({}, (app) => {
      app.get('/x', { config: { rateLimit: { limits: '2 per minute', scope: 'models' } } }, ok)
      app.get('/y', { config: { rateLimit: { limits: '2 per minute', scope: 'models' } } }, ok)
    })
    expect(await statuses(() => get('/x'), 1)).toEqual([200])
    expect(await statuses(() => get('/y'), 2)).toEqual([200, 429])
  })
})

describe('keys', () => {
  it('uses a global keyGenerator, and a route keyGenerator over it', async () => {
    const { get } = await start(
      {
        defaultLimits: '2 per minute',
        keyGenerator: (request) => String(request.headers['x-api-key'] ?? 'anonymous'),
      },
      (app) => {
        app.get('/global', async (request) => ({ key: request.rateLimit?.key }))
        app.get(
          '/tenant',
          {
            config: {
              rateLimit: { keyGenerator: (request) => `tenant:${String(request.headers['x-tenant'])}` },
            },
          },
          async (request) => ({ key: request.rateLimit?.key }),
        )
      },
    )
    const alice = { 'x-api-key': 'alice' }
    const bob = { 'x-api-key': 'bob' }
    expect(await json(await get('/global', alice))).toEqual({ key: 'alice' })
    expect(await statuses(() => get('/global', alice), 2)).toEqual([200, 429])
    expect(await statuses(() => get('/global', bob), 2)).toEqual([200, 200])

    // The route's generator ignores the API key: alice and bob share tenant t1.
    expect(await json(await get('/tenant', { ...alice, 'x-tenant': 't1' }))).toEqual({ key: 'tenant:t1' })
    expect(await statuses(() => get('/tenant', { ...bob, 'x-tenant': 't1' }), 2)).toEqual([200, 429])
    expect(await statuses(() => get('/tenant', { ...bob, 'x-tenant': 't2' }), 1)).toEqual([200])
  })

  it('accepts an async keyGenerator', async () => {
    const { get } = await start(
      { defaultLimits: '1 per minute', keyGenerator: async (request) => String(request.headers['x-user']) },
      (app) => {
        app.get('/a', ok)
      },
    )
    expect(await statuses(() => get('/a', { 'x-user': 'u1' }), 2)).toEqual([200, 429])
    expect(await statuses(() => get('/a', { 'x-user': 'u2' }), 1)).toEqual([200])
  })

  it('answers 500, not a hang, when keyGenerator returns no key', async () => {
    const { get } = await start({ defaultLimits: '1 per minute', keyGenerator: () => '' }, (app) => {
      app.get('/a', ok)
    })
    expect((await get('/a')).status).toBe(500)
  })

  it('ignores X-Forwarded-For unless trustProxy is on', async () => {
    const { get } = await start({ defaultLimits: '1 per minute' }, (app) => {
      app.get('/a', async (request) => ({ key: request.rateLimit?.key }))
    })
    const first = await get('/a', { 'x-forwarded-for': '203.0.113.7' })
    expect(await json(first)).toEqual({ key: '127.0.0.1' })
    expect((await get('/a', { 'x-forwarded-for': '198.51.100.1' })).status).toBe(429)
  })

  it('keys on the forwarded client IP when trustProxy is on', async () => {
    const { get } = await start(
      { defaultLimits: '1 per minute' },
      (app) => {
        app.get('/a', async (request) => ({ key: request.rateLimit?.key }))
      },
      { trustProxy: true },
    )
    const first = await get('/a', { 'x-forwarded-for': '203.0.113.7' })
    expect(await json(first)).toEqual({ key: '203.0.113.7' })
    expect((await get('/a', { 'x-forwarded-for': '203.0.113.7' })).status).toBe(429)
    expect((await get('/a', { 'x-forwarded-for': '198.51.100.1' })).status).toBe(200)
  })

  it('groups IPv6 clients by /64 and reads IPv4-mapped addresses as IPv4', async () => {
    const { app } = await start({ defaultLimits: '2 per minute' }, (a) => {
      a.get('/a', async (request) => ({ key: request.rateLimit?.key }))
    })
    const from = (remoteAddress: string) => app.inject({ method: 'GET', url: '/a', remoteAddress })
    const first = await from('2001:db8:1:2::1')
    expect(first.json()).toEqual({ key: '2001:db8:1:2::/64' })
    expect((await from('2001:db8:1:2:ffff:eeee:dddd:9')).statusCode).toBe(200)
    expect((await from('2001:db8:1:2::abcd')).statusCode).toBe(429)
    expect((await from('2001:db8:1:3::1')).statusCode).toBe(200)
    expect((await from('::ffff:192.0.2.5')).json()).toEqual({ key: '192.0.2.5' })
    expect((await from('192.0.2.5')).statusCode).toBe(200)
    expect((await from('::ffff:192.0.2.5')).statusCode).toBe(429)
  })

  it('groups a real IPv6 loopback client by /64', async () => {
    const app = Fastify()
    open.push(app)
    await app.register(tollgate, { defaultLimits: '1 per minute' })
    app.get('/a', async (request) => ({ key: request.rateLimit?.key }))
    try {
      await app.listen({ port: 0, host: '::1' })
    } catch {
      console.warn('IPv6 loopback unavailable; skipping the socket variant of the /64 test')
      return
    }
    const { port } = app.server.address() as AddressInfo
    const res = await fetch(`http://[::1]:${port}/a`, { signal: AbortSignal.timeout(10_000) })
    expect(await json(res)).toEqual({ key: '0:0:0:0::/64' })
  })
})

describe('cost', () => {
  it('charges a fixed cost per request', async () => {
    const { get } = await start({ defaultLimits: '5 per minute', cost: 2 }, (app) => {
      app.get('/a', ok)
    })
    const first = await get('/a')
    expect(first.headers.get('ratelimit')).toMatch(/^"5-per-minute";r=3;/)
    expect(await statuses(() => get('/a'), 2)).toEqual([200, 429])
  })

  it('charges what a cost function returns, per route', async () => {
    const { get } = await start({ defaultLimits: '5 per minute' }, (app) => {
      app.get(
        '/a',
        { config: { rateLimit: { cost: (request) => Number(request.headers['x-cost'] ?? 1) } } },
        ok,
      )
    })
    expect((await get('/a', { 'x-cost': '4' })).headers.get('ratelimit')).toMatch(/;r=1;/)
    const rejected = await get('/a', { 'x-cost': '2' })
    expect(rejected.status).toBe(429)
    expect(rejected.headers.get('ratelimit')).toMatch(/;r=1;/)
    expect((await get('/a', { 'x-cost': '1' })).status).toBe(200)
  })

  it('lets a cost function read the body with hook: preHandler', async () => {
    const { post } = await start({ defaultLimits: '10 per minute', hook: 'preHandler' }, (app) => {
      app.post(
        '/v1/completions',
        { config: { rateLimit: { cost: (request) => (request.body as { max_tokens: number }).max_tokens } } },
        async (request) => ({ remaining: request.rateLimit?.binding.remaining }),
      )
    })
    const first = await post('/v1/completions', { max_tokens: 6 })
    expect(await json(first)).toEqual({ remaining: 4 })
    expect((await post('/v1/completions', { max_tokens: 5 })).status).toBe(429)
    expect((await post('/v1/completions', { max_tokens: 4 })).status).toBe(200)
  })
})

describe('application limits', () => {
  it('counts once across every limited route, on top of the route limits', async () => {
    const { get } = await start(
      { defaultLimits: '10 per minute', applicationLimits: '3 per minute' },
      (app) => {
        app.get('/a', ok)
        app.get('/b', ok)
        app.get('/c', { config: { rateLimit: '1 per minute' } }, ok)
      },
    )
    const first = await get('/a')
    expect(first.headers.get('ratelimit-policy')).toBe('"10-per-minute";q=10;w=60, "3-per-minute";q=3;w=60')
    expect(await statuses(() => get('/b'), 1)).toEqual([200])
    expect(await statuses(() => get('/c'), 2)).toEqual([200, 429])
    const rejected = await get('/b')
    expect(rejected.status).toBe(429)
    expect((await json(rejected)).error.limit).toBe('3 per 1 minute')
  })

  it('applies on their own when there are no default limits', async () => {
    const { get } = await start({ applicationLimits: '2 per minute' }, (app) => {
      app.get('/a', ok)
      app.get('/b', ok)
    })
    expect(await statuses(() => get('/a'), 1)).toEqual([200])
    expect(await statuses(() => get('/b'), 2)).toEqual([200, 429])
  })
})

describe('skip and allowList', () => {
  it('does not count or annotate skipped requests', async () => {
    const { get } = await start(
      { defaultLimits: '1 per minute', skip: (request) => request.headers['x-internal'] === 'yes' },
      (app) => {
        app.get('/a', async (request) => ({ decision: request.rateLimit }))
      },
    )
    for (let i = 0; i < 3; i++) {
      const res = await get('/a', { 'x-internal': 'yes' })
      expect(res.status).toBe(200)
      expect(res.headers.get('ratelimit')).toBeNull()
      expect(await json(res)).toEqual({ decision: null })
    }
    expect(await statuses(() => get('/a'), 2)).toEqual([200, 429])
  })

  it('accepts an async skip per route', async () => {
    const { get } = await start({ defaultLimits: '1 per minute' }, (app) => {
      app.get('/a', { config: { rateLimit: { skip: async () => true } } }, ok)
    })
    expect(await statuses(() => get('/a'), 3)).toEqual([200, 200, 200])
  })

  it('never limits allow-listed clients, by IP or by predicate', async () => {
    const byIp = await start({ defaultLimits: '1 per minute', allowList: ['127.0.0.1'] }, (app) => {
      app.get('/a', ok)
    })
    expect(await statuses(() => byIp.get('/a'), 3)).toEqual([200, 200, 200])
    expect((await byIp.get('/a')).headers.get('ratelimit')).toBeNull()

    const byKey = await start(
      {
        defaultLimits: '1 per minute',
        keyGenerator: (request) => String(request.headers['x-api-key']),
        allowList: (_request, key) => key.startsWith('admin-'),
      },
      (app) => {
        app.get('/a', ok)
      },
    )
    expect(await statuses(() => byKey.get('/a', { 'x-api-key': 'admin-1' }), 3)).toEqual([200, 200, 200])
    expect(await statuses(() => byKey.get('/a', { 'x-api-key': 'user-1' }), 2)).toEqual([200, 429])
  })
})

describe('responses', () => {
  it('sends the IETF headers on allowed and rejected responses, and a JSON 429', async () => {
    const { get } = await start({ defaultLimits: '2 per minute' }, (app) => {
      app.get('/a', ok)
    })
    const allowed = await get('/a')
    expect(allowed.status).toBe(200)
    expect(allowed.headers.get('ratelimit-policy')).toBe('"2-per-minute";q=2;w=60')
    expect(allowed.headers.get('ratelimit')).toMatch(/^"2-per-minute";r=1;t=(60|59)$/)
    expect(allowed.headers.get('retry-after')).toBeNull()
    expect(allowed.headers.get('x-ratelimit-limit')).toBeNull()
    await get('/a')

    const rejected = await get('/a')
    expect(rejected.status).toBe(429)
    expect(rejected.headers.get('content-type')).toMatch(/^application\/json/)
    expect(rejected.headers.get('ratelimit-policy')).toBe('"2-per-minute";q=2;w=60')
    expect(rejected.headers.get('ratelimit')).toMatch(/^"2-per-minute";r=0;t=\d+$/)
    const retryAfter = rejected.headers.get('retry-after')
    expect(retryAfter).toMatch(/^\d+$/)
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1)
    expect(Number(retryAfter)).toBeLessThanOrEqual(60)
    const body: Json = await json(rejected)
    expect(body.error).toMatchObject({
      type: 'rate_limit_exceeded',
      code: 'rate_limit_exceeded',
      limit: '2 per 1 minute',
      retry_after: Number(retryAfter),
    })
    expect(body.error.message).toContain('2 per 1 minute')
  })

  it('sends Retry-After of at least 1 second when the window is about to reset', async () => {
    const { get } = await start({ defaultLimits: '1 per second' }, (app) => {
      app.get('/a', ok)
    })
    await get('/a')
    const rejected = await get('/a')
    expect(rejected.status).toBe(429)
    expect(rejected.headers.get('retry-after')).toBe('1')
    expect((await json(rejected)).error.limit).toBe('1 per 1 second')
  })

  it.each([
    ['legacy', false, true],
    ['both', true, true],
  ] as const)('sends the %s headers', async (mode, ietf, legacy) => {
    const { get } = await start({ defaultLimits: '3 per minute', headers: mode }, (app) => {
      app.get('/a', ok)
    })
    const res = await get('/a')
    expect(res.headers.get('ratelimit') !== null).toBe(ietf)
    expect(res.headers.get('ratelimit-policy') !== null).toBe(ietf)
    if (legacy) {
      expect(res.headers.get('x-ratelimit-limit')).toBe('3')
      expect(res.headers.get('x-ratelimit-remaining')).toBe('2')
      expect(res.headers.get('x-ratelimit-reset')).toMatch(/^(60|59)$/)
    }
    await get('/a')
    await get('/a')
    const rejected = await get('/a')
    expect(rejected.status).toBe(429)
    expect(rejected.headers.get('x-ratelimit-remaining')).toBe('0')
    expect(rejected.headers.get('retry-after')).toMatch(/^\d+$/)
  })

  it('sends no rate-limit headers with headers: false, but still Retry-After on a 429', async () => {
    const { get } = await start({ defaultLimits: '1 per minute', headers: false }, (app) => {
      app.get('/a', ok)
    })
    const allowed = await get('/a')
    const names = [...allowed.headers.keys()]
    expect(names.filter((n) => n.includes('ratelimit'))).toEqual([])
    const rejected = await get('/a')
    expect(rejected.status).toBe(429)
    expect([...rejected.headers.keys()].filter((n) => n.includes('ratelimit'))).toEqual([])
    expect(Number(rejected.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
  })

  it('builds the 429 body with rejectionBody and calls onExceeded first', async () => {
    const exceeded: LimitDecision[] = []
    const { get } = await start(
      {
        defaultLimits: '1 per minute',
        onExceeded: (request, decision) => {
          expect(request.url).toBe('/a')
          exceeded.push(decision)
        },
        rejectionBody: (request, decision) => ({
          message: `slow down on ${request.url}`,
          limit: decision.limit,
          seen: exceeded.length,
        }),
      },
      (app) => {
        app.get('/a', ok)
      },
    )
    await get('/a')
    const rejected = await get('/a')
    expect(rejected.status).toBe(429)
    expect(await json(rejected)).toEqual({ message: 'slow down on /a', limit: '1 per 1 minute', seen: 1 })
    expect(exceeded).toHaveLength(1)
    expect(exceeded[0]).toMatchObject({ allowed: false, key: '127.0.0.1', limit: '1 per 1 minute' })
  })

  it('answers the default 429, not a hang, when rejectionBody throws', async () => {
    const { get } = await start(
      {
        defaultLimits: '1 per minute',
        rejectionBody: () => {
          throw new Error('broken body builder')
        },
      },
      (app) => {
        app.get('/a', ok)
      },
    )
    await get('/a')
    expect((await get('/a')).status).toBe(429)
  })

  it('shows the decision to the handler as request.rateLimit', async () => {
    const { get } = await start({ defaultLimits: '5 per minute' }, (app) => {
      app.get('/a', async (request) => request.rateLimit)
    })
    const decision: Json = await json(await get('/a'))
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

describe('startup', () => {
  async function registerFails(options: unknown): Promise<string> {
    const app = Fastify()
    open.push(app)
    app.register(tollgate, options as TollgateFastifyOptions)
    const error = await app.ready().then(
      () => null,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(Error)
    return (error as Error).message
  }

  it.each([
    [{ defaultLimits: '10 per fortnight' }, '10 per fortnight'],
    [{ defaultLimits: '1 per 0 seconds' }, '1 per 0 seconds'],
    [{ applicationLimits: '5 per minute,' }, '5 per minute,'],
    [{ defaultLimits: 42 }, '42'],
    [{ defaultLimit: '1 per minute' }, 'defaultLimit'],
    [{ headers: 'draft-7' }, 'draft-7'],
    [{ hook: 'onSend' }, 'onSend'],
    [{ cost: -1 }, '-1'],
    [{ keyGenerator: 'ip' }, 'keyGenerator'],
    [{ store: { redis: { host: 'localhost' } } }, 'got an object with keys host'],
    [{ store: { redis: { evalsha() {} }, onError: 'crash' } }, 'crash'],
    [{ allowList: '127.0.0.1' }, '127.0.0.1'],
  ])('rejects %j at ready, quoting the value', async (options, quoted) => {
    expect(await registerFails(options)).toContain(quoted)
  })

  it('rejects bad route notation at ready, naming the route', async () => {
    const app = Fastify()
    open.push(app)
    app.register(async (child) => {
      await child.register(tollgate, {})
      child.get('/bad', { config: { rateLimit: '5 per minute; 1 per 0 hours' } }, ok)
    })
    const error = await app.ready().then(
      () => null,
      (e: unknown) => e as Error,
    )
    expect(error?.message).toContain('5 per minute; 1 per 0 hours')
    expect(error?.message).toContain('/bad')
  })

  it('rejects unknown route options when the route is added', async () => {
    const app = Fastify()
    open.push(app)
    await app.register(tollgate, {})
    expect(() => app.get('/bad', { config: { rateLimit: { limit: '5 per minute' } as never } }, ok)).toThrow(
      /limit/,
    )
  })

  it('accepts Fastify register options alongside its own', async () => {
    const app = Fastify()
    open.push(app)
    await app.register(tollgate, { defaultLimits: '1 per minute', logLevel: 'warn', prefix: '/x' } as never)
    app.get('/a', ok)
    expect((await app.inject('/a')).headers.ratelimit).toMatch(/r=0/)
  })

  it('decorates the instance with app.tollgate and stops its store on close', async () => {
    const app = Fastify()
    await app.register(tollgate, { defaultLimits: '1 per minute' })
    app.get('/a', ok)
    await app.ready()
    expect(app.tollgate.store).toBeDefined()
    const close = vi.spyOn(app.tollgate.store, 'close')
    await app.close()
    expect(close).toHaveBeenCalledOnce()
  })

  it('reaches routes in encapsulated plugins registered after it', async () => {
    const { get } = await start({ defaultLimits: '1 per minute' }, (app) => {
      app.register(
        async (child) => {
          child.get('/inner', ok)
        },
        { prefix: '/v1' },
      )
    })
    expect(await statuses(() => get('/v1/inner'), 2)).toEqual([200, 429])
  })
})
