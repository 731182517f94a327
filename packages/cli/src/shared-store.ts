import { type LimitStore, MemoryStore, type StoreOption, type TokenStore } from '@tollgate/core'
import { Redis } from 'ioredis'
import type { RedisConfig } from './config/types.js'

/**
 * The counter store every config generation shares, so a reload keeps every client's counts,
 * request and token counters alike: memory stores that outlive the apps (each app's close leaves
 * them open), or a Redis client.
 */
export interface SharedStore {
  option: StoreOption
  redis: Redis | undefined
  close(): Promise<void>
}

export function createSharedStore(redis: RedisConfig | undefined): SharedStore {
  if (redis === undefined) {
    const memory = new MemoryStore()
    // It counts by every strategy the memory store does, so a file `check` accepts (which checks
    // against this store) is one `serve` accepts with or without Redis, and the other way round.
    const shared: LimitStore & TokenStore = {
      hit: (key, windows, cost) => memory.hit(key, windows, cost),
      strategies: memory.strategies,
      // A request its token budget refuses gives its count back.
      refund: (key, windows, cost) => memory.refund(key, windows, cost),
      reserve: (key, windows, want) => memory.reserve(key, windows, want),
      settle: (key, windows, delta) => memory.settle(key, windows, delta),
      close: () => {},
    }
    return { option: shared, redis: undefined, close: async () => memory.close() }
  }
  // Commands fail fast while Redis is down, so the insurance limiter answers instead of a queue.
  const client = new Redis(redis.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  })
  client.on('error', () => {})
  return {
    option: { redis: client, timeoutMs: redis.timeoutMs, onError: redis.onError },
    redis: client,
    close: async () => {
      client.disconnect()
    },
  }
}

/**
 * The client of the shared routing state: a connection of its own, so routing calls never queue
 * behind limit counting. Unlike the store's client it keeps ioredis's offline queue for its first
 * connection: every routing call has its own deadline, and while Redis is down the routing state
 * sends nothing but its heartbeat.
 */
export function createRoutingClient(url: string): Redis {
  const client = new Redis(url, {
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(times * 100, 1_000),
  })
  client.on('error', () => {})
  return client
}

/**
 * Resolves once Redis has answered a PING; retries every `retryMs` until then or until `stopped()`.
 * `failed` hears each try's error.
 */
export async function reachRedisOnce(
  client: Redis,
  stopped: () => boolean,
  retryMs = 1000,
  failed?: (error: unknown) => void,
): Promise<boolean> {
  while (!stopped()) {
    try {
      if (client.status === 'wait' || client.status === 'end') await client.connect()
      await client.ping()
      return true
    } catch (error) {
      failed?.(error)
      await new Promise((resolve) => setTimeout(resolve, retryMs).unref())
    }
  }
  return false
}
