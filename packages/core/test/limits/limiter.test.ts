import { afterEach, describe, expect, it } from 'vitest'
import {
  type HitResult,
  type LimitDecision,
  type LimitStore,
  MemoryStore,
  parseLimits,
  RateLimiter,
  type RedisClientLike,
  RedisStore,
  type WindowGroup,
  type WindowSpec,
} from '../../src/internal.js'

const SECOND = 1_000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE

const stores: MemoryStore[] = []
afterEach(() => {
  for (const store of stores.splice(0)) store.close()
})

function limiterAt(groups: WindowGroup[] | string) {
  const clock = { now: 5_000_000 }
  const store = new MemoryStore({ now: () => clock.now })
  stores.push(store)
  const resolved = typeof groups === 'string' ? [{ scope: 'route', items: parseLimits(groups) }] : groups
  return { limiter: new RateLimiter(store, resolved), clock, store }
}

/** The memory store answers synchronously; asserting it keeps the tests free of awaits. */
function hit(limiter: RateLimiter, key: string, cost = 1): LimitDecision {
  const decision = limiter.hit(key, cost)
  if (decision instanceof Promise) throw new Error('memory store answered asynchronously')
  return decision
}

/** A store that records the client keys and windows it is asked about and answers as told. */
class RecordingStore implements LimitStore {
  calls: Array<[key: string, windows: WindowSpec[]]> = []
  constructor(readonly answer: (windows: readonly WindowSpec[]) => HitResult) {}
  hit(key: string, windows: readonly WindowSpec[]): HitResult {
    this.calls.push([key, [...windows]])
    return this.answer(windows)
  }
  close(): void {}
}

describe('RateLimiter: policy and keys', () => {
  it('writes RateLimit-Policy with every window, route first then application', () => {
    const { limiter } = limiterAt([
      { scope: 'GET /a', items: parseLimits('50 per hour') },
      { scope: '*application', items: parseLimits('200 per day') },
    ])
    expect(limiter.policyHeader).toBe('"50-per-hour";q=50;w=3600, "200-per-day";q=200;w=86400')
  })

  it('names windows with several units in the policy', () => {
    const { limiter } = limiterAt('1 per 5 seconds, 500/7days')
    expect(limiter.policyHeader).toBe('"1-per-5-seconds";q=1;w=5, "500-per-7-days";q=500;w=604800')
  })

  it('asks the store about the client key and every <scope>:<policy> window in one hit', () => {
    const store = new RecordingStore((w) => ({
      allowed: true,
      used: w.map(() => 1),
      resetMs: w.map(() => 1),
    }))
    const limiter = new RateLimiter(store, [
      { scope: 'GET /a', items: parseLimits('50 per hour, 10/minute') },
      { scope: '*application', items: parseLimits('200 per day') },
    ])
    limiter.hit('10.0.0.1', 2)
    expect(store.calls).toEqual([
      [
        '10.0.0.1',
        [
          { id: 'GET /a:50-per-hour', amount: 50, windowMs: HOUR },
          { id: 'GET /a:10-per-minute', amount: 10, windowMs: MINUTE },
          { id: '*application:200-per-day', amount: 200, windowMs: 24 * HOUR },
        ],
      ],
    ])
  })

  it('ends up at Redis keys <prefix>{<client key>}:<scope>:<policy>, all in one script call', async () => {
    const calls: Array<{ keys: string[]; arguments: string[] }> = []
    const client: RedisClientLike = {
      isReady: true,
      evalSha: async (_sha, options) => {
        calls.push(options)
        return [1, ...options.keys.flatMap(() => [1, MINUTE]), Date.now()].join(' ')
      },
      eval: async () => {
        throw new Error('EVAL is only for a server that lacks the script')
      },
    }
    const limiter = new RateLimiter(new RedisStore({ client, prefix: 'tg:' }), [
      { scope: 'GET /a', items: parseLimits('50 per hour, 10/minute') },
      { scope: '*application', items: parseLimits('200 per day') },
    ])
    await limiter.hit('10.0.0.1', 2)
    expect(calls.map((c) => c.keys)).toEqual([
      [
        'tg:{10.0.0.1}:GET /a:50-per-hour',
        'tg:{10.0.0.1}:GET /a:10-per-minute',
        'tg:{10.0.0.1}:*application:200-per-day',
      ],
    ])
    // A `}` in the client key would end the hash tag early: it is escaped, reversibly (`%` too).
    await limiter.hit('}user%1', 1)
    expect(calls[1]!.keys[0]).toBe('tg:{%7Duser%251}:GET /a:50-per-hour')
  })

  it('counts a limit written twice in one scope once', () => {
    const { limiter } = limiterAt('2 per minute, 2/minute')
    expect(limiter.items).toHaveLength(1)
    expect(hit(limiter, 'k').allowed).toBe(true)
    expect(hit(limiter, 'k').allowed).toBe(true)
    expect(hit(limiter, 'k').allowed).toBe(false)
  })

  it('refuses to be built without any limit', () => {
    expect(
      () => new RateLimiter(new RecordingStore(() => ({ allowed: true, used: [], resetMs: [] })), []),
    ).toThrow(/at least one limit/)
  })

  it('returns a promise when the store is asynchronous', async () => {
    const store: LimitStore = {
      hit: async (_key, w) => ({ allowed: true, used: w.map(() => 1), resetMs: w.map((x) => x.windowMs) }),
      close: () => {},
    }
    const pending = new RateLimiter(store, [{ scope: 's', items: parseLimits('5/minute') }]).hit('k', 1)
    expect(pending).toBeInstanceOf(Promise)
    await expect(pending).resolves.toMatchObject({ allowed: true, limit: '5 per minute' })
  })
})

