import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  LimitCheckFailure,
  type LimitDecision,
  LimitEngine,
  LimitParseError,
  type LimitStore,
  MemoryStore,
  OptionError,
  type RateLimitOptions,
  type RouteLimit,
  type RouteLimitSpec,
} from '../../src/internal.js'

interface Req {
  ip?: string
  user?: string
  tokens?: number
  health?: boolean
}

const engines: LimitEngine<Req>[] = []
afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.close()
})

const quietLogger = { warn: vi.fn() }

function engine(options: RateLimitOptions<Req> = {}, extra: readonly string[] = []): LimitEngine<Req> {
  const created = new LimitEngine<Req>(options, quietLogger, extra)
  engines.push(created)
  return created
}

/** Anything the option checks accept as a Redis client; these tests never send it a command. */
const fakeRedis = { status: 'ready', evalsha: async () => [], eval: async () => [] }

function route(
  e: LimitEngine<Req>,
  spec: RouteLimitSpec<Req> | undefined,
  scope = 'GET /r',
): RouteLimit<Req> {
  const limit = e.route(scope, spec, `route ${scope}`)
  if (limit === null) throw new Error('expected the route to be limited')
  return limit
}

async function check(limit: RouteLimit<Req>, request: Req = {}): Promise<LimitDecision | null> {
  const outcome = await limit.check(request, request.ip)
  if (outcome instanceof LimitCheckFailure) throw new Error(`the check failed: ${outcome.part}`)
  return outcome
}

/** Headers and answer for an outcome, as an adapter would send them. */
function respond(limit: RouteLimit<Req>, request: Req, outcome: LimitDecision | LimitCheckFailure) {
  const headers: Record<string, string> = {}
  const answer = limit.respond(request, outcome, headers, (h, name, value) => {
    h[name] = value
  })
  return { headers, answer }
}

async function allowedCount(limit: RouteLimit<Req>, request: Req, tries: number): Promise<number> {
  let allowed = 0
  for (let i = 0; i < tries; i++) if ((await check(limit, request))?.allowed) allowed++
  return allowed
}

