import type { LimitDecision } from './decision.js'
import type { FlexibleStoreOption } from './flexible-option.js'
import type { HeaderMode } from './headers.js'
import type { Logger, StoreErrorMode } from './insured-store.js'
import type { RedisClientLike } from './redis-client.js'
import type { LimitStore, LimitStrategy } from './store.js'
import type { TokenReservation, TokenSpec } from './tokens/token-budget.js'

export type KeyGenerator<Req> = (request: Req) => string | Promise<string>
export type Cost<Req> = number | ((request: Req) => number)
/**
 * Whether an allowed request stays counted, asked once its response has been sent (flask-limiter's
 * `deduct_when`): false refunds its cost to every window. The request is counted while in flight,
 * so concurrent requests see it.
 */
export type DeductWhen<Req> = (request: Req, statusCode: number) => boolean

export interface RedisStoreOption {
  /** A connected `ioredis` (`Redis` or `Cluster`) or `redis` client. tollgate never closes it. */
  redis: RedisClientLike
  /** Give up on Redis after this long and fall back (see `onError`), in ms. Default 500. */
  timeoutMs?: number
  /** While Redis fails: count in this process (`insurance`, default), `allow` all or `deny` all. */
  onError?: StoreErrorMode
}

/** `'memory'` (default), Redis, `flexibleStore(…)`, or any object implementing `LimitStore`. */
export type StoreOption = 'memory' | RedisStoreOption | FlexibleStoreOption | LimitStore

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
  /** Keep the charge of an allowed request only when this says so about its response; default: always. */
  deductWhen?: DeductWhen<Req>
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
  /**
   * Token budget of every forward route without its own `tokens`: `"100000 per minute"`, or a
   * function of the request giving such a string (or `false` for none).
   */
  defaultTokens?: TokenSpec<Req>
  /** Completion tokens a request is expected to use when it sets no `max_tokens`; default 1024. */
  defaultMaxTokens?: number
  /**
   * Called once a request's tokens are settled, with its reservation: `charged`, and `source` saying
   * how they were found (`usage` from the backend, `estimate` of what was streamed, `refund`, or
   * the handler's `settled`). May be async; a failure is logged once.
   */
  onTokensSettled?: (request: Req, reservation: TokenReservation) => unknown
  /** Also send OpenAI's `x-ratelimit-{limit,remaining,reset}-{tokens,requests}` headers; default false. */
  openaiHeaders?: boolean
}

/** Per-route settings: Fastify `config.rateLimit`, Express `gate.limit(spec, options)`. */
export interface RouteLimitOptions<Req> {
  /**
   * Replaces `defaultLimits` for this route; when absent the defaults apply. A function of the
   * request may give the limit string per request (or `false`: no request limit), e.g. by plan.
   */
  limits?: string | ((request: Req) => string | false)
  keyGenerator?: KeyGenerator<Req>
  cost?: Cost<Req>
  skip?: (request: Req) => boolean | Promise<boolean>
  /** Replaces the plugin-wide `deductWhen` for this route. */
  deductWhen?: DeductWhen<Req>
  /**
   * Names a limit shared across routes: routes with the same scope (and limits) draw on the same
   * counters. Default: each route has its own.
   */
  scope?: string
  /** This route's token budget (replaces `defaultTokens`): a limit string, `false`, or a function of the request. */
  tokens?: TokenSpec<Req>
  /** Only requests with these methods are limited here (upper case); others pass uncounted. */
  methods?: readonly string[]
  /** Count each method on its own counters (GET and POST of one route get separate budgets). */
  perMethod?: boolean
  /** How this route's own windows count; default the plugin's `limitStrategy`. */
  limitStrategy?: LimitStrategy
}

/** `false` turns limiting off for a route; a string is shorthand for `{ limits }`. */
export type RouteLimitSpec<Req> = string | false | RouteLimitOptions<Req>
