import type { Redis } from 'ioredis'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  type HitResult,
  InsuredStore,
  LimitCheckFailure,
  type LimitDecision,
  LimitEngine,
  type LimitStore,
  MemoryStore,
  PROBE_FIRST_MS,
  PROBE_MAX_MS,
  type RouteLimit,
  type StoreErrorMode,
  StoreUnavailableError,
  type WindowSpec,
} from '../../src/internal.js'
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
  requireRedisServer,
  requireSharedRedis,
  skipWithoutRedis,
  skipWithoutRedisServer,
  uniquePrefix,
} from './redis-helpers.js'

const MINUTE = 60_000
const windows: WindowSpec[] = [{ id: 'GET /x:2-per-minute', amount: 2, windowMs: MINUTE }]

/** A primary store whose health the test switches, answering like a store that always has room. */
class SwitchableStore implements LimitStore {
  up = true
  sync = false
  calls = 0
  keys: string[] = []
  closed = false
  hit(key: string, w: readonly WindowSpec[]): HitResult | Promise<HitResult> {
    this.calls++
    this.keys.push(key)
    const result = { allowed: true, used: w.map(() => 1), resetMs: w.map((x) => x.windowMs) }
    if (this.sync) {
      if (!this.up) throw new StoreUnavailableError('down (sync)')
      return result
    }
    return this.up ? Promise.resolve(result) : Promise.reject(new StoreUnavailableError('down'))
  }
  close(): void {
    this.closed = true
  }
}

function insured(mode: StoreErrorMode, logger = { warn: vi.fn(), info: vi.fn() }) {
  const primary = new SwitchableStore()
  const insurance = new MemoryStore()
  const clock = { now: 1_000_000 }
  const store = new InsuredStore({ primary, insurance, mode, logger, now: () => clock.now })
  return { primary, insurance, store, logger, clock }
}

