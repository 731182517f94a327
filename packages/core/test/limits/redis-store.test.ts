import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  type HitResult,
  type InsuredStore,
  LimitCheckFailure,
  LimitEngine,
  type RedisClientLike,
  RedisStore,
  StoreUnavailableError,
  type WindowSpec,
} from '../../src/internal.js'
import { HIT_SCRIPT } from '../../src/limits/redis-script.js'
import { isRedisOutage } from '../../src/limits/redis-store.js'
import {
  CLIENT_KINDS,
  type ClientKind,
  clientReady,
  closeClient,
  connectIoRedis,
  connectNodeRedis,
  type NodeRedisClient,
  PrivateRedis,
  REDIS_URL,
  replyIntegerList,
  requireRedisServer,
  requireSharedRedis,
  skipWithoutRedis,
  skipWithoutRedisServer,
  uniquePrefix,
  waitFor,
} from './redis-helpers.js'

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

type AnyClient = Redis | NodeRedisClient

function connect(kind: ClientKind, url = REDIS_URL): Promise<AnyClient> {
  return kind === 'ioredis' ? connectIoRedis(url) : connectNodeRedis(url)
}

/** The script call the store makes, wrapped to count it; both clients resolve it on the instance. */
function countScriptCalls(client: AnyClient) {
  if (client instanceof Redis) {
    return { evalsha: vi.spyOn(client, 'evalsha'), eval: vi.spyOn(client, 'eval') }
  }
  return { evalsha: vi.spyOn(client, 'evalSha'), eval: vi.spyOn(client, 'eval') }
}

async function deleteKeys(admin: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    if (keys.length > 0) await admin.del(...keys)
    cursor = next
  } while (cursor !== '0')
}

