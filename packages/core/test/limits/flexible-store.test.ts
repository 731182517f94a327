import { RateLimiterMemory } from 'rate-limiter-flexible'
import { describe, expect, it } from 'vitest'
import { type FlexibleLimiter, FlexibleStore } from '../../src/limits/flexible-store.js'
import { StoreUnavailableError } from '../../src/limits/redis-store.js'
import type { WindowSpec } from '../../src/limits/store.js'

const minute: WindowSpec = { id: 'r:2-per-minute', amount: 2, windowMs: 60_000 }
const hour: WindowSpec = { id: 'r:10-per-hour', amount: 10, windowMs: 3_600_000 }

function memoryStore(wrap: (limiter: FlexibleLimiter, id: string) => FlexibleLimiter = (l) => l) {
  const limiters = new Map<string, RateLimiterMemory>()
  const store = new FlexibleStore({
    factory: (opts) => {
      const limiter = new RateLimiterMemory(opts)
      limiters.set(opts.keyPrefix, limiter)
      return wrap(limiter, opts.keyPrefix)
    },
    timeoutMs: 100,
  })
  const used = async (spec: WindowSpec, key: string) =>
    (await limiters.get(`tollgate:${spec.id}`)!.get(key))?.consumedPoints ?? 0
  return { store, used }
}

describe('FlexibleStore', () => {
  it('charges every window or none: a rejection by one window is given back by all', async () => {
    const { store, used } = memoryStore()
    expect((await store.hit('k', [minute, hour], 1)).allowed).toBe(true)
    expect((await store.hit('k', [minute, hour], 1)).allowed).toBe(true)
    const rejected = await store.hit('k', [minute, hour], 1)
    expect(rejected).toMatchObject({ allowed: false, used: [2, 2] })
    expect([await used(minute, 'k'), await used(hour, 'k')]).toEqual([2, 2])
  })

  it('gives back the windows that counted when another one fails, and reports the failure', async () => {
    const { store, used } = memoryStore((limiter, id) =>
      id.endsWith('hour')
        ? {
            consume: () => Promise.reject(new Error('connection lost')),
            reward: limiter.reward.bind(limiter),
          }
        : limiter,
    )
    await expect(store.hit('k', [minute, hour], 1)).rejects.toThrow('connection lost')
    expect(await used(minute, 'k')).toBe(0)
  })

  it('takes back a hit that succeeds after its timeout, since the fallback answered the request', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    const { store, used } = memoryStore((limiter) => ({
      consume: async (key, points) => {
        await gate
        return limiter.consume(key, points)
      },
      reward: (key, points) => limiter.reward(key, points),
    }))
    await expect(store.hit('k', [minute], 1)).rejects.toBeInstanceOf(StoreUnavailableError)
    release()
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(await used(minute, 'k')).toBe(0)
  })

  it('refund takes the cost back from every window', async () => {
    const { store, used } = memoryStore()
    await store.hit('k', [minute, hour], 2)
    await store.refund('k', [minute, hour], 2)
    expect([await used(minute, 'k'), await used(hour, 'k')]).toEqual([0, 0])
  })
})
