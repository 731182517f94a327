import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { type LimitStore, MemoryStore, RedisStore, type WindowSpec } from '../../src/internal.js'
import { connectIoRedis, uniquePrefix } from './redis-helpers.js'

const minute: WindowSpec = { id: 'r:5-per-minute', amount: 5, windowMs: 60_000 }
const short: WindowSpec = { id: 'r:5-per-second', amount: 5, windowMs: 1_000 }

let redis: Redis
beforeAll(async () => {
  redis = await connectIoRedis()
})
const prefixes: string[] = []
afterAll(async () => {
  for (const prefix of prefixes) {
    const keys = await redis.keys(`${prefix}*`)
    if (keys.length > 0) await redis.del(...keys)
  }
  redis.disconnect()
})

function redisStore(): RedisStore {
  const prefix = uniquePrefix()
  prefixes.push(prefix)
  return new RedisStore({ client: redis, prefix })
}

describe.each([
  ['memory', () => new MemoryStore() as LimitStore],
  ['Redis', () => redisStore() as LimitStore],
] as const)('%s store refund', (_name, create) => {
  it('takes the cost back from every window, never below zero', async () => {
    const store = create()
    await store.hit('k', [minute, short], 2)
    await store.refund!('k', [minute, short], 3)
    expect((await store.hit('k', [minute, short], 0)).used).toEqual([0, 0])
    await store.close()
  })

  it('leaves a window that has ended alone: a refund opens no window', async () => {
    const store = create()
    await store.hit('k', [minute], 1)
    await store.refund!('k', [minute, short], 1)
    const after = await store.hit('k', [minute, short], 5)
    expect(after.allowed).toBe(true)
    expect(after.used).toEqual([5, 5])
    await store.close()
  })
})

it('Redis: one script call refunds every window of a request, and creates no key', async () => {
  const store = redisStore()
  await store.hit('k', [minute], 1)
  const evalsha = vi.spyOn(redis, 'evalsha')
  await store.refund('k', [minute, short], 1)
  expect(evalsha).toHaveBeenCalledTimes(1)
  evalsha.mockRestore()
  expect(await redis.keys(`${prefixes.at(-1)}*${short.id}`)).toEqual([])
})

describe('deductWhen and the window strategies', () => {
  it('refuses deductWhen where a window counts by a moving window or a sliding counter, at startup', async () => {
    const { LimitEngine, OptionError } = await import('../../src/internal.js')
    const deductWhen = () => true
    expect(() => new LimitEngine({ deductWhen, limitStrategy: 'moving-window' }, console)).toThrow(
      OptionError,
    )
    const engine = new LimitEngine({ deductWhen }, console)
    expect(() =>
      engine.route('r', { limits: '5 per minute', limitStrategy: 'sliding-window-counter' }, 'route /r'),
    ).toThrow(/works with limitStrategy "fixed-window" only/)
    expect(engine.route('r2', { limits: '5 per minute' }, 'route /r2')?.settles).toBe(true)
    await engine.close()
  })
})
