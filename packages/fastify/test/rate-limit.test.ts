import tollgate, { type TollgateFastifyOptions } from '@tollgate/fastify'
import Fastify, { type FastifyContextConfig, type FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Cleanup } from '../../../test/helpers/cleanup.js'
import { recordingLogger } from '../../../test/helpers/gateways.js'
import { send } from '../../../test/helpers/http.js'
import { portOf } from '../../../test/helpers/ports.js'
import { clientOf, describeRateLimits, type StartLimited } from '../../../test/helpers/rate-limit-suite.js'
import { describeLimitStrategies } from '../../../test/helpers/strategy-suite.js'

const cleanup = new Cleanup()

const start: StartLimited = async (cleanup, options, routes, setup = {}) => {
  const app = Fastify({ trustProxy: setup.trustProxy ?? false })
  cleanup.add(() => app.close(), null)
  await app.register(tollgate, options as TollgateFastifyOptions)
  for (const route of routes) {
    const config: FastifyContextConfig = route.limit === undefined ? {} : { rateLimit: route.limit }
    app.get(route.path, { config }, async (request) =>
      route.answer === 'decision' ? { decision: request.rateLimit } : { ok: true },
    )
  }
  const host = setup.host ?? '127.0.0.1'
  try {
    await app.listen({ port: 0, host })
  } catch (error) {
    if (host !== '127.0.0.1') return null
    throw error
  }
  return clientOf(host, portOf(app))
}

describeRateLimits('Fastify', cleanup, start)
describeLimitStrategies('Fastify', cleanup, start)

const ok = async () => ({ ok: true })

/** An app with the plugin registered and `routes` added, listening. */
async function started(
  options: TollgateFastifyOptions,
  routes: (app: FastifyInstance) => void,
): Promise<{ app: FastifyInstance; get: (path: string) => ReturnType<typeof send> }> {
  const app = Fastify()
  cleanup.add(() => app.close(), null)
  await app.register(tollgate, options)
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = portOf(app)
  return { app, get: (path) => send(port, { path }) }
}

afterEach(() => cleanup.run())

describe('Fastify only', () => {
  it('leaves routes alone when there are no default limits', async () => {
    const { get } = await started({}, (app) => {
      app.get('/free', ok)
    })
    const res = await get('/free')
    expect(res.status).toBe(200)
    expect(res.headers.ratelimit).toBeUndefined()
  })

  it('counts HEAD requests against the GET route they mirror', async () => {
    const { get, app } = await started({ defaultLimits: '3 per minute' }, (a) => {
      a.get('/g', ok)
    })
    const head = () => app.inject({ method: 'HEAD', url: '/g' })
    expect((await head()).headers.ratelimit).toMatch(/;r=2;/)
    expect((await get('/g')).headers.ratelimit).toMatch(/;r=1;/)
    expect((await head()).headers.ratelimit).toMatch(/;r=0;/)
    expect((await head()).statusCode).toBe(429)
    expect((await get('/g')).status).toBe(429)
  })

  it('lets a cost function read the body with hook: preHandler', async () => {
    const { app } = await started({ defaultLimits: '10 per minute', hook: 'preHandler' }, (app) => {
      app.post(
        '/v1/completions',
        { config: { rateLimit: { cost: (request) => (request.body as { max_tokens: number }).max_tokens } } },
        async (request) => ({ remaining: request.rateLimit?.binding.remaining }),
      )
    })
    const post = (body: object) => send(portOf(app), { path: '/v1/completions', body })
    expect((await post({ max_tokens: 6 })).json()).toEqual({ remaining: 4 })
    expect((await post({ max_tokens: 5 })).status).toBe(429)
    expect((await post({ max_tokens: 4 })).status).toBe(200)
  })

  it('reaches routes in encapsulated plugins registered after it', async () => {
    const { get } = await started({ defaultLimits: '1 per minute' }, (app) => {
      app.register(
        async (child) => {
          child.get('/inner', ok)
        },
        { prefix: '/v1' },
      )
    })
    expect((await get('/v1/inner')).status).toBe(200)
    expect((await get('/v1/inner')).status).toBe(429)
  })
})

describe('Fastify: warnings', () => {
  it.each(['ratelimit', 'rate_limit', 'rateLimits', 'RateLimit'])(
    'warns about a config.%s key, which would leave the route on the defaults',
    async (key) => {
      const { warnings, logger } = recordingLogger()
      const app = Fastify()
      cleanup.add(() => app.close(), null)
      await app.register(tollgate, { defaultLimits: '5 per minute', logger })
      app.get('/a', { config: { [key]: '1 per minute' } }, ok)
      app.get('/b', { config: { rateLimit: '1 per minute' } }, ok)
      expect(warnings).toEqual([expect.stringContaining(`GET /a has config.${key}`)])
      expect(warnings[0]).toContain('did you mean config.rateLimit?')
    },
  )

  it('warns when routes were declared before the plugin ran, e.g. register was not awaited', async () => {
    const { warnings, logger } = recordingLogger()
    const app = Fastify()
    cleanup.add(() => app.close(), null)
    void app.register(tollgate, { defaultLimits: '1 per minute', logger })
    app.get('/early', ok)
    await app.ready()
    expect(warnings).toEqual([expect.stringContaining('declared before the plugin was registered')])
    expect(warnings[0]).toContain('early')
    // The warning tells the truth: the route is not limited.
    const first = await app.inject('/early')
    expect(first.headers.ratelimit).toBeUndefined()
  })

  it('says nothing when the plugin is awaited before the routes', async () => {
    const { warnings, logger } = recordingLogger()
    const app = Fastify()
    cleanup.add(() => app.close(), null)
    await app.register(tollgate, { defaultLimits: '1 per minute', logger })
    app.get('/a', { config: { rateLimit: '2 per minute' } }, ok)
    await app.ready()
    expect(warnings).toEqual([])
  })
})

describe('Fastify: startup', () => {
  async function registerFails(options: unknown): Promise<string> {
    const app = Fastify()
    cleanup.add(() => app.close(), null)
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
    cleanup.add(() => app.close(), null)
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
    cleanup.add(() => app.close(), null)
    await app.register(tollgate, {})
    expect(() => app.get('/bad', { config: { rateLimit: { limit: '5 per minute' } as never } }, ok)).toThrow(
      /limit/,
    )
  })

  it('accepts Fastify register options alongside its own', async () => {
    const app = Fastify()
    cleanup.add(() => app.close(), null)
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
})