describe('InsuredStore', () => {
  it('answers from the primary while it is up, logging nothing', async () => {
    const { store, primary, logger, insurance } = insured('insurance')
    for (let i = 0; i < 3; i++)
      expect(await store.hit('k', windows, 1)).toMatchObject({ allowed: true, used: [1] })
    expect(store.degraded).toBe(false)
    expect(insurance.size).toBe(0)
    expect(primary.keys).toEqual(['k', 'k', 'k'])
    expect(logger.warn).not.toHaveBeenCalled()
    expect(logger.info).not.toHaveBeenCalled()
    await store.close()
  })

  it('insurance: counts in memory while the primary fails, warning once per outage', async () => {
    const { store, primary, logger, clock } = insured('insurance')
    primary.up = false
    const results = []
    for (let i = 0; i < 5; i++) results.push(await store.hit('k', windows, 1))
    expect(results.map((r) => r.allowed)).toEqual([true, true, false, false, false])
    expect(results.map((r) => r.used[0])).toEqual([1, 2, 2, 2, 2])
    expect(store.degraded).toBe(true)
    // Known down: the primary is not asked again until the first probe is due.
    expect(primary.calls).toBe(1)
    clock.now += PROBE_FIRST_MS
    await store.hit('k', windows, 1)
    expect(primary.calls).toBe(2)
    // The insurance counts per client, as the primary would.
    expect(await store.hit('other', windows, 1)).toMatchObject({ allowed: true, used: [1] })
    expect(logger.warn).toHaveBeenCalledOnce()
    expect(logger.warn.mock.calls[0]![0]).toBe(
      'tollgate: rate-limit store unavailable (down); counting in this process only until it answers again',
    )

    primary.up = true
    clock.now += PROBE_MAX_MS
    for (let i = 0; i < 3; i++)
      expect(await store.hit('k', windows, 1)).toMatchObject({ allowed: true, used: [1] })
    expect(store.degraded).toBe(false)
    expect(logger.info).toHaveBeenCalledOnce()
    expect(logger.info).toHaveBeenCalledWith('tollgate: rate-limit store is back; shared counting resumed')

    // A second outage is a new event and is reported again, once.
    primary.up = false
    for (let i = 0; i < 3; i++) await store.hit('k', windows, 1)
    expect(logger.warn).toHaveBeenCalledTimes(2)
    await store.close()
  })

  it('warns once when many requests fail at the same time', async () => {
    const { store, primary, logger } = insured('insurance')
    primary.up = false
    const results = await Promise.all(Array.from({ length: 20 }, () => store.hit('k', windows, 1)))
    expect(results.filter((r) => r.allowed)).toHaveLength(2)
    expect(logger.warn).toHaveBeenCalledOnce()
    await store.close()
  })

  it('allow: lets every request through while the primary fails', async () => {
    const { store, primary, logger } = insured('allow')
    primary.up = false
    for (let i = 0; i < 5; i++) {
      expect(await store.hit('k', windows, 1)).toEqual({ allowed: true, used: [0], resetMs: [MINUTE] })
    }
    expect(logger.warn).toHaveBeenCalledOnce()
    expect(logger.warn.mock.calls[0]![0]).toContain('letting every request through')
    await store.close()
  })

  it('deny: rejects every request while the primary fails', async () => {
    const { store, primary, logger } = insured('deny')
    primary.up = false
    for (let i = 0; i < 5; i++) {
      expect(await store.hit('k', windows, 1)).toEqual({ allowed: false, used: [2], resetMs: [1_000] })
    }
    expect(logger.warn).toHaveBeenCalledOnce()
    expect(logger.warn.mock.calls[0]![0]).toContain('rejecting every request')
    await store.close()
  })

  it('handles a primary that throws synchronously, and stays synchronous with a sync primary', async () => {
    const { store, primary, logger } = insured('insurance')
    primary.sync = true
    const ok = store.hit('k', windows, 1)
    expect(ok).not.toBeInstanceOf(Promise)
    primary.up = false
    const fallback = store.hit('k', windows, 1)
    expect(fallback).not.toBeInstanceOf(Promise)
    expect(fallback).toMatchObject({ allowed: true, used: [1] })
    expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('down (sync)'))
    await store.close()
  })

  it('probes one request at a time while down, backing off, and resumes on the first good probe', async () => {
    const { store, primary, clock } = insured('insurance')
    primary.up = false
    await store.hit('k', windows, 1)
    const probesAt: number[] = []
    const start = clock.now
    for (let t = 0; t <= 20_000; t += 100) {
      clock.now = start + t
      const before = primary.calls
      // Many requests at each instant: at most one of them is a probe.
      await Promise.all([1, 2, 3].map(() => store.hit('k', windows, 1)))
      if (primary.calls > before) probesAt.push(t)
      expect(primary.calls - before).toBeLessThanOrEqual(1)
    }
    // 0.5 s, then 1, 2, 4 s later, then every 5 s.
    expect(probesAt).toEqual([500, 1_500, 3_500, 7_500, 12_500, 17_500])
    primary.up = true
    clock.now += PROBE_MAX_MS
    await store.hit('k', windows, 1)
    expect(store.degraded).toBe(false)
    const calls = primary.calls
    await store.hit('k', windows, 1)
    expect(primary.calls).toBe(calls + 1)
    await store.close()
  })

  it('a wrong call (not an outage) is rethrown, not answered by the fallback nor logged as an outage', async () => {
    const logger = { warn: vi.fn(), info: vi.fn() }
    const primary: LimitStore = {
      hit: () => Promise.reject(new Error('CROSSSLOT Keys in request do not hash to the same slot')),
      close: () => {},
    }
    const store = new InsuredStore({
      primary,
      insurance: new MemoryStore(),
      mode: 'insurance',
      logger,
      isOutage: (error) => error instanceof StoreUnavailableError,
    })
    await expect(store.hit('k', windows, 1)).rejects.toThrow(/CROSSSLOT/)
    expect(store.degraded).toBe(false)
    expect(logger.warn).not.toHaveBeenCalled()
    await store.close()
  })

  it('reports recovery through warn when the logger has no info', async () => {
    const logger = { warn: vi.fn() }
    const primary = new SwitchableStore()
    const clock = { now: 0 }
    const store = new InsuredStore({
      primary,
      insurance: new MemoryStore(),
      mode: 'insurance',
      logger,
      now: () => clock.now,
    })
    primary.up = false
    await store.hit('k', windows, 1)
    primary.up = true
    clock.now += PROBE_FIRST_MS
    await store.hit('k', windows, 1)
    expect(logger.warn).toHaveBeenCalledTimes(2)
    expect(logger.warn).toHaveBeenLastCalledWith(
      'tollgate: rate-limit store is back; shared counting resumed',
    )
    await store.close()
  })

  it('closes both stores', async () => {
    const { store, primary, insurance } = insured('insurance')
    primary.up = false
    await store.hit('k', windows, 1)
    expect(insurance.size).toBe(1)
    await store.close()
    expect(primary.closed).toBe(true)
    expect(insurance.size).toBe(0)
  })
})