describe.skipIf(skipWithoutRedis)('RedisStore on the shared Redis', () => {
  let admin: Redis
  const prefixes: string[] = []
  const clients: AnyClient[] = []
  /** This test's store prefix: tests share one Redis and must not see each other's counters. */
  let storePrefix: string

  beforeAll(async () => {
    requireSharedRedis()
    admin = await connectIoRedis()
  })

  beforeEach(() => {
    storePrefix = uniquePrefix()
    prefixes.push(storePrefix)
  })

  afterAll(async () => {
    for (const prefix of prefixes) await deleteKeys(admin, prefix)
    for (const client of clients) closeClient(client)
    admin?.disconnect()
  })

  /** The Redis key the store keeps a client's counter for one window under. */
  function redisKey(clientKey: string, id: string): string {
    return `${storePrefix}{${clientKey}}:${id}`
  }

  async function client(kind: ClientKind): Promise<AnyClient> {
    const c = await connect(kind)
    clients.push(c)
    return c
  }

  describe.each(CLIENT_KINDS)('with %s', (kind) => {
    let redis: AnyClient
    let store: RedisStore
    beforeAll(async () => {
      redis = await client(kind)
    })
    beforeEach(() => {
      store = new RedisStore({ client: redis, prefix: storePrefix })
    })

    it('starts a fixed window at the first hit; the key expires with it', async () => {
      const key = redisKey('c', 'minute')
      const first = await store.hit('c', [{ id: 'minute', amount: 3, windowMs: MINUTE }], 1)
      expect(first).toEqual({ allowed: true, used: [1], resetMs: [MINUTE] })
      const pttl = await admin.pttl(key)
      expect(pttl).toBeGreaterThan(0)
      expect(pttl).toBeLessThanOrEqual(MINUTE)
      expect(await admin.get(key)).toBe('1')
    })

    it('does not push the expiry back on later hits', async () => {
      const key = redisKey('c', 'minute')
      await store.hit('c', [{ id: 'minute', amount: 5, windowMs: MINUTE }], 1)
      // Stands in for 55 s passing: a later hit must keep the window's end, not restart it.
      await admin.pexpire(key, 5_000)
      const second = await store.hit('c', [{ id: 'minute', amount: 5, windowMs: MINUTE }], 1)
      expect(second.used).toEqual([2])
      expect(second.resetMs[0]).toBeGreaterThan(0)
      expect(second.resetMs[0]).toBeLessThanOrEqual(5_000)
      expect(await admin.pttl(key)).toBeLessThanOrEqual(5_000)
      const rejected = await store.hit('c', [{ id: 'minute', amount: 2, windowMs: MINUTE }], 1)
      expect(rejected.allowed).toBe(false)
      expect(await admin.pttl(key)).toBeLessThanOrEqual(5_000)
    })

    it('starts over once the key has expired', async () => {
      const window = [{ id: 'short', amount: 1, windowMs: 150 }]
      expect((await store.hit('c', window, 1)).allowed).toBe(true)
      expect(await store.hit('c', window, 1)).toMatchObject({ allowed: false, used: [1] })
      await waitFor(
        'the window to end',
        async () => (await admin.exists(redisKey('c', 'short'))) === 0,
        2_000,
      )
      expect(await store.hit('c', window, 1)).toMatchObject({ allowed: true, used: [1] })
    })

    it('keeps separate counters per client key in the same window id', async () => {
      const window = [{ id: 'GET /a:2-per-minute', amount: 2, windowMs: MINUTE }]
      expect(await store.hit('alice', window, 1)).toMatchObject({ allowed: true, used: [1] })
      expect(await store.hit('alice', window, 1)).toMatchObject({ allowed: true, used: [2] })
      expect(await store.hit('alice', window, 1)).toMatchObject({ allowed: false, used: [2] })
      expect(await store.hit('bob', window, 1)).toMatchObject({ allowed: true, used: [1] })
      expect(await admin.get(redisKey('alice', 'GET /a:2-per-minute'))).toBe('2')
      expect(await admin.get(redisKey('bob', 'GET /a:2-per-minute'))).toBe('1')
    })

    it('charges every window or none: the day is not charged for what the hour rejects', async () => {
      const windows: WindowSpec[] = [
        { id: 'hour', amount: 2, windowMs: HOUR },
        { id: 'day', amount: 5, windowMs: DAY },
      ]
      expect(await store.hit('c', windows, 1)).toMatchObject({ allowed: true, used: [1, 1] })
      expect(await store.hit('c', windows, 1)).toMatchObject({ allowed: true, used: [2, 2] })
      for (let i = 0; i < 5; i++) {
        expect(await store.hit('c', windows, 1)).toMatchObject({ allowed: false, used: [2, 2] })
      }
      expect(await admin.get(redisKey('c', 'day'))).toBe('2')

      // The hour ends; the day carries on from 2, not 7.
      await admin.del(redisKey('c', 'hour'))
      const next = await store.hit('c', windows, 1)
      expect(next).toMatchObject({ allowed: true, used: [1, 3] })
      expect(next.resetMs[0]).toBe(HOUR)
      expect(next.resetMs[1]).toBeLessThanOrEqual(DAY)
      expect(await admin.get(redisKey('c', 'day'))).toBe('3')
    })

    it('writes nothing for a request rejected on a fresh key', async () => {
      await store.hit('c', [{ id: 'full', amount: 1, windowMs: HOUR }], 1)
      const rejected = await store.hit(
        'c',
        [
          { id: 'fresh', amount: 5, windowMs: HOUR },
          { id: 'full', amount: 1, windowMs: HOUR },
        ],
        1,
      )
      expect(rejected).toEqual({ allowed: false, used: [0, 1], resetMs: [HOUR, expect.any(Number)] })
      expect(await admin.exists(redisKey('c', 'fresh'))).toBe(0)
    })

    it('charges a cost above 1 whole and never a cost that does not fit', async () => {
      const window = [{ id: 'k', amount: 5, windowMs: MINUTE }]
      expect(await store.hit('c', window, 6)).toMatchObject({ allowed: false, used: [0] })
      expect(await store.hit('c', window, 3)).toMatchObject({ allowed: true, used: [3] })
      expect(await store.hit('c', window, 3)).toMatchObject({ allowed: false, used: [3] })
      expect(await store.hit('c', window, 2)).toMatchObject({ allowed: true, used: [5] })
      expect(await admin.get(redisKey('c', 'k'))).toBe('5')
    })

    it('lets a cost of 0 through on a full window without counting it', async () => {
      const window = [{ id: 'k', amount: 1, windowMs: MINUTE }]
      expect(await store.hit('c', window, 1)).toMatchObject({ allowed: true, used: [1] })
      expect(await store.hit('c', window, 0)).toMatchObject({ allowed: true, used: [1] })
      expect(await store.hit('c', window, 1)).toMatchObject({ allowed: false, used: [1] })
    })

    it('treats a key left without an expiry as empty rather than counting forever', async () => {
      const key = redisKey('c', 'stale')
      await admin.set(key, '99')
      expect(await store.hit('c', [{ id: 'stale', amount: 3, windowMs: MINUTE }], 1)).toMatchObject({
        allowed: true,
        used: [1],
      })
      expect(await admin.pttl(key)).toBeGreaterThan(0)
    })

    it('shares counters between two stores on two connections', async () => {
      const other = new RedisStore({ client: await client(kind), prefix: storePrefix })
      const window = [{ id: 'shared', amount: 3, windowMs: MINUTE }]
      expect((await store.hit('c', window, 1)).used).toEqual([1])
      expect((await other.hit('c', window, 1)).used).toEqual([2])
      expect((await store.hit('c', window, 1)).used).toEqual([3])
      expect((await other.hit('c', window, 1)).allowed).toBe(false)
      expect((await store.hit('c', window, 1)).allowed).toBe(false)
    })

    it('lets exactly the limit through when two stores race', async () => {
      const other = new RedisStore({ client: await client(kind), prefix: storePrefix })
      const windows = [
        { id: 'minute', amount: 10, windowMs: MINUTE },
        { id: 'hour', amount: 100, windowMs: HOUR },
      ]
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? store : other).hit('c', windows, 1)),
      )
      expect(results.filter((r) => r.allowed)).toHaveLength(10)
      expect(await admin.mget(redisKey('c', 'minute'), redisKey('c', 'hour'))).toEqual(['10', '10'])
    })

    it('sends one script call per hit', async () => {
      const c = await client(kind)
      const calls = countScriptCalls(c)
      const counted = new RedisStore({ client: c, prefix: storePrefix })
      const windows = [
        { id: 'a', amount: 2, windowMs: MINUTE },
        { id: 'b', amount: 9, windowMs: HOUR },
        { id: 'c', amount: 9, windowMs: DAY },
      ]
      for (let i = 0; i < 4; i++) await counted.hit('c', windows, 1)
      expect(calls.evalsha).toHaveBeenCalledTimes(4)
      // EVAL only follows a NOSCRIPT; the shared server may or may not know the script already.
      expect(calls.eval.mock.calls.length).toBeLessThanOrEqual(1)
    })

    it('counts the same keys for a client after more clients than it keeps keys for', async () => {
      const c = await client(kind)
      const many = new RedisStore({ client: c, prefix: storePrefix })
      const windows = [{ id: 'w', amount: 5, windowMs: MINUTE }]
      await many.hit('first', windows, 1)
      // More distinct clients than the store keeps Redis keys for (4 096), so it starts over.
      for (let start = 0; start < 4_200; start += 300) {
        await Promise.all(Array.from({ length: 300 }, (_, i) => many.hit(`client-${start + i}`, windows, 1)))
      }
      expect((await many.hit('first', windows, 1)).used).toEqual([2])
      expect(await admin.get(redisKey('first', 'w'))).toBe('2')
      expect(await admin.get(redisKey('client-4199', 'w'))).toBe('1')
    })

    it("asks for the server's time once a second, not on every call", async () => {
      const c = await client(kind)
      const calls = countScriptCalls(c)
      const asking = new RedisStore({ client: c, prefix: storePrefix })
      const windows = [{ id: 'clock', amount: 9, windowMs: MINUTE }]
      for (let i = 0; i < 3; i++) await asking.hit('c', windows, 1)
      // ARGV[1] is "cost offset time base amount window": the third number asks for the time.
      const argv = calls.evalsha.mock.calls.map((call) =>
        c instanceof Redis ? String(call[3]) : (call[1] as { arguments: string[] }).arguments[0]!,
      )
      expect(argv.map((a) => a.split(' ')[2])).toEqual(['1', '0', '0'])
      expect(argv.every((a) => a.split(' ').length === 6)).toBe(true)
    })

    it('rejects at once with StoreUnavailableError when the client is not connected', async () => {
      const closed = await connect(kind)
      closeClient(closed)
      await waitFor('the client to notice it is closed', () => !clientReady(closed))
      const calls = countScriptCalls(closed)
      const down = new RedisStore({ client: closed, timeoutMs: 10_000, prefix: storePrefix })
      const started = Date.now()
      await expect(down.hit('c', [{ id: 'k', amount: 1, windowMs: MINUTE }], 1)).rejects.toThrow(
        StoreUnavailableError,
      )
      // Generous bound: the point is that it did not wait for timeoutMs.
      expect(Date.now() - started).toBeLessThan(2_000)
      expect(calls.evalsha).not.toHaveBeenCalled()
    })
  })

  it('rejects at once when a node-redis client was never connected', async () => {
    const never = await connectNodeRedis(REDIS_URL, { connect: false })
    const down = new RedisStore({ client: never, timeoutMs: 10_000, prefix: storePrefix })
    const error = await down.hit('c', [{ id: 'k', amount: 1, windowMs: MINUTE }], 1).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StoreUnavailableError)
    expect((error as Error).message).toMatch(/not ready/)
  })

  it('sends the first hit of a lazyConnect ioredis client, which connects it', async () => {
    const lazy = await connectIoRedis(REDIS_URL, { lazyConnect: true })
    clients.push(lazy)
    expect(lazy.status).toBe('wait')
    const store = new RedisStore({ client: lazy, prefix: storePrefix })
    expect(await store.hit('c', [{ id: 'lazy', amount: 2, windowMs: MINUTE }], 1)).toMatchObject({
      allowed: true,
      used: [1],
    })
    expect(await admin.get(redisKey('c', 'lazy'))).toBe('1')
    expect(lazy.status).toBe('ready')
  })

  it('shares counters between an ioredis store and a node-redis store', async () => {
    const io = new RedisStore({ client: await client('ioredis'), prefix: storePrefix })
    const nr = new RedisStore({ client: await client('node-redis'), prefix: storePrefix })
    const windows = [
      { id: 'x', amount: 2, windowMs: MINUTE },
      { id: 'y', amount: 3, windowMs: HOUR },
    ]
    expect(await io.hit('c', windows, 1)).toMatchObject({ allowed: true, used: [1, 1] })
    expect(await nr.hit('c', windows, 1)).toMatchObject({ allowed: true, used: [2, 2] })
    expect(await io.hit('c', windows, 1)).toMatchObject({ allowed: false, used: [2, 2] })
    expect(await nr.hit('c', windows, 1)).toMatchObject({ allowed: false, used: [2, 2] })
  })
})

