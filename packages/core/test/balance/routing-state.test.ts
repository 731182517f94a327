import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { type BackendBalancer, type BalancerOptions, createBalancer } from '../../src/balance/balancer.js'
import { SCRIPTS } from '../../src/balance/routing-state/routing-scripts.js'
import type { BackendLease } from '../../src/balance/types.js'
import { backendConfigs } from './helpers.js'

// Balancers standing for replicas, sharing the test Redis through `routingState` (each test under
// a key prefix of its own). Through real sockets and processes: test/routing-state.test.ts,
// test/faults/routing-replicas.test.ts.
let redis: Redis
beforeAll(() => {
  redis = new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: 1 })
})
afterAll(() => redis.disconnect())

const open: BackendBalancer[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()))
})

const ok = { ok: true, latencyMs: 1, cancelled: false }
const logger = { warn: vi.fn(), info: vi.fn() }

async function replicas(
  n: number,
  options: BalancerOptions,
  prefix = `rs-${randomBytes(5).toString('hex')}:`,
) {
  const before = await redis.zcard(`${prefix}{routing}:replicas`)
  const list = Array.from({ length: n }, () =>
    createBalancer({
      ...options,
      routingState: { redis, prefix, heartbeatMs: 100, leaseTtlMs: 400, ...options.routingState },
      callbacks: { logger } as never,
    }),
  )
  open.push(...list)
  // Each shares from its first answered heartbeat on, when it joins the replica set.
  await vi.waitUntil(async () => (await redis.zcard(`${prefix}{routing}:replicas`)) === before + n, {
    timeout: 5_000,
  })
  return { list, prefix }
}