type AnyClient = Redis | NodeRedisClient

function connect(kind: ClientKind, url: string): Promise<AnyClient> {
  return kind === 'ioredis' ? connectIoRedis(url) : connectNodeRedis(url)
}

interface Req {
  ip: string
}

async function decide(limit: RouteLimit<Req>, ip = '10.0.0.1'): Promise<LimitDecision> {
  const decision = await limit.check({ ip }, ip)
  if (decision === null || decision instanceof LimitCheckFailure) throw new Error('expected a decision')
  return decision
}

async function decideMany(limit: RouteLimit<Req>, count: number): Promise<boolean[]> {
  const out: boolean[] = []
  for (let i = 0; i < count; i++) out.push((await decide(limit)).allowed)
  return out
}

async function waitUntil(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
): Promise<void> {
  await vi.waitFor(
    async () => {
      if (!(await condition())) throw new Error(`still waiting for ${what}`)
    },
    { timeout: timeoutMs, interval: 10 },
  )
}

describe.skipIf(skipWithoutRedisServer).each(CLIENT_KINDS)(
  'LimitEngine with %s when Redis goes away',
  (kind) => {
    let server: PrivateRedis | undefined
    let client: AnyClient | undefined
    let admin: Redis | undefined
    let engine: LimitEngine<Req> | undefined

    afterEach(async () => {
      await engine?.close()
      if (client !== undefined) closeClient(client)
      admin?.disconnect()
      await server?.stop()
      engine = client = admin = server = undefined
    })

    async function setUp(onError?: StoreErrorMode) {
      requireRedisServer()
      server = await PrivateRedis.start()
      client = await connect(kind, server.url)
      admin = await connectIoRedis(server.url)
      const logger = { warn: vi.fn(), info: vi.fn() }
      const keyPrefix = uniquePrefix()
      engine = new LimitEngine<Req>(
        { keyPrefix, logger, store: { redis: client, timeoutMs: 300, ...(onError ? { onError } : {}) } },
        { warn: () => {} },
      )
      const limit = engine.route('GET /x', '3 per minute', 'GET /x')!
      const redisCount = async () => admin!.get(`${keyPrefix}{10.0.0.1}:GET /x:3-per-minute`)
      const store = engine.store as InsuredStore
      /** Requests of another client until one of them is the probe that finds Redis back. */
      const untilShared = () =>
        waitUntil('a probe to find Redis back', async () => {
          await decide(limit, '10.9.9.9')
          return !store.degraded
        })
      return { server, client, logger, limit, redisCount, untilShared }
    }

    it('insurance: keeps answering and limiting from memory, logs the outage and the recovery once', async () => {
      const { server, client, logger, limit, redisCount, untilShared } = await setUp()
      expect(await decideMany(limit, 2)).toEqual([true, true])
      expect(await redisCount()).toBe('2')

      await server.kill()
      // A hit sent before the client notices would sit in ioredis' resend queue and could land on
      // the restarted server later, making the Redis count below depend on timing.
      await waitUntil('the client to notice', () => !clientReady(client))
      // Answered without throwing, and still limited: the insurance store starts its own window.
      expect(await decideMany(limit, 5)).toEqual([true, true, true, false, false])
      const rejected = await decide(limit)
      expect(rejected).toMatchObject({ allowed: false, limit: '3 per minute' })
      expect(rejected.retryAfter).toBeGreaterThanOrEqual(1)
      expect(logger.warn).toHaveBeenCalledOnce()
      expect(logger.warn.mock.calls[0]![0]).toMatch(
        /^tollgate: rate-limit store unavailable \(.+\); counting in/,
      )
      expect(logger.info).not.toHaveBeenCalled()

      await server.restart()
      await waitUntil('the client to reconnect', () => clientReady(client))
      await untilShared()
      // The restarted server is empty, so Redis counting starts over at 1.
      expect(await decideMany(limit, 4)).toEqual([true, true, true, false])
      expect(await redisCount()).toBe('3')
      expect(logger.info).toHaveBeenCalledOnce()
      expect(logger.info).toHaveBeenCalledWith('tollgate: rate-limit store is back; shared counting resumed')
      expect(logger.warn).toHaveBeenCalledOnce()
    })

    it('allow: lets every request through while Redis is gone', async () => {
      const { server, logger, limit } = await setUp('allow')
      expect(await decideMany(limit, 3)).toEqual([true, true, true])
      expect((await decide(limit)).allowed).toBe(false)
      await server.kill()
      expect(await decideMany(limit, 6)).toEqual([true, true, true, true, true, true])
      expect(logger.warn).toHaveBeenCalledOnce()
      expect(logger.warn.mock.calls[0]![0]).toContain('letting every request through')
    })

    it('deny: rejects every request while Redis is gone, and counts in Redis again once back', async () => {
      const { server, client, logger, limit, redisCount, untilShared } = await setUp('deny')
      await server.kill()
      await waitUntil('the client to notice', () => !clientReady(client))
      const denied = await decide(limit)
      expect(denied).toMatchObject({ allowed: false, retryAfter: 1, limit: '3 per minute' })
      expect(await decideMany(limit, 4)).toEqual([false, false, false, false])
      expect(logger.warn).toHaveBeenCalledOnce()
      expect(logger.warn.mock.calls[0]![0]).toContain('rejecting every request')

      await server.restart()
      await waitUntil('the client to reconnect', () => clientReady(client))
      await untilShared()
      expect(await decideMany(limit, 2)).toEqual([true, true])
      expect(await redisCount()).toBe('2')
      expect(logger.info).toHaveBeenCalledOnce()
    })

    it('falls back after timeoutMs when Redis hangs instead of dying', async () => {
      const { server, logger, limit } = await setUp()
      expect((await decide(limit)).allowed).toBe(true)
      server.pause()
      try {
        const started = Date.now()
        expect((await decide(limit)).allowed).toBe(true)
        expect(Date.now() - started).toBeGreaterThanOrEqual(290)
        expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('did not answer within 300 ms'))
      } finally {
        server.resume()
      }
    })

    it('requests answered by insurance while Redis is frozen are not counted in Redis when it wakes', async () => {
      const { server, logger, limit, redisCount, untilShared } = await setUp()
      expect(await decideMany(limit, 2)).toEqual([true, true])
      server.pause()
      try {
        // The first waits timeoutMs and falls back; the rest go straight to insurance, no wait.
        expect(await decideMany(limit, 4)).toEqual([true, true, true, false])
        expect(logger.warn).toHaveBeenCalledOnce()
      } finally {
        server.resume()
      }
      // The frozen call reaches the script now, past its deadline: refused, uncounted.
      await untilShared()
      expect(await redisCount()).toBe('2')
      expect(await decideMany(limit, 2)).toEqual([true, false])
      expect(await redisCount()).toBe('3')
    })
  },
)