describe('LimitEngine: options are checked at construction', () => {
  const bad: Array<[what: string, options: unknown, option: string, shown: string]> = [
    ['defaultLimits not a string', { defaultLimits: 50 }, 'defaultLimits', 'got 50'],
    ['applicationLimits not a string', { applicationLimits: ['1/s'] }, 'applicationLimits', 'got ["1/s"]'],
    ['headers draft7', { headers: 'draft7' }, 'headers', 'got "draft7"'],
    ['headers true', { headers: true }, 'headers', 'got true'],
    ['negative cost', { cost: -1 }, 'cost', 'got -1'],
    ['fractional cost', { cost: 1.5 }, 'cost', 'got 1.5'],
    ['cost as text', { cost: '1' }, 'cost', 'got "1"'],
    ['keyGenerator not a function', { keyGenerator: 'ip' }, 'keyGenerator', 'got "ip"'],
    ['skip not a function', { skip: true }, 'skip', 'got true'],
    ['rejectionBody not a function', { rejectionBody: {} }, 'rejectionBody', 'got an empty object'],
    ['onExceeded not a function', { onExceeded: 1 }, 'onExceeded', 'got 1'],
    ['allowList of numbers', { allowList: [127001] }, 'allowList', 'got [127001]'],
    ['allowList as text', { allowList: '10.0.0.1' }, 'allowList', 'got "10.0.0.1"'],
    ['logger without warn', { logger: { log: 1 } }, 'logger', 'got an object with keys log'],
    ['keyPrefix with {', { keyPrefix: 'app{1}:' }, 'keyPrefix', 'got "app{1}:"'],
    ['keyPrefix with }', { keyPrefix: 'app}' }, 'keyPrefix', 'got "app}"'],
    ['keyPrefix not a string', { keyPrefix: 7 }, 'keyPrefix', 'got 7'],
    ['store as a word', { store: 'redis' }, 'store', 'got "redis"'],
    ['store without hit()', { store: { close() {} } }, 'store', 'got an object with keys close'],
    ['store.redis not a client', { store: { redis: {} } }, 'store.redis', 'got an empty object'],
    [
      'store.onError maybe',
      { store: { redis: fakeRedis, onError: 'maybe' } },
      'store.onError',
      'got "maybe"',
    ],
    ['store.timeoutMs 0', { store: { redis: fakeRedis, timeoutMs: 0 } }, 'store.timeoutMs', 'got 0'],
    [
      'store.timeoutMs as text',
      { store: { redis: fakeRedis, timeoutMs: '1s' } },
      'store.timeoutMs',
      'got "1s"',
    ],
    // setTimeout would fire these after 1 ms, timing out every Redis call.
    [
      'store.timeoutMs Infinity',
      { store: { redis: fakeRedis, timeoutMs: Infinity } },
      'store.timeoutMs',
      'got Infinity',
    ],
    [
      'store.timeoutMs 2^31',
      { store: { redis: fakeRedis, timeoutMs: 2 ** 31 } },
      'store.timeoutMs',
      'got 2147483648',
    ],
    ['options not an object', 'memory', 'options', 'got "memory"'],
  ]

  it.each(bad)('%s', (_what, options, option, shown) => {
    const attempt = () => engine(options as RateLimitOptions<Req>)
    expect(attempt).toThrow(OptionError)
    expect(attempt).toThrow(`option "${option}"`)
    expect(attempt).toThrow(shown)
  })

  it('a Redis client passed as the store is named by kind, with no password and no JSON in the message', async () => {
    const secret = 'hunter2-redis-password'
    const { Redis, Cluster } = await import('ioredis')
    const { createClient } = await import('redis')
    const io = new Redis({ host: '127.0.0.1', port: 6390, password: secret, lazyConnect: true })
    const cluster = new Cluster([{ host: '127.0.0.1', port: 6391 }], {
      lazyConnect: true,
      redisOptions: { password: secret },
    })
    const nodeRedis = createClient({ url: `redis://:${secret}@127.0.0.1:6392` })
    try {
      for (const [client, kind] of [
        [io, 'an ioredis client'],
        [cluster, 'an ioredis client'],
        [nodeRedis, 'a node-redis client'],
      ] as const) {
        const error = catchError(() => engine({ store: client as never }))
        expect(error).toBeInstanceOf(OptionError)
        const message = (error as Error).message
        expect(message).toBe(
          `tollgate: option "store" must be { redis: client } (the client goes inside) or "memory", { redis: client }, flexibleStore(factory) or an object with hit() and close(); got ${kind}`,
        )
        expect(message).not.toContain(secret)
        expect(message).not.toContain('{"')
      }
    } finally {
      io.disconnect()
      cluster.disconnect()
    }
  })

  it('cuts a long bad value in the message', () => {
    const error = catchError(() => engine({ keyPrefix: `x{${'y'.repeat(5_000)}` })) as Error
    expect(error.message.length).toBeLessThan(300)
    expect(error.message).toContain('(5004 characters)')
  })

  it('rejects unknown option names, naming them and the known ones', () => {
    const attempt = () => engine({ defaultLimit: '5/minute' } as RateLimitOptions<Req>)
    expect(attempt).toThrow(OptionError)
    expect(attempt).toThrow('unknown option "defaultLimit"')
    expect(attempt).toThrow('did you mean "defaultLimits"?')
    expect(attempt).toThrow(/Known options are .*defaultLimits/)
    expect(() =>
      engine({ store: { redis: fakeRedis, timeout: 5 } } as unknown as RateLimitOptions<Req>),
    ).toThrow('unknown option "store.timeout"')
  })

  it('accepts the option names an adapter adds', () => {
    expect(() => engine({ prefixRoutes: true } as RateLimitOptions<Req>, ['prefixRoutes'])).not.toThrow()
  })

  it('throws LimitParseError for bad notation, naming the option and quoting the text', () => {
    for (const option of ['defaultLimits', 'applicationLimits'] as const) {
      let caught: unknown
      try {
        engine({ [option]: '50 per fortnight' })
      } catch (error) {
        caught = error
      }
      expect(caught).toBeInstanceOf(LimitParseError)
      expect((caught as Error).message).toContain(`option "${option}"`)
      expect((caught as Error).message).toContain('"50 per fortnight"')
    }
  })

  it('accepts every valid setting', () => {
    const store: LimitStore = { hit: () => ({ allowed: true, used: [], resetMs: [] }), close: () => {} }
    for (const headers of ['ietf', 'legacy', 'both', false] as const) {
      expect(engine({ headers }).headers).toBe(headers)
    }
    expect(engine({}).headers).toBe('ietf')
    expect(engine({ store }).store).toBe(store)
    expect(engine({ store: 'memory' }).store).toBeInstanceOf(MemoryStore)
    expect(() =>
      engine({
        defaultLimits: '200 per day, 50 per hour',
        applicationLimits: '1000/hour',
        cost: 0,
        keyPrefix: 'app:',
        allowList: ['127.0.0.1', '::1'],
        logger: { warn() {} },
        store: { redis: fakeRedis, timeoutMs: 2_147_483_647, onError: 'deny' },
      }),
    ).not.toThrow()
  })
})