describe('RateLimiter: decisions', () => {
  it('describes the allowed request by the window closest to running out', () => {
    const { limiter } = limiterAt('3 per minute, 10 per hour')
    const first = hit(limiter, 'k')
    expect(first).toMatchObject({ allowed: true, key: 'k', retryAfter: 0, limit: '3 per minute' })
    expect(first.binding).toMatchObject({ policy: '3-per-minute', used: 1, remaining: 2, resetMs: MINUTE })
    expect(first.windows.map((w) => [w.policy, w.used, w.remaining])).toEqual([
      ['3-per-minute', 1, 2],
      ['10-per-hour', 1, 9],
    ])

    const { limiter: hourTighter } = limiterAt('10 per minute, 3 per hour')
    expect(hit(hourTighter, 'k')).toMatchObject({ limit: '3 per hour', binding: { remaining: 2 } })
  })

  it('picks the window with the longer wait when two have as much left', () => {
    const { limiter } = limiterAt('5 per minute, 5 per hour')
    expect(hit(limiter, 'k')).toMatchObject({ limit: '5 per hour', binding: { resetMs: HOUR } })
  })

  it('names the rejecting window, not a tighter-looking one that still has room', () => {
    const { limiter, clock } = limiterAt('2 per minute, 3 per hour')
    hit(limiter, 'k')
    hit(limiter, 'k')
    clock.now += 15 * SECOND
    const rejected = hit(limiter, 'k')
    expect(rejected).toMatchObject({ allowed: false, limit: '2 per minute', retryAfter: 45 })
    expect(rejected.binding).toMatchObject({ policy: '2-per-minute', used: 2, remaining: 0 })
    expect(rejected.windows[1]).toMatchObject({ used: 2, remaining: 1 })

    clock.now += 45 * SECOND
    expect(hit(limiter, 'k')).toMatchObject({
      allowed: true,
      limit: '3 per hour',
      binding: { remaining: 0 },
    })
    const byHour = hit(limiter, 'k')
    expect(byHour).toMatchObject({ allowed: false, limit: '3 per hour', retryAfter: 3600 - 60 })
  })

  it('names the longest wait when several windows reject', () => {
    const { limiter } = limiterAt('1 per minute, 1 per hour')
    hit(limiter, 'k')
    expect(hit(limiter, 'k')).toMatchObject({ allowed: false, limit: '1 per hour', retryAfter: 3600 })
  })

  it('counts a window without room for the cost as rejecting, even with some left', () => {
    const { limiter } = limiterAt('10 per minute, 4 per hour')
    hit(limiter, 'k', 3)
    // Minute has 7 left, hour 1: a cost of 2 only fails the hour.
    const rejected = hit(limiter, 'k', 2)
    expect(rejected).toMatchObject({ allowed: false, limit: '4 per hour', retryAfter: 3600 })
    expect(rejected.windows.map((w) => w.used)).toEqual([3, 3])
  })

  it('rounds retryAfter up to whole seconds and never below 1', () => {
    const { limiter, clock } = limiterAt('1 per minute')
    hit(limiter, 'k')
    clock.now += MINUTE - 1_500
    expect(hit(limiter, 'k').retryAfter).toBe(2)
    clock.now += 1_499
    const last = hit(limiter, 'k')
    expect(last.binding.resetMs).toBe(1)
    expect(last.retryAfter).toBe(1)
  })

  it('writes the limit the way flask-limiter does, with the window multiple', () => {
    expect(hit(limiterAt('50 per hour').limiter, 'k').limit).toBe('50 per hour')
    expect(hit(limiterAt('1 per 5 seconds').limiter, 'k').limit).toBe('1 per 5 seconds')
  })

  it('reports used and remaining from the store, clamping a store reset time below 0', () => {
    const store = new RecordingStore(() => ({ allowed: false, used: [7], resetMs: [-5] }))
    const limiter = new RateLimiter(store, [{ scope: 's', items: parseLimits('5 per minute') }])
    const decision = hit(limiter, 'k')
    expect(decision.binding).toMatchObject({ used: 7, remaining: 0, resetMs: 0 })
    expect(decision.retryAfter).toBe(1)
  })

  it('shares a scope between limiters on one store and keeps other scopes apart', () => {
    const clock = { now: 0 }
    const store = new MemoryStore({ now: () => clock.now })
    stores.push(store)
    const app = { scope: '*application', items: parseLimits('3 per minute') }
    const a = new RateLimiter(store, [{ scope: 'a', items: parseLimits('2 per minute') }, app])
    const b = new RateLimiter(store, [{ scope: 'b', items: parseLimits('2 per minute') }, app])
    expect(hit(a, 'k').allowed).toBe(true)
    expect(hit(a, 'k').allowed).toBe(true)
    expect(hit(a, 'k')).toMatchObject({ allowed: false, limit: '2 per minute' })
    const viaB = hit(b, 'k')
    expect(viaB.allowed).toBe(true)
    expect(viaB.windows.map((w) => w.used)).toEqual([1, 3])
    expect(hit(b, 'k')).toMatchObject({ allowed: false, limit: '3 per minute' })
    // Another client has its own counters everywhere.
    expect(hit(b, 'other').windows.map((w) => w.used)).toEqual([1, 1])
  })
})

