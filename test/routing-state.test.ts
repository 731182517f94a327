import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Cleanup, fake, waitFor } from './helpers/http.js'
import { ask, routingPrefix, shareReturningHome, sharing } from './helpers/replica-conversations.js'
import { ROUTING_GATEWAYS } from './helpers/routing-gateways.js'

// Gateway replicas in one process sharing the test Redis through `routingState`, each under its
// own key prefix. The kill and outage tests (replicas and Redis in processes of their own) are in
// test/faults/routing-replicas.test.ts.
const cleanup = new Cleanup()
afterEach(() => cleanup.run())
let redis: Redis
beforeAll(() => {
  redis = new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: 1 })
})
afterAll(() => redis.disconnect())

describe.each(ROUTING_GATEWAYS)('%s: replicas sharing routingState', (_name, start) => {
  it('holds maxConcurrency per backend across replicas: no backend ever runs more than it', async () => {
    const fakes = await Promise.all(['a', 'b'].map((name) => fake(cleanup, { name, timeToFirstTokenMs: 60 })))
    const prefix = routingPrefix()
    const replicas = await Promise.all(
      [0, 1].map(() =>
        start(cleanup, {
          backends: fakes.map((f) => ({ id: f.name, url: f.url, maxConcurrency: 2 })),
          strategy: 'least-connections',
          routingState: { redis, prefix },
        }),
      ),
    )
    await sharing(redis, prefix, 2)
    const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => ask(replicas[i % 2]!.port)))
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200))
    for (const f of fakes) expect(f.stats.maxConcurrent).toBeLessThanOrEqual(2)
    // Both backends served: the capacity is the backends', not one replica's.
    expect(fakes.every((f) => f.stats.completed > 0)).toBe(true)
    // Nothing stays counted once every request has ended.
    await waitFor(async () => {
      const counts = await redis.hgetall(`${prefix}{routing}:b:a`)
      return Object.entries(counts).every(([k, v]) => !k.startsWith('i:') || v === '0')
    }, 'no request counted in flight')
  })

  it('without routingState each replica counts alone (the behaviour the option fixes)', async () => {
    const fakes = await Promise.all(['a'].map((name) => fake(cleanup, { name, timeToFirstTokenMs: 60 })))
    const replicas = await Promise.all(
      [0, 1].map(() =>
        start(cleanup, { backends: fakes.map((f) => ({ id: f.name, url: f.url, maxConcurrency: 2 })) }),
      ),
    )
    await Promise.all(Array.from({ length: 12 }, (_, i) => ask(replicas[i % 2]!.port)))
    expect(fakes[0]!.stats.maxConcurrent).toBe(4)
  })

  it('returns a conversation opened on one replica and continued on others to its first backend', async () => {
    const fakes = await Promise.all(
      ['a', 'b', 'c'].map((name) => fake(cleanup, { name, timePerTokenMs: 10, answerTokens: 1_000 })),
    )
    const prefix = routingPrefix()
    const replicas = await Promise.all(
      [0, 1, 2].map(() =>
        start(cleanup, {
          backends: fakes.map((f) => ({ id: f.name, url: f.url })),
          strategy: 'prefix-affinity',
          routingState: { redis, prefix },
        }),
      ),
    )
    await sharing(redis, prefix, 3)
    const share = await shareReturningHome(replicas.map((r) => r.port))
    expect(share).toBeGreaterThanOrEqual(0.9)
  })
})
