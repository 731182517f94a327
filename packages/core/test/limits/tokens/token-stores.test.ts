import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisTokenStore } from '../../../src/limits/tokens/redis-token-store.js'
import { MemoryTokenStore, type TokenStore } from '../../../src/limits/tokens/token-store.js'
import { connectIoRedis, uniquePrefix } from '../redis-helpers.js'

let redis: Redis
beforeAll(async () => {
  redis = await connectIoRedis()
})
afterAll(async () => {
  await redis.quit()
})

const minute = { id: 'r:tokens-400-per-minute', amount: 400, windowMs: 60_000 }
const hour = { id: 'r:tokens-1000-per-hour', amount: 1000, windowMs: 3_600_000 }

const stores: [string, () => TokenStore][] = [
  ['memory', () => new MemoryTokenStore()],
  ['Redis', () => new RedisTokenStore({ client: redis, timeoutMs: 2_000, prefix: uniquePrefix() })],
]

describe.each(stores)('the %s token store', (_name, make) => {
  it('caps an estimate above the whole budget at it on an unused window, and refuses one without room', async () => {
    const store = make()
    const first = await store.reserve('k', [minute], 1024)
    expect(first).toMatchObject({ allowed: true, reserved: 400, used: [400] })
    const second = await store.reserve('k', [minute], 10)
    expect(second).toMatchObject({ allowed: false, reserved: 0, used: [400] })
    await store.settle('k', [minute], 30 - 400)
    expect(await store.reserve('k', [minute], 1024)).toMatchObject({ allowed: false, used: [30] })
    const third = await store.reserve('k', [minute], 10)
    expect(third).toMatchObject({ allowed: true, reserved: 10, used: [40] })
    await store.close()
  })

  it('charges every window or none', async () => {
    const store = make()
    await store.reserve('k', [hour], 1000)
    const refused = await store.reserve('k', [minute, hour], 50)
    expect(refused.allowed).toBe(false)
    const minuteOnly = await store.reserve('k', [minute], 0)
    expect(minuteOnly.used).toEqual([0])
    await store.close()
  })

  it('never takes a window below zero, nor opens one for a refund', async () => {
    const store = make()
    await store.settle('k', [minute], -50)
    expect((await store.reserve('k', [minute], 0)).used).toEqual([0])
    await store.reserve('k', [minute], 20)
    await store.settle('k', [minute], -50)
    expect((await store.reserve('k', [minute], 0)).used).toEqual([0])
    await store.close()
  })

  it('admits 50 concurrent reservations only while each has room for its whole estimate', async () => {
    const store = make()
    const results = await Promise.all(Array.from({ length: 50 }, () => store.reserve('k', [minute], 30)))
    const reserved = results.reduce((sum, r) => sum + r.reserved, 0)
    expect(reserved).toBe(390)
    expect(results.filter((r) => r.allowed)).toHaveLength(13)
    await store.close()
  })
})

describe.each(stores)('the %s token store carries an overrun', (_name, make) => {
  const short = { id: 'r:tokens-100-per-400ms', amount: 100, windowMs: 400 }
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

  it('into the next windows, until it is paid off, when the usage went over the reservation', async () => {
    const store = make()
    expect(await store.reserve('k', [short], 100)).toMatchObject({ allowed: true, reserved: 100 })
    // The backend reported 350 tokens for a reservation of 100: 250 over this window's budget.
    await store.settle('k', [short], 250)
    await pause(480)
    expect(await store.reserve('k', [short], 10)).toMatchObject({ allowed: false, used: [250] })
    await pause(480)
    expect(await store.reserve('k', [short], 10)).toMatchObject({ allowed: false, used: [150] })
    await pause(480)
    expect(await store.reserve('k', [short], 80)).toMatchObject({ allowed: false, used: [50] })
    expect(await store.reserve('k', [short], 50)).toMatchObject({ allowed: true, reserved: 50, used: [100] })
    await store.close()
  })

  it('less a budget for every window that passed untouched', async () => {
    const store = make()
    await store.reserve('k', [short], 100)
    await store.settle('k', [short], 250)
    await pause(880)
    expect(await store.reserve('k', [short], 10)).toMatchObject({ allowed: false, used: [150] })
    await store.close()
  })

  it('and carries an overrun settled after its window ended', async () => {
    const store = make()
    await store.reserve('k', [short], 100)
    await pause(480)
    await store.settle('k', [short], 150)
    expect(await store.reserve('k', [short], 10)).toMatchObject({ allowed: false, used: [150] })
    await store.close()
  })
})

describe('the memory token store sweep', () => {
  it('keeps a counter whose window ended while it still carries an overrun', async () => {
    let now = 0
    const store = new MemoryTokenStore({ now: () => now })
    const w = { id: 'r:tokens-100-per-second', amount: 100, windowMs: 1000 }
    store.reserve('k', [w], 100)
    store.settle('k', [w], 150)
    now = 1500
    store.sweep()
    expect(store.reserve('k', [w], 10)).toMatchObject({ allowed: false, used: [150] })
    now = 5000
    store.sweep()
    expect(store.reserve('k', [w], 10)).toMatchObject({ allowed: true, used: [10] })
    store.close()
  })
})