describe('LimitEngine.route: route specs are checked', () => {
  it('names the route and quotes the value', () => {
    const e = engine({ defaultLimits: '10/minute' })
    const cases: Array<[spec: unknown, message: string]> = [
      [{ limit: '5/minute' }, 'unknown option "route GET /r.limit"'],
      [{ limits: '5/minute', cost: -1 }, 'option "route GET /r.cost" must be a whole number >= 0'],
      [{ limits: '5/minute', cost: 1.5 }, 'got 1.5'],
      [{ keyGenerator: 'user' }, 'option "route GET /r.keyGenerator" must be a function; got "user"'],
      [{ skip: 1 }, 'option "route GET /r.skip"'],
      [{ scope: 5 }, 'option "route GET /r.scope" must be a string; got 5'],
      [{ deductWhen: 'yes' }, 'option "route GET /r.deductWhen" must be a function; got "yes"'],
      [{ methods: ['post'] }, 'option "route GET /r.methods" must be a non-empty array of HTTP methods'],
      [{ methods: [] }, 'option "route GET /r.methods"'],
      [{ perMethod: 'yes' }, 'option "route GET /r.perMethod" must be true or false; got "yes"'],
      [true, 'option "route GET /r" must be a limit string, false, or an object'],
      [null, 'got null'],
      [['5/minute'], 'got ["5/minute"]'],
    ]
    for (const [spec, message] of cases) {
      const attempt = () => e.route('GET /r', spec as RouteLimitSpec<Req>, 'route GET /r')
      expect(attempt, JSON.stringify(spec)).toThrow(OptionError)
      expect(attempt, JSON.stringify(spec)).toThrow(message)
    }
  })

  it('throws LimitParseError for bad route notation, in both spellings', () => {
    const e = engine()
    for (const spec of ['5 per 0 minutes', { limits: '5 per 0 minutes' }]) {
      let caught: unknown
      try {
        e.route('GET /r', spec, 'GET /r config.rateLimit')
      } catch (error) {
        caught = error
      }
      expect(caught).toBeInstanceOf(LimitParseError)
      expect((caught as Error).message).toContain('GET /r config.rateLimit')
      expect((caught as Error).message).toContain('"5 per 0 minutes"')
    }
  })
})

describe('deductWhen', () => {
  const noRefund: LimitStore = {
    hit: (_k, w) => ({ allowed: true, used: w.map(() => 1), resetMs: w.map(() => 1) }),
    close() {},
  }

  it('needs a store that can refund, plugin-wide or on a route', () => {
    expect(() => engine({ store: noRefund, deductWhen: () => true })).toThrow(
      'option "deductWhen" must be used with a store that has refund()',
    )
    const e = engine({ store: noRefund })
    expect(() => e.route('GET /r', { limits: '1/minute', deductWhen: () => true }, 'route GET /r')).toThrow(
      'option "route GET /r.deductWhen" must be used with a store that has refund()',
    )
  })

  it('keeps the charge when deductWhen throws: a bug must not grant requests', async () => {
    const limit = route(engine(), {
      limits: '1/minute',
      deductWhen: () => {
        throw new Error('broken')
      },
    })
    const first = await check(limit, { ip: '1.2.3.4' })
    await limit.settle({ ip: '1.2.3.4' }, first!, 200)
    expect((await check(limit, { ip: '1.2.3.4' }))?.allowed).toBe(false)
  })

  it('refunds every window, the application window included', async () => {
    const e = engine({ applicationLimits: '1/minute', deductWhen: (_r, status) => status !== 404 })
    const a = route(e, '5/minute', 'GET /a')
    const first = await check(a, { ip: '1.2.3.4' })
    await a.settle({ ip: '1.2.3.4' }, first!, 404)
    expect((await check(route(e, '5/minute', 'GET /b'), { ip: '1.2.3.4' }))?.allowed).toBe(true)
  })
})

