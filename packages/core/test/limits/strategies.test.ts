import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type HitResult,
  InsuredStore,
  type LimitStore,
  MemoryStore,
  RedisStore,
  type WindowSpec,
} from '../../src/internal.js'
import { connectIoRedis, requireSharedRedis, skipWithoutRedis, uniquePrefix } from './redis-helpers.js'

/** A time on a multiple of every window below, so sliding-window buckets start at T. */
const T = 1_000_000_000

/** One step of a schedule: at `at` ms after T, a hit of `cost` gives this result. */
interface Step {
  at: number
  cost?: number
  expect: HitResult
}

const moving: WindowSpec = { id: 'mw', amount: 3, windowMs: 10_000, strategy: 'moving-window' }
const sliding: WindowSpec = { id: 'swc', amount: 4, windowMs: 10_000, strategy: 'sliding-window-counter' }

// Hand-computed. A moving window of 3 per 10 s: a hit passes when the hit 3 - cost places back
// (newest first) was more than 10 s ago. resetMs: until the next request like this one fits, or,
// while one fits, until one more unit is free.
const MOVING_SCHEDULE: Step[] = [
  { at: 0, expect: { allowed: true, used: [1], resetMs: [10_000] } }, // its own hit must leave
  { at: 1_000, expect: { allowed: true, used: [2], resetMs: [9_000] } }, // the hit at 0 leaves at 10 000
  { at: 2_000, expect: { allowed: true, used: [3], resetMs: [8_000] } }, // full; the hit at 0 frees one
  { at: 5_000, expect: { allowed: false, used: [3], resetMs: [5_000] } },
  { at: 9_999, expect: { allowed: false, used: [3], resetMs: [1] } },
  // The hit at 0 has left; hits at 1 000, 2 000, 10 000 remain and the one at 1 000 leaves next.
  { at: 10_000, expect: { allowed: true, used: [3], resetMs: [1_000] } },
  { at: 10_500, expect: { allowed: false, used: [3], resetMs: [500] } },
  // Hits at 2 000 and 10 000 remain; a cost of 2 needs the one at 2 000 gone too (at 12 000).
  { at: 11_000, cost: 2, expect: { allowed: false, used: [2], resetMs: [1_000] } },
  // Only the hit at 10 000 remains; a cost of 2 fits (10 000, 12 000, 12 000). Another cost of 2
  // needs two of them gone: the hit at 10 000 and one at 12 000, at 22 000.
  { at: 12_000, cost: 2, expect: { allowed: true, used: [3], resetMs: [10_000] } },
  // A cost of 1 only needs the hit at 10 000 gone, at 20 000.
  { at: 12_001, expect: { allowed: false, used: [3], resetMs: [7_999] } },
  // Long after: an empty log; one unit more than the 2 now left frees when this hit leaves.
  { at: 60_000, expect: { allowed: true, used: [1], resetMs: [10_000] } },
]

// Hand-computed. A sliding window counter of 4 per 10 s, buckets [T, T + 10 s), [T + 10 s, T + 20 s), …
// count = floor(previous × (10 000 − elapsed) / 10 000) + current.
const SLIDING_SCHEDULE: Step[] = [
  // current 1: the count is 0 once the bucket ended and 1 ms of the next passed (floor(1 × 9 999 / 10 000)).
  { at: 0, expect: { allowed: true, used: [1], resetMs: [10_001] } },
  // current 2, 2 left; 3 free means a count of 1: at 1 ms into the next bucket (floor(2 × 9 999 / 10 000) = 1).
  { at: 1_000, expect: { allowed: true, used: [2], resetMs: [9_001] } },
  { at: 2_000, expect: { allowed: true, used: [3], resetMs: [8_001] } },
  // Full: at 10 000 the count is floor(4 × 1) = 4, at 10 001 floor(4 × 0.9999) = 3.
  { at: 3_000, expect: { allowed: true, used: [4], resetMs: [7_001] } },
  { at: 5_000, expect: { allowed: false, used: [4], resetMs: [5_001] } },
  { at: 10_000, expect: { allowed: false, used: [4], resetMs: [1] } },
  // previous 4, elapsed 1: floor(3.9996) = 3, so it passes: 4. Next room when
  // floor(4 × (10 000 − e) / 10 000) <= 2, i.e. e = 2 501: 2 500 ms on.
  { at: 10_001, expect: { allowed: true, used: [4], resetMs: [2_500] } },
  { at: 12_500, expect: { allowed: false, used: [4], resetMs: [1] } },
  // floor(4 × 7 499 / 10 000) + 1 = 3, and this hit makes 4; next room at e = 5 001 (floor(4 × 4 999 / 10 000) = 1).
  { at: 12_501, expect: { allowed: true, used: [4], resetMs: [2_500] } },
  // A cost above the amount never fits: no wait helps.
  { at: 12_502, cost: 5, expect: { allowed: false, used: [4], resetMs: [0] } },
  // Two buckets later both counters are gone.
  { at: 35_000, expect: { allowed: true, used: [1], resetMs: [10_001 - 5_000] } },
]

type StoreFactory = (clock: () => number) => LimitStore | Promise<LimitStore>

