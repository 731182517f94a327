import { Redis } from 'ioredis'
import { createClient } from 'redis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { RedisStore } from '../../src/limits/redis-store.js'
import type { WindowSpec } from '../../src/limits/store.js'
import { RedisTokenStore } from '../../src/limits/tokens/redis-token-store.js'
import {
  CLIENT_KINDS,
  type ClientKind,
  closeClient,
  type NodeRedisClient,
  REDIS_URL,
  requireSharedRedis,
  skipWithoutRedis,
  uniquePrefix,
} from './redis-helpers.js'

// A gateway built right after its Redis client serves its first requests while the client is still
// connecting. Those calls must wait for the connection (bounded by the store's timeout), not fail as
// an outage: failing them had every replica count in its own process for the first probe interval.

const windows: WindowSpec[] = [{ id: 'chat', amount: 4, windowMs: 60_000 }]
const clients: (Redis | NodeRedisClient)[] = []
let admin: Redis
const prefixes: string[] = []

/** A client whose connection has started and not finished. */
function connecting(kind: ClientKind): Redis | NodeRedisClient {
  let client: Redis | NodeRedisClient
  if (kind === 'ioredis') {
    client = new Redis(REDIS_URL)
    client.on('error', () => {})
    expect(client.status).toBe('connecting')
  } else {
    const nodeRedis = createClient({ url: REDIS_URL })
    nodeRedis.on('error', () => {})
    nodeRedis.connect().catch(() => {})
    expect(nodeRedis.isReady).toBe(false)
    client = nodeRedis
  }
  clients.push(client)
  return client
}

function prefix(): string {
  const p = uniquePrefix()
  prefixes.push(p)
  return p
}

describe.skipIf(skipWithoutRedis).each(CLIENT_KINDS)(
  '%s: a client still making its first connection',
  (kind) => {
    beforeAll(async () => {
      requireSharedRedis()
      admin ??= new Redis(REDIS_URL)
    })
    afterEach(() => {
      for (const client of clients.splice(0)) closeClient(client)
    })
    afterAll(async () => {
      for (const p of prefixes.splice(0)) {
        const keys = await admin.keys(`${p}*`)
        if (keys.length > 0) await admin.del(...keys)
      }
    })

    it('counts the first hits in Redis: two stores on two such clients share one limit', async () => {
      const keyPrefix = prefix()
      const one = new RedisStore({ client: connecting(kind), prefix: keyPrefix })
      const two = new RedisStore({ client: connecting(kind), prefix: keyPrefix })
      const used: number[] = []
      for (let i = 0; i < 5; i++) {
        const result = await (i % 2 === 0 ? one : two).hit('client', windows, 1)
        used.push(result.allowed ? result.used[0]! : -1)
      }
      expect(used).toEqual([1, 2, 3, 4, -1])
      one.close()
      two.close()
    })

    it('reserves the first tokens in Redis', async () => {
      const keyPrefix = prefix()
      const store = new RedisTokenStore({ client: connecting(kind), prefix: keyPrefix, timeoutMs: 500 })
      const reserved = await store.reserve('client', windows, 3)
      expect(reserved).toMatchObject({ allowed: true, reserved: 3, used: [3] })
      expect(await admin.keys(`${keyPrefix}*`)).toHaveLength(1)
      await store.close()
    })
  },
)

afterAll(() => admin?.disconnect())