describe('LimitEngine.route: which limits apply', () => {
  it('returns null for false, even with defaults and application limits', () => {
    const e = engine({ defaultLimits: '1/minute', applicationLimits: '1/minute' })
    expect(e.route('GET /off', false, 'GET /off')).toBeNull()
  })

  it('returns null when neither the route nor the options name a limit', () => {
    const e = engine()
    expect(e.hasDefaults).toBe(false)
    expect(e.route('GET /free', undefined, 'GET /free')).toBeNull()
    expect(e.route('GET /free', { cost: 2 }, 'GET /free')).toBeNull()
  })

  it('applies the defaults when the spec is undefined, with counters of its own per route', async () => {
    const e = engine({ defaultLimits: '2 per minute' })
    expect(e.hasDefaults).toBe(true)
    const a = route(e, undefined, 'GET /a')
    const b = route(e, {}, 'GET /b')
    expect(a.limiter.policyHeader).toBe('"2-per-minute";q=2;w=60')
    expect(await allowedCount(a, { ip: '10.0.0.1' }, 5)).toBe(2)
    expect(await allowedCount(b, { ip: '10.0.0.1' }, 5)).toBe(2)
  })

  it('lets a route limit replace the defaults', async () => {
    const e = engine({ defaultLimits: '2 per minute' })
    const own = route(e, '4 per minute')
    expect(own.limiter.policyHeader).toBe('"4-per-minute";q=4;w=60')
    expect(await allowedCount(own, { ip: '10.0.0.1' }, 6)).toBe(4)
  })

  it('shares application limits across routes while route limits stay separate', async () => {
    const e = engine({ defaultLimits: '2 per minute', applicationLimits: '3 per minute' })
    const a = route(e, undefined, 'GET /a')
    const b = route(e, undefined, 'GET /b')
    const client = { ip: '10.0.0.1' }
    expect(a.limiter.policyHeader).toBe('"2-per-minute";q=2;w=60, "3-per-minute";q=3;w=60')

    expect(await allowedCount(a, client, 2)).toBe(2)
    const aFull = await check(a, client)
    expect(aFull).toMatchObject({ allowed: false, limit: '2 per minute' })

    const first = await check(b, client)
    expect(first?.allowed).toBe(true)
    expect(first?.windows.map((w) => w.used)).toEqual([1, 3])
    const bRejected = await check(b, client)
    expect(bRejected).toMatchObject({ allowed: false, limit: '3 per minute' })
    // Route b's own window still has room: only the shared one is spent.
    expect(bRejected?.windows.map((w) => w.remaining)).toEqual([1, 0])
    // Another client is untouched by this one's application usage.
    expect((await check(b, { ip: '10.0.0.2' }))?.allowed).toBe(true)
  })

  it('applies application limits alone to routes without limits of their own', async () => {
    const e = engine({ applicationLimits: '2 per minute' })
    const a = route(e, undefined, 'GET /a')
    const b = route(e, undefined, 'GET /b')
    expect(await allowedCount(a, { ip: '1.1.1.1' }, 1)).toBe(1)
    expect(await allowedCount(b, { ip: '1.1.1.1' }, 3)).toBe(1)
  })

  it('shares counters between routes given the same scope', async () => {
    const e = engine()
    const a = route(e, { limits: '3 per minute', scope: 'models' }, 'GET /a')
    const b = route(e, { limits: '3 per minute', scope: 'models' }, 'GET /b')
    const c = route(e, '3 per minute', 'GET /c')
    const client = { ip: '10.0.0.1' }
    expect(await allowedCount(a, client, 2)).toBe(2)
    expect(await allowedCount(b, client, 3)).toBe(1)
    expect(await allowedCount(a, client, 1)).toBe(0)
    expect(await allowedCount(c, client, 4)).toBe(3)
  })

  it('keeps two engines on their own memory stores apart', async () => {
    const one = route(engine({ defaultLimits: '1/minute' }), undefined)
    const two = route(engine({ defaultLimits: '1/minute' }), undefined)
    expect(await allowedCount(one, { ip: '10.0.0.1' }, 2)).toBe(1)
    expect(await allowedCount(two, { ip: '10.0.0.1' }, 2)).toBe(1)
  })
})