describe('policy names in the headers', () => {
  it('the same limit in two scopes gets two names, so RateLimit-Policy identifies each policy', () => {
    const { limiter } = limiterAt([
      { scope: 'GET /a', items: parseLimits('50 per hour, 10 per minute') },
      { scope: '*application', items: parseLimits('50 per hour'), label: 'application' },
    ])
    expect(limiter.policyHeader).toBe(
      '"50-per-hour";q=50;w=3600, "10-per-minute";q=10;w=60, "application-50-per-hour";q=50;w=3600',
    )
    const decision = hit(limiter, 'k')
    expect(decision.windows.map((w) => w.policy)).toEqual([
      '50-per-hour',
      '10-per-minute',
      'application-50-per-hour',
    ])
    // Both 50-per-hour windows count: they are two counters, not one.
    expect(decision.windows.map((w) => w.used)).toEqual([1, 1, 1])
  })

  it('clamps what a store reports to the window, so reset never exceeds the window', () => {
    const store: LimitStore = {
      hit: (_key, windows) => ({
        allowed: true,
        used: windows.map(() => 1),
        resetMs: windows.map(() => 1e20),
      }),
      close: () => {},
    }
    const decision = new RateLimiter(store, [{ scope: 's', items: parseLimits('5 per minute') }]).hit('k', 1)
    expect((decision as LimitDecision).binding.resetMs).toBe(MINUTE)
  })
})
