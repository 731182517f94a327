import http from 'node:http'
import { type ExpressTollgate, type TollgateExpressOptions, tollgate } from '@tollgate/express'
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express'
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, closeServer } from '../../../test/helpers/cleanup.js'
import { type Answer, send } from '../../../test/helpers/http.js'
import { listen, portOf } from '../../../test/helpers/ports.js'
import { clientOf, describeRateLimits, type StartLimited } from '../../../test/helpers/rate-limit-suite.js'
import { describeLimitStrategies } from '../../../test/helpers/strategy-suite.js'

const cleanup = new Cleanup()

// Errors from the middleware become a JSON 500 rather than Express's HTML page on stderr.
const jsonErrors: ErrorRequestHandler = (error, _req, res, _next) => {
  res.status(500).json({ error: String((error as Error).message) })
}

const ok: RequestHandler = (_req, res) => {
  res.json({ ok: true })
}

const showDecision: RequestHandler = (req, res) => {
  res.json({ decision: req.rateLimit ?? null })
}

const start: StartLimited = async (cleanup, options, routes, setup = {}) => {
  const gate = tollgate(options as TollgateExpressOptions)
  cleanup.add(() => gate.close(), null)
  const app = express()
  if (setup.trustProxy !== undefined) app.set('trust proxy', setup.trustProxy)
  for (const route of routes) {
    const handler = route.answer === 'decision' ? showDecision : ok
    if (route.limit === false) app.get(route.path, handler)
    else app.get(route.path, gate.limit(route.limit), handler)
  }
  app.use(jsonErrors)
  const server = http.createServer(app)
  const host = setup.host ?? '127.0.0.1'
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, host, resolve)
    })
  } catch (error) {
    if (host !== '127.0.0.1') return null
    throw error
  }
  cleanup.add(() => closeServer(server), null)
  return clientOf(host, portOf(server))
}

describeRateLimits('Express', cleanup, start)
describeLimitStrategies('Express', cleanup, start)

afterEach(() => cleanup.run())

function gateWith(options?: TollgateExpressOptions): ExpressTollgate {
  const gate = tollgate(options)
  cleanup.add(() => gate.close(), null)
  return gate
}

/** Serves `build`'s routes on a real socket. */
async function serve(build: (app: Express) => void) {
  const app = express()
  build(app)
  app.use(jsonErrors)
  const server = http.createServer(app)
  const port = await listen(server)
  cleanup.add(() => closeServer(server), null)
  return {
    get: (path: string): Promise<Answer> => send(port, { path }),
    post: (path: string, body: object): Promise<Answer> => send(port, { path, body }),
  }
}

async function statuses(agent: Awaited<ReturnType<typeof serve>>, path: string, n: number) {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await agent.get(path)).status)
  return out
}

describe('Express only: limit()', () => {
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

  it('takes the scope as a second argument too', async () => {
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
    expect((await agent.post('/v1/completions', { max_tokens: 6 })).json()).toEqual({ remaining: 4 })
    const rejected = await agent.post('/v1/completions', { max_tokens: 5 })
    expect(rejected.status).toBe(429)
    expect(rejected.headers.ratelimit).toMatch(/;r=4;/)
    expect((await agent.post('/v1/completions', { max_tokens: 4 })).status).toBe(200)
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
    expect(res.json().error.code).toBe('rate_limit_check_failed')
  })
})

describe('Express only: configuration errors', () => {
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