describe.skipIf(skipWithoutRedis).each(CLIENT_KINDS)('LimitEngine with %s on the shared Redis', (kind) => {
  it('two engines (two app instances) on one Redis enforce one limit between them', async () => {
    requireSharedRedis()
    const keyPrefix = uniquePrefix()
    const clients = [await connect(kind, REDIS_URL), await connect(kind, REDIS_URL)]
    const admin = await connectIoRedis()
    const engines = clients.map(
      (redis) =>
        new LimitEngine<Req>({ keyPrefix, store: { redis }, applicationLimits: '4 per minute' }, console),
    )
    try {
      const [a, b] = engines.map((e, i) => e.route(`GET /${i}`, '3 per minute', `GET /${i}`)!)
      const order = [a, b, a, b, a, b]
      const allowed: boolean[] = []
      for (const limit of order) allowed.push((await decide(limit!)).allowed)
      // Each route allows 3, but the application's 4 is shared across both instances.
      expect(allowed).toEqual([true, true, true, true, false, false])
      const denied = await decide(b!)
      expect(denied).toMatchObject({ allowed: false, limit: '4 per minute' })
      // Other clients are unaffected.
      expect((await decide(a!, '10.0.0.2')).allowed).toBe(true)
    } finally {
      const keys = await admin.keys(`${keyPrefix}*`)
      if (keys.length > 0) await admin.del(...keys)
      for (const e of engines) await e.close()
      for (const c of clients) closeClient(c)
      admin.disconnect()
    }
  })
})