describe('RouteLimit.check', () => {
  it('keys by client IP, grouping IPv6 by /64 and mapped IPv4 with IPv4', async () => {
    const limit = route(engine({ defaultLimits: '1 per minute' }), undefined)
    expect(await check(limit, { ip: '2001:db8:1:2::1' })).toMatchObject({
      allowed: true,
      key: '2001:db8:1:2::/64',
    })
    expect(await check(limit, { ip: '2001:db8:1:2::99' })).toMatchObject({ allowed: false })
    expect(await check(limit, { ip: '2001:db8:1:3::1' })).toMatchObject({ allowed: true })
    expect(await check(limit, { ip: '192.0.2.1' })).toMatchObject({ allowed: true, key: '192.0.2.1' })
    expect(await check(limit, { ip: '::ffff:192.0.2.1' })).toMatchObject({ allowed: false, key: '192.0.2.1' })
    expect(await check(limit, {})).toMatchObject({ allowed: true, key: 'unknown' })
  })

  it('answers synchronously when nothing on the way is asynchronous', () => {
    const limit = route(engine({ defaultLimits: '1 per minute' }), undefined)
    const decision = limit.check({}, '10.0.0.1')
    expect(decision).not.toBeInstanceOf(Promise)
    expect(decision).toMatchObject({ allowed: true })
  })

  it('skip (sync and async) returns null and counts nothing', async () => {
    for (const skip of [(r: Req) => r.health === true, async (r: Req) => r.health === true]) {
      const limit = route(engine({ defaultLimits: '2 per minute', skip }), undefined)
      const health = { ip: '10.0.0.1', health: true }
      for (let i = 0; i < 5; i++) expect(await check(limit, health)).toBeNull()
      expect(await allowedCount(limit, { ip: '10.0.0.1' }, 3)).toBe(2)
    }
  })

  it('a route skip replaces the global one', async () => {
    const e = engine({ defaultLimits: '1 per minute', skip: () => true })
    expect(await check(route(e, undefined, 'GET /a'), { ip: '10.0.0.1' })).toBeNull()
    const own = route(e, { skip: () => false }, 'GET /b')
    expect(await check(own, { ip: '10.0.0.1' })).toMatchObject({ allowed: true })
  })

  it('allowList of IPs covers the IPv6 /64 and mapped IPv4, and nothing else', async () => {
    const limit = route(
      engine({ defaultLimits: '1 per minute', allowList: ['10.0.0.1', '2001:db8:1:2::1'] }),
      undefined,
    )
    for (const ip of ['10.0.0.1', '::ffff:10.0.0.1', '2001:db8:1:2::1', '2001:db8:1:2:ffff::9']) {
      for (let i = 0; i < 3; i++) expect(await check(limit, { ip }), ip).toBeNull()
    }
    for (const ip of ['10.0.0.2', '2001:db8:1:3::1']) {
      expect(await check(limit, { ip }), ip).toMatchObject({ allowed: true })
      expect(await check(limit, { ip }), ip).toMatchObject({ allowed: false })
    }
  })

  it('allowList as a function sees the request and the client key', async () => {
    const allowList = vi.fn((request: Req, key: string) => request.user === 'admin' || key === '10.0.0.9')
    const limit = route(engine({ defaultLimits: '1 per minute', allowList }), undefined)
    expect(await check(limit, { ip: '10.0.0.1', user: 'admin' })).toBeNull()
    expect(await check(limit, { ip: '10.0.0.9' })).toBeNull()
    expect(allowList).toHaveBeenLastCalledWith({ ip: '10.0.0.9' }, '10.0.0.9')
    expect(await allowedCount(limit, { ip: '10.0.0.1' }, 2)).toBe(1)
  })

  it('keyGenerator (sync) replaces the IP, globally and per route', async () => {
    const e = engine({ defaultLimits: '1 per minute', keyGenerator: (r) => `user:${r.user}` })
    const global = route(e, undefined, 'GET /a')
    expect(await check(global, { ip: '10.0.0.1', user: 'ann' })).toMatchObject({
      allowed: true,
      key: 'user:ann',
    })
    // Same user from another IP: same key, so rejected.
    expect(await check(global, { ip: '10.0.0.2', user: 'ann' })).toMatchObject({ allowed: false })
    expect(await check(global, { ip: '10.0.0.1', user: 'bob' })).toMatchObject({ allowed: true })

    const perRoute = route(e, { keyGenerator: (r) => `tenant:${r.user?.[0]}` }, 'GET /b')
    expect(await check(perRoute, { user: 'ann' })).toMatchObject({ allowed: true, key: 'tenant:a' })
    expect(await check(perRoute, { user: 'amy' })).toMatchObject({ allowed: false, key: 'tenant:a' })
  })

  it('keyGenerator (async) resolves before counting', async () => {
    const limit = route(
      engine({ defaultLimits: '1 per minute', keyGenerator: async (r) => `user:${r.user}` }),
      undefined,
    )
    const pending = limit.check({ user: 'ann' }, '10.0.0.1')
    expect(pending).toBeInstanceOf(Promise)
    await expect(pending).resolves.toMatchObject({ allowed: true, key: 'user:ann' })
    await expect(limit.check({ user: 'ann' }, '10.0.0.2')).resolves.toMatchObject({ allowed: false })
  })

  it('a keyGenerator returning an empty string or a non-string fails the check, not a shared bucket', async () => {
    const logger = { warn: vi.fn() }
    const sync = route(engine({ defaultLimits: '1 per minute', keyGenerator: () => '', logger }), undefined)
    expect(sync.check({}, '10.0.0.1')).toMatchObject({ part: 'keyGenerator' })
    expect(String(logger.warn.mock.calls[0]?.[0])).toMatch(
      /keyGenerator callback failed \(it must return a non-empty string; got ""\)/,
    )
    const async = route(engine({ defaultLimits: '1 per minute', keyGenerator: async () => '' }), undefined)
    await expect(async.check({}, '10.0.0.1')).resolves.toBeInstanceOf(LimitCheckFailure)
    const notString = route(
      engine({ defaultLimits: '1 per minute', keyGenerator: (() => 42) as unknown as () => string }),
      undefined,
    )
    expect(notString.check({}, '10.0.0.1')).toBeInstanceOf(LimitCheckFailure)
  })

  it('cost as a number and as a function of the request', async () => {
    const fixed = route(engine({ defaultLimits: '10 per minute', cost: 4 }), undefined)
    expect((await check(fixed, { ip: '1.1.1.1' }))?.binding.used).toBe(4)
    expect((await check(fixed, { ip: '1.1.1.1' }))?.binding.used).toBe(8)
    expect(await check(fixed, { ip: '1.1.1.1' })).toMatchObject({
      allowed: false,
      binding: { used: 8, remaining: 2 },
    })

    const e = engine({ defaultLimits: '10 per minute', cost: (r) => r.tokens ?? 1 })
    const byTokens = route(e, undefined, 'GET /tokens')
    expect((await check(byTokens, { ip: '1.1.1.1', tokens: 7 }))?.binding.used).toBe(7)
    expect(await check(byTokens, { ip: '1.1.1.1', tokens: 4 })).toMatchObject({ allowed: false })
    expect((await check(byTokens, { ip: '1.1.1.1', tokens: 3 }))?.binding.used).toBe(10)
    expect(await check(byTokens, { ip: '1.1.1.1', tokens: 0 })).toMatchObject({
      allowed: true,
      binding: { used: 10 },
    })

    const routeCost = route(e, { cost: 5 }, 'GET /five')
    expect(await allowedCount(routeCost, { ip: '1.1.1.1' }, 3)).toBe(2)
  })

  it('a cost function returning a bad amount fails the check once logged, never throws', () => {
    const logger = { warn: vi.fn() }
    const limit = route(
      engine({ defaultLimits: '10 per minute', cost: (r) => r.tokens ?? 1, logger }),
      undefined,
    )
    for (const tokens of [-1, 1.5, Number.NaN]) {
      const outcome = limit.check({ tokens }, '1.1.1.1')
      expect(outcome, String(tokens)).toBeInstanceOf(LimitCheckFailure)
      expect(respond(limit, {}, outcome as LimitCheckFailure).answer?.status).toBe(500)
    }
    expect(logger.warn).toHaveBeenCalledOnce()
    expect(String(logger.warn.mock.calls[0]?.[0])).toMatch(/cost callback failed.*whole number >= 0; got -1/)
  })

  it('respond() calls onExceeded and builds the default body or the custom one', async () => {
    const onExceeded = vi.fn()
    const plain = route(engine({ defaultLimits: '1 per hour', onExceeded }), undefined)
    await check(plain, { ip: '1.1.1.1' })
    const rejected = (await check(plain, { ip: '1.1.1.1' }))!
    const { headers, answer } = respond(plain, { ip: '1.1.1.1' }, rejected)
    expect(answer).toMatchObject({
      status: 429,
      body: { error: { limit: '1 per hour', retry_after: 3600 } },
    })
    expect(headers).toMatchObject({ 'retry-after': '3600', 'x-should-retry': 'false' })
    expect(onExceeded).toHaveBeenCalledExactlyOnceWith({ ip: '1.1.1.1' }, rejected)

    const custom = route(
      engine({ defaultLimits: '1 per hour', rejectionBody: (r, d) => ({ who: r.ip, limit: d.limit }) }),
      undefined,
    )
    expect(respond(custom, { ip: '2.2.2.2' }, rejected).answer?.body).toEqual({
      who: '2.2.2.2',
      limit: '1 per hour',
    })
  })

  it('x-should-retry: false only when the wait is above clientRetryMaxSeconds', async () => {
    const cases: [string, number | false | undefined, boolean][] = [
      ['1 per 10 seconds', undefined, false],
      ['1 per 2 minutes', undefined, true],
      ['1 per 2 minutes', 120, false],
      ['1 per hour', false, false],
    ]
    for (const [limits, clientRetryMaxSeconds, expected] of cases) {
      const options = clientRetryMaxSeconds === undefined ? {} : { clientRetryMaxSeconds }
      const limit = route(engine({ defaultLimits: limits, ...options }), undefined)
      await check(limit, { ip: '1.1.1.1' })
      const { headers } = respond(limit, {}, (await check(limit, { ip: '1.1.1.1' }))!)
      expect('x-should-retry' in headers, `${limits} / ${clientRetryMaxSeconds}`).toBe(expected)
    }
    expect(() => engine({ clientRetryMaxSeconds: -1 })).toThrow(/option "clientRetryMaxSeconds" must be/)
  })

  it("a cost above a window's amount is a 400 that says it can never pass, not a 429 inviting a retry", async () => {
    const limit = route(
      engine({ defaultLimits: '100 per day, 10 per minute', cost: (r) => r.tokens ?? 1 }),
      undefined,
    )
    const decision = (await check(limit, { ip: '1.1.1.1', tokens: 11 }))!
    expect(decision).toMatchObject({ allowed: false, cost: 11, retryAfter: 0, limit: '10 per minute' })
    const { headers, answer } = respond(limit, {}, decision)
    expect(answer?.status).toBe(400)
    expect(answer?.body).toMatchObject({
      error: { code: 'cost_exceeds_limit', cost: 11, limit: '10 per minute' },
    })
    expect(headers['retry-after']).toBeUndefined()
    expect(headers['x-should-retry']).toBe('false')
    // Nothing was charged: the next ordinary request passes with the full budget.
    expect(await check(limit, { ip: '1.1.1.1' })).toMatchObject({ allowed: true, binding: { remaining: 9 } })
    // A cost that fits the window but not what is left of it is still a 429.
    const full = (await check(limit, { ip: '1.1.1.1', tokens: 10 }))!
    expect(respond(limit, {}, full).answer?.status).toBe(429)
  })

  it('keyPrefix keeps two engines on one store apart', async () => {
    const store = new MemoryStore()
    try {
      const a = route(engine({ defaultLimits: '1/minute', keyPrefix: 'a:', store }), undefined)
      const b = route(engine({ defaultLimits: '1/minute', keyPrefix: 'b:', store }), undefined)
      const a2 = route(engine({ defaultLimits: '1/minute', keyPrefix: 'a:', store }), undefined)
      expect(await allowedCount(a, { ip: '1.1.1.1' }, 1)).toBe(1)
      expect(await allowedCount(b, { ip: '1.1.1.1' }, 1)).toBe(1)
      expect(await allowedCount(a2, { ip: '1.1.1.1' }, 1)).toBe(0)
    } finally {
      store.close()
    }
  })
})

function catchError(fn: () => unknown): unknown {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}