describe.skipIf(skipWithoutRedisServer).each(CLIENT_KINDS)(
  'RedisStore with %s on a private redis-server',
  (kind) => {
    let server: PrivateRedis
    let admin: Redis
    let client: AnyClient

    beforeAll(async () => {
      requireRedisServer()
      server = await PrivateRedis.start()
      admin = await connectIoRedis(server.url)
      client = await connect(kind, server.url)
    })

    afterEach(() => {
      server.resume()
    })

    afterAll(async () => {
      if (client !== undefined) closeClient(client)
      admin?.disconnect()
      await server?.stop()
    })

    it('sends one EVALSHA per hit, and EVAL once after the server forgot the script', async () => {
      await admin.script('FLUSH')
      await admin.config('RESETSTAT')
      const calls = countScriptCalls(client)
      const store = new RedisStore({ client, prefix: 'k:' })
      const windows = [
        { id: 'a', amount: 3, windowMs: MINUTE },
        { id: 'b', amount: 9, windowMs: HOUR },
      ]
      const results: HitResult[] = []
      for (let i = 0; i < 5; i++) results.push(await store.hit('c', windows, 1))
      expect(results.map((r) => r.allowed)).toEqual([true, true, true, false, false])
      expect(calls.evalsha).toHaveBeenCalledTimes(5)
      expect(calls.eval).toHaveBeenCalledTimes(1)

      // The server's own count: no other round trip hides behind the client calls.
      const stats = (await admin.info('commandstats')).split('\r\n')
      const stat = (name: string) => stats.find((line) => line.startsWith(`cmdstat_${name}:`))
      expect(stat('evalsha')).toMatch(/calls=5,.*failed_calls=1/)
      expect(stat('eval')).toMatch(/calls=1,/)
      calls.evalsha.mockRestore()
      calls.eval.mockRestore()
    })

    it('gives up after timeoutMs with StoreUnavailableError when Redis does not answer', async () => {
      const store = new RedisStore({ client, timeoutMs: 300, prefix: 'k:' })
      server.pause()
      const started = Date.now()
      const error = await store
        .hit('c', [{ id: 'slow', amount: 1, windowMs: MINUTE }], 1)
        .catch((e: unknown) => e)
      const waited = Date.now() - started
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect((error as Error).message).toBe('Redis did not answer within 300 ms')
      expect(waited).toBeGreaterThanOrEqual(290)
      expect(waited).toBeLessThan(5_000)

      server.resume()
      // The store itself is not broken by a timeout: the next call is answered normally.
      await expect(store.hit('c', [{ id: 'after', amount: 1, windowMs: MINUTE }], 1)).resolves.toMatchObject({
        allowed: true,
      })
    })

    it('fails fast while the server is gone and works again once it is back', async () => {
      const store = new RedisStore({ client, timeoutMs: 300, prefix: 'k:' })
      await server.kill()
      await waitFor('the client to notice the server is gone', () => !clientReady(client))
      const started = Date.now()
      await expect(store.hit('c', [{ id: 'gone', amount: 1, windowMs: MINUTE }], 1)).rejects.toThrow(
        StoreUnavailableError,
      )
      expect(Date.now() - started).toBeLessThan(250)

      await server.restart()
      await waitFor('the client to reconnect', () => clientReady(client))
      // A fresh server knows no script: EVALSHA falls back to EVAL by itself.
      await expect(store.hit('c', [{ id: 'back', amount: 1, windowMs: MINUTE }], 1)).resolves.toEqual({
        allowed: true,
        used: [1],
        resetMs: [MINUTE],
      })
    })
  },
)