async function runSchedule(make: StoreFactory, window: WindowSpec, schedule: Step[]) {
  let now = T
  const store = await make(() => now)
  const key = `client-${Math.random().toString(36).slice(2)}`
  try {
    for (const step of schedule) {
      now = T + step.at
      const result = await store.hit(key, [window], step.cost ?? 1)
      expect({ at: step.at, ...result }).toEqual({ at: step.at, ...step.expect })
    }
  } finally {
    await store.close()
  }
}

/** Two windows: a moving window of 2 and a sliding window counter of 10; the moving one fills first. */
async function runAllOrNothing(make: StoreFactory) {
  let now = T
  const store = await make(() => now)
  const windows: WindowSpec[] = [
    { id: 'a', amount: 2, windowMs: 10_000, strategy: 'moving-window' },
    { id: 'b', amount: 10, windowMs: 60_000, strategy: 'sliding-window-counter' },
  ]
  try {
    expect((await store.hit('k', windows, 1)).allowed).toBe(true)
    now += 100
    expect((await store.hit('k', windows, 1)).allowed).toBe(true)
    now += 100
    for (let i = 0; i < 3; i++) {
      const rejected = await store.hit('k', windows, 1)
      expect(rejected).toMatchObject({ allowed: false, used: [2, 2] })
    }
    now = T + 10_000
    // The rejected hits were charged to neither window: the sliding counter still says 2 before this one.
    expect(await store.hit('k', windows, 1)).toMatchObject({ allowed: true, used: [2, 3] })
  } finally {
    await store.close()
  }
}

describe('the memory store counts each strategy on a hand-computed schedule', () => {
  const memory: StoreFactory = (now) => new MemoryStore({ now })
  it('moving window', () => runSchedule(memory, moving, MOVING_SCHEDULE))
  it('sliding window counter', () => runSchedule(memory, sliding, SLIDING_SCHEDULE))
  it('a request rejected by one window is charged to none', () => runAllOrNothing(memory))

  it('sweeps a moving log and a bucket pair once they count nothing', () => {
    let now = T
    const store = new MemoryStore({ now: () => now })
    store.hit('a', [moving], 1)
    store.hit('a', [sliding], 1)
    now = T + 10_000
    store.sweep()
    expect(store.size).toBe(1) // the sliding pair's current bucket still counts as the previous one
    now = T + 20_000
    store.sweep()
    expect(store.size).toBe(0)
    store.close()
  })

  it('keeps a moving log no longer than the amount', () => {
    let now = T
    const store = new MemoryStore({ now: () => now })
    const big: WindowSpec = { ...moving, amount: 1_000 }
    for (let i = 0; i < 5_000; i++) {
      now = T + i * 20 // 500 hits per 10 s: never full, the log holds the last 500
      expect(store.hit('a', [big], 1).allowed).toBe(true)
    }
    expect(store.hit('a', [big], 1).used).toEqual([501])
    store.close()
  })
})

describe.skipIf(skipWithoutRedis)('the Redis store counts each strategy on the same schedules', () => {
  let redis: Redis
  const prefix = uniquePrefix()
  beforeAll(async () => {
    requireSharedRedis()
    redis = await connectIoRedis()
  })
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
    redis.disconnect()
  })
  const onRedis: StoreFactory = (now) => new RedisStore({ client: redis, prefix, now })

  it('moving window', () => runSchedule(onRedis, moving, MOVING_SCHEDULE))
  it('sliding window counter', () => runSchedule(onRedis, sliding, SLIDING_SCHEDULE))
  it('a request rejected by one window is charged to none', () => runAllOrNothing(onRedis))

  it('on the server clock: a moving window refuses the third hit and names a wait within the window', async () => {
    const store = new RedisStore({ client: redis, prefix })
    const window: WindowSpec = { id: 'live', amount: 2, windowMs: 60_000, strategy: 'moving-window' }
    const mixed: WindowSpec[] = [window, { id: 'fixed', amount: 100, windowMs: 60_000 }]
    expect((await store.hit('live', mixed, 1)).allowed).toBe(true)
    expect((await store.hit('live', mixed, 1)).allowed).toBe(true)
    const third = await store.hit('live', mixed, 1)
    expect(third.allowed).toBe(false)
    expect(third.used).toEqual([2, 2])
    expect(third.resetMs[0]).toBeGreaterThan(0)
    expect(third.resetMs[0]).toBeLessThanOrEqual(60_000)
    // One hash tag per client: every key of the request is in one Cluster slot.
    const keys = (await redis.keys(`${prefix}{live}:*`)).sort()
    expect(keys).toEqual([`${prefix}{live}:fixed`, `${prefix}{live}:live`])
    expect(await redis.type(`${prefix}{live}:live`)).toBe('list')
    expect(await redis.llen(`${prefix}{live}:live`)).toBe(2)
  })
})

describe('which strategies a store offers', () => {
  it('an insured store offers only what both its stores can count by', () => {
    const fixedOnly: LimitStore = { hit: () => ({ allowed: true, used: [0], resetMs: [0] }), close: () => {} }
    const logger = { warn: () => {} }
    const both = new InsuredStore({
      primary: new MemoryStore(),
      insurance: new MemoryStore(),
      mode: 'insurance',
      logger,
    })
    expect(both.strategies).toEqual(['fixed-window', 'moving-window', 'sliding-window-counter'])
    const partial = new InsuredStore({
      primary: fixedOnly,
      insurance: new MemoryStore(),
      mode: 'insurance',
      logger,
    })
    expect(partial.strategies).toEqual(['fixed-window'])
    void both.close()
    void partial.close()
  })
})