describe('routingState through Redis', () => {
  it("makes maxConcurrency the backend's: a second replica waits while the first holds every place", async () => {
    const { list } = await replicas(2, { backends: backendConfigs([1], { maxConcurrency: 2 }) })
    const [a, b] = list as [BackendBalancer, BackendBalancer]
    const held = [await a.acquire({}, new Set()), await a.acquire({}, new Set())]
    let got: BackendLease | undefined
    const waiting = Promise.resolve(b.acquire({}, new Set())).then((lease) => {
      got = lease
      return lease
    })
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(got).toBeUndefined()
    held[0]!.finish(ok)
    const lease = await waiting
    expect(lease.backend.id).toBe('A')
    lease.finish(ok)
    held[1]!.finish(ok)
  })

  it("counts the other replicas' requests in flight for least-connections", async () => {
    const { list } = await replicas(2, { backends: backendConfigs([1, 1]), strategy: 'least-connections' })
    const [a, b] = list as [BackendBalancer, BackendBalancer]
    const onA: BackendLease[] = []
    for (let i = 0; i < 6; i++) {
      const lease = await a.acquire({}, new Set())
      if (lease.backend.id === 'A') onA.push(lease)
      else lease.finish(ok)
    }
    expect(onA.length).toBeGreaterThan(0)
    // B has nothing in flight itself; the heartbeat tells it what A has at backend A.
    await vi.waitUntil(() => b.registry.get('A')!.othersInFlight === onA.length, { timeout: 2_000 })
    for (let i = 0; i < 4; i++) {
      const lease = await b.acquire({}, new Set())
      expect(lease.backend.id).toBe('B')
      lease.finish(ok)
    }
    for (const lease of onA) lease.finish(ok)
  })

  it("counts the other replicas' sends in what was sent since the last report", async () => {
    const { list } = await replicas(2, { backends: backendConfigs([1]) })
    const [a, b] = list as [BackendBalancer, BackendBalancer]
    const held = [
      await a.acquire({}, new Set()),
      await a.acquire({}, new Set()),
      await a.acquire({}, new Set()),
    ]
    const seen = b.registry.get('A')!
    // B has sent nothing; what A sent since B's last report is still ahead of it at the backend.
    await vi.waitUntil(() => seen.sentSinceReport === 3, { timeout: 2_000 })
    expect(seen.totalRequests).toBe(0)
    for (const lease of held) lease.finish(ok)
    await vi.waitUntil(() => seen.inFlight === 0, { timeout: 2_000 })
    expect(seen.sentSinceReport).toBe(0)
  })

  it('forgets a killed replica: its leases stop counting after leaseTtlMs', async () => {
    const { list, prefix } = await replicas(1, { backends: backendConfigs([1], { maxConcurrency: 1 }) })
    // A replica that took the only place and died: an entry and a count no heartbeat renews.
    const base = `${prefix}{routing}:`
    const time = await redis.time()
    const serverNow = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000)
    await redis.zadd(`${base}replicas`, serverNow + 300, 'dead')
    await redis.hset(`${base}b:A`, 'i:dead', 1)
    const b = list[0] as BackendBalancer
    await vi.waitUntil(() => b.registry.get('A')!.othersInFlight === 1, { timeout: 2_000 })
    const lease = await b.acquire({}, new Set())
    expect(lease.backend.id).toBe('A')
    expect(await redis.hget(`${base}b:A`, 'i:dead')).toBeNull()
    lease.finish(ok)
  })

  it('answers at once on its own state when Redis is unreachable, and says so once', async () => {
    const down = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true, retryStrategy: () => null })
    down.on('error', () => {})
    const warn = vi.fn()
    const b = createBalancer({
      backends: backendConfigs([1], { maxConcurrency: 1 }),
      routingState: { redis: down, heartbeatMs: 50, leaseTtlMs: 200 },
      callbacks: { logger: { warn } } as never,
    })
    open.push(b)
    await vi.waitUntil(() => warn.mock.calls.length > 0, { timeout: 2_000 })
    const lease = b.acquire({}, new Set())
    expect(lease).not.toBeInstanceOf(Promise)
    ;(lease as BackendLease).finish(ok)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(warn).toHaveBeenCalledTimes(1)
    expect(warn.mock.calls[0]![0]).toMatch(/routing state unavailable/)
    down.disconnect()
  })

  it('tells a replica that never saw a prompt where it went, until prefixTtlMs has passed', async () => {
    const prompt = `system: ${'answer briefly and cite your sources. '.repeat(60)}`
    const options: BalancerOptions = {
      backends: backendConfigs([1, 1, 1]),
      strategy: 'prefix-affinity',
      routingState: { redis, prefixTtlMs: 600 },
    }
    const { list, prefix } = await replicas(1, options)
    const first = await list[0]!.acquire({ prompt }, new Set())
    first.finish(ok)
    // A replica started later has no local index: only the shared one points it to the same backend.
    const [later] = (await replicas(1, options, prefix)).list as [BackendBalancer]
    const again = await later.acquire({ prompt }, new Set())
    expect(again.backend.id).toBe(first.backend.id)
    again.finish(ok)
    expect((later.picker as unknown as { stats: { affinityHits: number } }).stats.affinityHits).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 700))
    const [fresh] = (await replicas(1, options, prefix)).list as [BackendBalancer]
    ;(await fresh.acquire({ prompt }, new Set())).finish(ok)
    expect((fresh.picker as unknown as { stats: { affinityHits: number } }).stats.affinityHits).toBe(0)
  })

  it('routes on when the scripts answer something unreadable, and says so once', async () => {
    // A heartbeat that reads (so the state is shared), and every other script answering garbage.
    const odd = {
      status: 'ready',
      evalsha: async (sha: string) => (sha === SCRIPTS.heartbeat.sha ? '0 0 0 0' : 'not a count'),
      eval: async () => 'not a count',
    }
    const warn = vi.fn()
    const b = createBalancer({
      backends: backendConfigs([1, 1], { maxConcurrency: 4 }),
      strategy: 'prefix-affinity',
      routingState: { redis: odd as never, heartbeatMs: 50, leaseTtlMs: 200 },
      callbacks: { logger: { warn } } as never,
    })
    open.push(b)
    await new Promise((resolve) => setTimeout(resolve, 100))
    for (let i = 0; i < 5; i++) {
      const lease = await b.acquire({ prompt: `system: ${'rules '.repeat(200)} ${i}` }, new Set())
      lease.finish(ok)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(warn.mock.calls.map((c) => c[0])).toEqual([expect.stringMatching(/unexpected reply/)])
  })

  it('refuses bad options at startup, naming the option', () => {
    const backends = backendConfigs([1])
    expect(() => createBalancer({ backends, routingState: { redis: 'redis://x' as never } })).toThrow(
      'routingState.redis',
    )
    expect(() =>
      createBalancer({ backends, routingState: { redis, leaseTtlMs: 1000, heartbeatMs: 800 } }),
    ).toThrow('routingState.leaseTtlMs')
    expect(() => createBalancer({ backends, routingState: { redis, prefix: 'a{b}' } })).toThrow(
      'routingState.prefix',
    )
    expect(() => createBalancer({ backends, routingState: { redis, heartbeat: 5 } as never })).toThrow(
      'routingState',
    )
  })
})