describe('RedisStore reply checks', () => {
  const fake = (reply: unknown): RedisClientLike => ({
    status: 'ready',
    evalsha: async () => reply,
    eval: async () => reply,
  })

  it('rejects a reply of the wrong shape instead of guessing', async () => {
    const store = new RedisStore({ client: fake([1, 1]) })
    await expect(
      store.hit(
        'c',
        [
          { id: 'a', amount: 1, windowMs: 1 },
          { id: 'b', amount: 1, windowMs: 1 },
        ],
        1,
      ),
    ).rejects.toThrow(/Unexpected reply from the rate-limit script \(an array of 2 items\)/)
  })

  it('passes a Redis error other than NOSCRIPT through without retrying with EVAL', async () => {
    const evalCalls = vi.fn(async () => [1, 1, 1])
    const store = new RedisStore({
      client: {
        status: 'ready',
        evalsha: async () => {
          throw new Error('WRONGTYPE Operation against a key holding the wrong kind of value')
        },
        eval: evalCalls,
      },
    })
    await expect(store.hit('c', [{ id: 'a', amount: 1, windowMs: 1 }], 1)).rejects.toThrow(/^WRONGTYPE/)
    expect(evalCalls).not.toHaveBeenCalled()
  })
})

describe.skipIf(skipWithoutRedis)('the script deadline and what counts as an outage', () => {
  let admin: Redis
  beforeAll(async () => {
    requireSharedRedis()
    admin = await connectIoRedis(REDIS_URL)
  })
  afterAll(() => admin?.disconnect())

  it('a call that reaches Redis after its deadline is refused and counts nothing', async () => {
    const prefix = uniquePrefix()
    const key = `${prefix}{c}:w`
    const past = String(Date.now() - 60_000)
    const reply = replyIntegerList(await admin.eval(HIT_SCRIPT, 1, key, `1 ${past} 1 0 5 ${MINUTE}`))
    expect(reply[0]).toBe(-1)
    expect(Math.abs(Number(reply[1]) - Date.now())).toBeLessThan(60_000)
    expect(await admin.exists(key)).toBe(0)
    const future = String(Date.now() + 60_000)
    const counted = replyIntegerList(await admin.eval(HIT_SCRIPT, 1, key, `1 ${future} 1 0 5 ${MINUTE}`))
    expect(counted.slice(0, 2)).toEqual([1, 1])
    await admin.del(key)
  })

  it('answers counts up to the 15-digit cap exactly (Lua would round them to 14 digits)', async () => {
    const key = `${uniquePrefix()}{c}:w`
    const big = 999_999_999_999_999
    const future = String(Date.now() + 60_000)
    const charge = (cost: number) => admin.eval(HIT_SCRIPT, 1, key, `${cost} ${future} 0 0 ${big} ${MINUTE}`)
    expect(replyIntegerList(await charge(big - 1)).slice(0, 2)).toEqual([1, big - 1])
    expect(replyIntegerList(await charge(1)).slice(0, 2)).toEqual([1, big])
    expect(replyIntegerList(await charge(1)).slice(0, 2)).toEqual([0, big])
    await admin.del(key)
  })

  it('tells a Redis that cannot answer from a call that is wrong', async () => {
    expect(isRedisOutage(new StoreUnavailableError('not ready'))).toBe(true)
    expect(isRedisOutage(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(
      true,
    )
    const wrong = await admin
      .eval('return redis.call("INCR", KEYS[1], 1, 2)', 1, 'x')
      .catch((e: unknown) => e)
    expect(isRedisOutage(wrong)).toBe(false)
    // A server that is loading or failing over answers with an error, but is down for our purpose.
    const loading = Object.assign(Object.create(Object.getPrototypeOf(wrong)), {
      message: 'LOADING Redis is loading',
    })
    expect(isRedisOutage(loading)).toBe(true)
    expect(isRedisOutage(new TypeError('Unexpected reply from the rate-limit script'))).toBe(false)
  })

  it('a wrong call through the engine is a 500-worthy failure, not an outage: nothing falls back', async () => {
    const prefix = uniquePrefix()
    const logger = { warn: vi.fn(), info: vi.fn() }
    const engine = new LimitEngine<unknown>({ keyPrefix: prefix, logger, store: { redis: admin } }, logger)
    const limit = engine.route('GET /w', '5 per minute', 'GET /w')!
    // Someone else's value of another type under the counter's name: WRONGTYPE from the script.
    await admin.hset(`${prefix}{10.0.0.7}:GET /w:5-per-minute`, 'f', '1')
    await admin.pexpire(`${prefix}{10.0.0.7}:GET /w:5-per-minute`, MINUTE)
    for (let i = 0; i < 3; i++) expect(await limit.check({}, '10.0.0.7')).toBeInstanceOf(LimitCheckFailure)
    expect((engine.store as InsuredStore).degraded).toBe(false)
    expect(logger.warn).toHaveBeenCalledOnce()
    expect(String(logger.warn.mock.calls[0]?.[0])).toMatch(/rate-limit store failed \(WRONGTYPE/)
    // Other clients keep counting in Redis.
    expect(await limit.check({}, '10.0.0.8')).toMatchObject({ allowed: true })
    await engine.close()
    await admin.del(`${prefix}{10.0.0.7}:GET /w:5-per-minute`, `${prefix}{10.0.0.8}:GET /w:5-per-minute`)
  })
})
