import { checkKnownKeys, checkOneOf, fail } from '../validation.js'
import { createFlexibleStore, isFlexibleOption } from './flexible-option.js'
import { InsuredStore, type Logger } from './insured-store.js'
import { MemoryStore } from './memory-store.js'
import type { StoreOption } from './options.js'
import { isRedisClient } from './redis-client.js'
import { isRedisOutage, RedisStore } from './redis-store.js'
import type { LimitStore } from './store.js'

const REDIS_OPTIONS = ['redis', 'timeoutMs', 'onError'] as const

/**
 * The store the `store` option names: memory (the default), Redis with in-memory insurance,
 * a rate-limiter-flexible factory, or a store passed in as it is.
 */
export function createStore(option: StoreOption | undefined, prefix: string, logger: Logger): LimitStore {
  if (option === undefined || option === 'memory') return new MemoryStore()
  const raw: unknown = option
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('store', STORE_EXPECTED, raw)
  if (isFlexibleOption(option)) return createFlexibleStore(option, prefix, logger)
  if ('redis' in option) {
    checkKnownKeys('store', raw as Record<string, unknown>, REDIS_OPTIONS)
    if (!isRedisClient(option.redis)) {
      fail('store.redis', 'an ioredis or node-redis client', option.redis)
    }
    const timeoutMs = option.timeoutMs ?? 500
    // setTimeout turns anything above 2^31-1 ms (Infinity included) into 1 ms, which would
    // time out every call and silently leave Redis unused.
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0) || !(timeoutMs <= MAX_TIMER_MS)) {
      fail('store.timeoutMs', `a number of ms above 0 and at most ${MAX_TIMER_MS}`, timeoutMs)
    }
    const mode = option.onError ?? 'insurance'
    checkOneOf('store.onError', mode, ['insurance', 'allow', 'deny'] as const)
    return new InsuredStore({
      primary: new RedisStore({ client: option.redis, timeoutMs, prefix }),
      insurance: new MemoryStore(),
      mode,
      logger,
      isOutage: isRedisOutage,
    })
  }
  if (
    typeof (option as LimitStore).hit === 'function' &&
    typeof (option as LimitStore).close === 'function'
  ) {
    return option as LimitStore
  }
  if (isRedisClient(option))
    fail('store', `{ redis: client } (the client goes inside) or ${STORE_EXPECTED}`, option)
  return fail('store', STORE_EXPECTED, option)
}

const STORE_EXPECTED = `"memory", { redis: client }, flexibleStore(factory) or an object with hit() and close()`
const MAX_TIMER_MS = 2_147_483_647
