import type { LimitDecision } from './decision.js'
import type { HeaderMode } from './headers.js'
import type { Logger, StoreErrorMode } from './insured-store.js'
import type { RedisClientLike } from './redis-client.js'
import type { LimitStore, LimitStrategy } from './store.js'

export type KeyGenerator<Req> = (request: Req) => string | Promise<string>
export type Cost<Req> = number | ((request: Req) => number)

export interface RedisStoreOption {
  /** A connected `ioredis` (`Redis` or `Cluster`) or `redis` client. tollgate never closes it. */
  redis: RedisClientLike
  /** Give up on Redis after this long and fall back (see `onError`), in ms. Default 500. */
  timeoutMs?: number
  /** While Redis fails: count in this process (`insurance`, default), `allow` all or `deny` all. */
  onError?: StoreErrorMode
}

/** `'memory'` (default), Redis, or any object implementing `LimitStore`. */
export type StoreOption = 'memory' | RedisStoreOption | LimitStore

/** Options shared by the Fastify plugin and the Express factory. */
export interface RateLimitOptions<Req> {
  /** Limits for every route without its own, each route counting on its own: `"200 per day, 50 per hour"`. */
  defaultLimits?: string
  /** Limits counted once across every limited route, on top of the route's own. */
  applicationLimits?: string
  /** The client key; default: the client IP as the framework reports it (IPv6 grouped by /64). */
  keyGenerator?: KeyGenerator<Req>
  /** What one request costs; default 1. */
  cost?: Cost<Req>
  store?: StoreOption
  /** Prepended to every store key. Default `tollgate:`. */
  keyPrefix?: string
  /** Default `'ietf'`. */
  headers?: HeaderMode
  /** Requests for which this returns true are not counted and get no headers. */
  skip?: (request: Req) => boolean | Promise<boolean>
  /** Client keys (or IPs) never limited, or a predicate. */
  allowList?: readonly string[] | ((request: Req, key: string) => boolean)
  /**
   * Builds the JSON body of a rejection (429, or 400 when `decision.retryAfter` is 0 because the cost
   * is above a window's amount); default: an OpenAI-style error naming the limit. Must be synchronous.
   */
  rejectionBody?: (request: Req, decision: LimitDecision) => unknown
  /**
   * Called for every rejected request, before the 429 (or 400) is sent. May be async; a throw or a
   * rejected promise is logged once and does not change the answer.
   */
  onExceeded?: (request: Req, decision: LimitDecision) => unknown
  /**
   * A 429 whose `Retry-After` is above this many seconds also carries `x-should-retry: false`, which
   * the official OpenAI SDKs obey instead of sleeping for `Retry-After`. Default 60; `false` never sends it.
   */
  clientRetryMaxSeconds?: number | false
  /**
   * How every window counts, as in flask-limiter / `limits`: `fixed-window` (default),
   * `moving-window` or `sliding-window-counter`. Routes may override it; application limits keep this one.
   */
  limitStrategy?: LimitStrategy
  /** Where store outages are reported; default the framework's logger (Fastify) or `console`. */
  logger?: Logger
}

/** Per-route settings: Fastify `config.rateLimit`, Express `gate.limit(spec, options)`. */
export interface RouteLimitOptions<Req> {
  /** Replaces `defaultLimits` for this route; when absent the defaults apply. */
  limits?: string
  keyGenerator?: KeyGenerator<Req>
  cost?: Cost<Req>
  skip?: (request: Req) => boolean | Promise<boolean>
  /** Routes with the same scope share counters; default: each route has its own. */
  scope?: string
  /** How this route's own windows count; default the plugin's `limitStrategy`. */
  limitStrategy?: LimitStrategy
}

/** `false` turns limiting off for a route; a string is shorthand for `{ limits }`. */
export type RouteLimitSpec<Req> = string | false | RouteLimitOptions<Req>
