import type { AddressInfo } from 'node:net'
import type { InsuredStore } from '@tollgate/core'
import tollgate from '@tollgate/fastify'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { type ChildServer, freePort, hasRedisServer, IN_CI, load, spawnRedis, waitFor } from './support.js'

// A private redis-server, killed with SIGKILL mid-load and started again on the same port.
if (!hasRedisServer && !IN_CI) console.warn('redis-server is not on PATH: skipping the Redis outage test')
const describeRedis = hasRedisServer || IN_CI ? describe : describe.skip

describeRedis('Redis is killed mid-load and restarted', () => {
  let port: number
  let redis: ChildServer | undefined
  let client: Redis
  const apps: FastifyInstance[] = []
  // One logger per replica: each process reports the outage it sees, once.
  const loggers = [0, 1].map(() => ({ warn: vi.fn(), info: vi.fn() }))

  beforeAll(async () => {
    port = await freePort()
    redis = await spawnRedis(port)
    // Reconnects quickly once the server is back; commands never wait in a queue while it is down.
    client = new Redis({ port, host: '127.0.0.1', retryStrategy: () => 50, maxRetriesPerRequest: 0 })
    client.on('error', () => {})
    await waitFor(() => client.status === 'ready', 5_000, 'the Redis client to connect')
    // Two gateway replicas sharing the Redis: one limit between them while Redis is up.
    for (let i = 0; i < 2; i++) {
      const app = Fastify()
      apps.push(app)
      await app.register(tollgate, {
        store: { redis: client, timeoutMs: 300 },
        keyGenerator: (request) => String(request.headers['x-client']),
        logger: loggers[i],
      })
      app.get('/limited', { config: { rateLimit: '20 per minute' } }, async () => ({ ok: true }))
      await app.ready()
    }
  })

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()))
    client?.disconnect()
    await redis?.kill()
  })

  const hit = (i: number, key: string) =>
    apps[i % 2]!.inject({ method: 'GET', url: '/limited', headers: { 'x-client': key } })

  it('answers every request, holds the limit per process meanwhile, and counts in Redis again after', async () => {
    // Up: both replicas count in Redis, so one limit of 20 holds across them.
    const before = await load(30, 4, (i) => hit(i, 'before'))
    expect(before.filter((r) => r.statusCode === 200)).toHaveLength(20)
    expect(await client.keys('tollgate:{before}*')).toHaveLength(1)

    // Killed in the middle of a load over many clients: every request still gets an answer.
    let killed: Promise<void> | undefined
    const during = await load(200, 8, (i) => {
      if (i === 60) killed = redis!.kill('SIGKILL')
      return hit(i, `client-${i % 10}`)
    })
    await killed
    expect(during.every((r) => r.statusCode === 200 || r.statusCode === 429)).toBe(true)
    for (const logger of loggers) {
      expect(logger.warn).toHaveBeenCalledTimes(1)
      expect(String(logger.warn.mock.calls[0]?.[0])).toMatch(/rate-limit store unavailable/)
    }

    // Down: the insurance limiter holds the limit in each process (20 here, in one replica).
    await waitFor(() => client.status !== 'ready', 5_000, 'the client to notice the outage')
    const down = await load(30, 4, () =>
      apps[0]!.inject({ method: 'GET', url: '/limited', headers: { 'x-client': 'down' } }),
    )
    expect(down.filter((r) => r.statusCode === 200)).toHaveLength(20)
    expect(down.filter((r) => r.statusCode === 429)).toHaveLength(10)
    // Hundreds of requests during the outage, one warning per replica.
    for (const logger of loggers) expect(logger.warn).toHaveBeenCalledTimes(1)

    // Back on the same port: shared counting resumes, and the recovery is logged once.
    redis = await spawnRedis(port)
    await waitFor(() => client.status === 'ready', 5_000, 'the client to reconnect')
    // While Redis is known down, only a probe now and then asks it (backing off up to 5 s); wait
    // for the probes, sent by another client, to find it back in both replicas.
    await waitFor(
      async () => {
        await Promise.all([hit(0, 'probe'), hit(1, 'probe')])
        return apps.every((app) => !(app.tollgate.store as InsuredStore).degraded)
      },
      10_000,
      'both replicas to find Redis back',
    )
    const after = await load(30, 4, (i) => hit(i, 'after'))
    expect(after.filter((r) => r.statusCode === 200)).toHaveLength(20)
    const [key] = await client.keys('tollgate:{after}*')
    expect(key).toBeDefined()
    expect(Number(await client.get(key!))).toBe(20)
    for (const logger of loggers) {
      expect(logger.info).toHaveBeenCalledTimes(1)
      expect(String(logger.info.mock.calls[0]?.[0])).toMatch(/back/)
      expect(logger.warn).toHaveBeenCalledTimes(1)
    }
  })
})

describeRedis('Redis frozen with SIGSTOP, then woken', () => {
  for (const enableOfflineQueue of [true, false]) {
    it(`requests answered by insurance meanwhile are not counted when it wakes (enableOfflineQueue: ${enableOfflineQueue})`, async () => {
      const port = await freePort()
      const redis = await spawnRedis(port)
      const client = new Redis({ port, host: '127.0.0.1', enableOfflineQueue, maxRetriesPerRequest: 0 })
      client.on('error', () => {})
      const app = Fastify()
      try {
        await waitFor(() => client.status === 'ready', 5_000, 'the Redis client to connect')
        const logger = { warn: vi.fn(), info: vi.fn() }
        await app.register(tollgate, { store: { redis: client, timeoutMs: 200 }, logger })
        app.get('/limited', { config: { rateLimit: '5 per minute' } }, async () => ({ ok: true }))
        await app.listen({ port: 0, host: '127.0.0.1' })
        const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/limited`
        const get = async () => (await fetch(url)).status
        const count = async () => Number(await client.get('tollgate:{127.0.0.1}:GET /limited:5-per-minute'))
        const sent = vi.spyOn(client, 'evalsha')

        expect([await get(), await get()]).toEqual([200, 200])
        expect(await count()).toBe(2)

        redis.child.kill('SIGSTOP')
        sent.mockClear()
        // Insurance answers (its own window of 5 in this process), and while Redis is known
        // down the requests do not each wait for it: only the first, and at most a probe, reach it.
        const statuses = []
        for (let i = 0; i < 6; i++) statuses.push(await get())
        expect(statuses).toEqual([200, 200, 200, 200, 200, 429])
        expect(sent.mock.calls.length).toBeLessThanOrEqual(2)
        expect(logger.warn).toHaveBeenCalledOnce()

        redis.child.kill('SIGCONT')
        await waitFor(
          async () => (await client.ping().catch(() => '')) === 'PONG',
          5_000,
          'Redis to answer again',
        )
        // The calls queued while frozen ran past their deadline: refused, so nothing was added.
        expect(await count()).toBe(2)
      } finally {
        redis.child.kill('SIGCONT')
        await app.close()
        client.disconnect()
        await redis.kill()
      }
    })
  }
})
