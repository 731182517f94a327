export type { LimitDecision, WindowState } from './limits/decision.js'
export { HEADER_MODES, type HeaderMode, writeRateLimitHeaders } from './limits/headers.js'
export { InsuredStore, type Logger, type StoreErrorMode } from './limits/insured-store.js'
export { clientKeyFromIp } from './limits/ip-key.js'
export { LimitEngine, RATE_LIMIT_OPTION_NAMES, RouteLimit } from './limits/limit-engine.js'
export { RateLimiter, type WindowGroup } from './limits/limiter.js'
export { MemoryStore, type MemoryStoreOptions } from './limits/memory-store.js'
export {
  describeLimit,
  LimitParseError,
  parseLimit,
  parseLimits,
  policyName,
  type RateLimitItem,
  type TimeUnit,
} from './limits/notation.js'
export type {
  Cost,
  KeyGenerator,
  RateLimitOptions,
  RedisStoreOption,
  RouteLimitOptions,
  RouteLimitSpec,
  StoreOption,
} from './limits/options.js'
export type { IoRedisLike, NodeRedisLike, RedisClientLike } from './limits/redis-client.js'
export { RedisStore, type RedisStoreOptions, StoreUnavailableError } from './limits/redis-store.js'
export { defaultRejectionBody } from './limits/rejection.js'
export type { HitResult, LimitStore, WindowSpec } from './limits/store.js'
export { OptionError } from './limits/validation.js'
