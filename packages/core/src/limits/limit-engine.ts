import {
  checkCost,
  checkKnownKeys,
  checkObject,
  checkOneOf,
  checkOptionalFunction,
  checkOptionalString,
  fail,
  describeValue as show,
} from '../validation.js'
import type { LimitDecision } from './decision.js'
import { HEADER_MODES, type HeaderMode } from './headers.js'
import { InsuredStore, type Logger } from './insured-store.js'
import { clientKeyFromIp } from './ip-key.js'
import { RateLimiter, type WindowGroup } from './limiter.js'
import { MemoryStore } from './memory-store.js'
import { LimitParseError, parseLimits, type RateLimitItem } from './notation.js'
import type {
  Cost,
  KeyGenerator,
  RateLimitOptions,
  RouteLimitOptions,
  RouteLimitSpec,
  StoreOption,
} from './options.js'
import { isRedisClient } from './redis-client.js'
import { RedisStore } from './redis-store.js'
import { defaultRejectionBody } from './rejection.js'
import type { LimitStore } from './store.js'

const ENGINE_OPTIONS = [
  'defaultLimits',
  'applicationLimits',
  'keyGenerator',
  'cost',
  'store',
  'keyPrefix',
  'headers',
  'skip',
  'allowList',
  'rejectionBody',
  'onExceeded',
  'logger',
] as const
const ROUTE_OPTIONS = ['limits', 'keyGenerator', 'cost', 'skip', 'scope'] as const
const REDIS_OPTIONS = ['redis', 'timeoutMs', 'onError'] as const

/** Limit options that adapters layer their own on top of. */
export const RATE_LIMIT_OPTION_NAMES: readonly string[] = ENGINE_OPTIONS

function parseOption(option: string, text: unknown): RateLimitItem[] {
  if (typeof text !== 'string') fail(option, 'a limit string such as "200 per day, 50 per hour"', text)
  try {
    return parseLimits(text)
  } catch (error) {
    if (error instanceof LimitParseError) error.message = `tollgate: option "${option}": ${error.message}`
    throw error
  }
}

/**
 * The framework-agnostic limiter both adapters drive: validates options once,
 * owns the store, and hands out a `RouteLimit` per route (or per Express `limit()`).
 */
export class LimitEngine<Req> {
  readonly headers: HeaderMode
  readonly store: LimitStore
  /**
   * Put before every scope for a store the caller passed in: only the stores built here apply
   * keyPrefix themselves, and one passed-in store may be shared by engines with different prefixes.
   */
  readonly #scopePrefix: string
  readonly #defaults: RateLimitItem[] | undefined
  readonly #application: RateLimitItem[] | undefined
  readonly #options: RateLimitOptions<Req>
  readonly #allowList: ((request: Req, key: string) => boolean) | undefined

  constructor(
    options: RateLimitOptions<Req>,
    defaultLogger: Logger,
    extraOptionNames: readonly string[] = [],
  ) {
    const raw: unknown = options
    checkObject('options', raw)
    checkKnownKeys('', raw, [...ENGINE_OPTIONS, ...extraOptionNames])
    this.#options = options
    this.#defaults =
      options.defaultLimits === undefined ? undefined : parseOption('defaultLimits', options.defaultLimits)
    this.#application =
      options.applicationLimits === undefined
        ? undefined
        : parseOption('applicationLimits', options.applicationLimits)
    checkOptionalFunction('keyGenerator', options.keyGenerator)
    checkCost('cost', options.cost)
    checkOptionalFunction('skip', options.skip)
    checkOptionalFunction('rejectionBody', options.rejectionBody)
    checkOptionalFunction('onExceeded', options.onExceeded)
    checkOptionalString('keyPrefix', options.keyPrefix)
    const prefix = options.keyPrefix ?? 'tollgate:'
    if (prefix.includes('{') || prefix.includes('}')) {
      fail('keyPrefix', 'a string without { or } (they would break Redis Cluster hash slots)', prefix)
    }
    const headers = options.headers ?? 'ietf'
    checkOneOf('headers', headers, HEADER_MODES)
    this.headers = headers
    this.#allowList = allowListPredicate(options.allowList)
    if (options.logger !== undefined && typeof options.logger?.warn !== 'function') {
      fail('logger', 'an object with a warn(message) method', options.logger)
    }
    this.store = createStore(options.store, prefix, options.logger ?? defaultLogger)
    this.#scopePrefix = this.store === options.store ? prefix : ''
  }

  /** Whether any limit applies to routes without their own setting. */
  get hasDefaults(): boolean {
    return this.#defaults !== undefined || this.#application !== undefined
  }

  /**
   * The limiter for one route. `scope` names its counters (routes sharing a
   * scope share counters); `where` says where the spec came from, for errors.
   * Returns null when nothing limits the route.
   */
  route(scope: string, spec: RouteLimitSpec<Req> | undefined, where: string): RouteLimit<Req> | null {
    if (spec === false) return null
    let routeOptions: RouteLimitOptions<Req> = {}
    if (typeof spec === 'string') {
      routeOptions = { limits: spec }
    } else if (spec !== undefined) {
      const raw: unknown = spec
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        fail(where, 'a limit string, false, or an object { limits, keyGenerator, cost, skip, scope }', raw)
      }
      checkKnownKeys(where, raw as Record<string, unknown>, ROUTE_OPTIONS)
      routeOptions = spec
    }
    const own = routeOptions.limits === undefined ? this.#defaults : parseOption(where, routeOptions.limits)
    checkOptionalFunction(`${where}.keyGenerator`, routeOptions.keyGenerator)
    checkCost(`${where}.cost`, routeOptions.cost)
    checkOptionalFunction(`${where}.skip`, routeOptions.skip)
    checkOptionalString(`${where}.scope`, routeOptions.scope)
    const groups: WindowGroup[] = []
    const head = this.#scopePrefix
    if (own !== undefined) groups.push({ scope: head + (routeOptions.scope ?? scope), items: own })
    if (this.#application !== undefined) {
      groups.push({ scope: `${head}*application`, items: this.#application })
    }
    if (groups.length === 0) return null
    return new RouteLimit(new RateLimiter(this.store, groups), {
      keyGenerator: routeOptions.keyGenerator ?? this.#options.keyGenerator,
      cost: routeOptions.cost ?? this.#options.cost ?? 1,
      skip: routeOptions.skip ?? this.#options.skip,
      allowList: this.#allowList,
      rejectionBody: this.#options.rejectionBody,
      onExceeded: this.#options.onExceeded,
    })
  }

  close(): Promise<void> | void {
    return this.store.close()
  }
}

interface RouteLimitSettings<Req> {
  keyGenerator: KeyGenerator<Req> | undefined
  cost: Cost<Req>
  skip: ((request: Req) => boolean | Promise<boolean>) | undefined
  allowList: ((request: Req, key: string) => boolean) | undefined
  rejectionBody: ((request: Req, decision: LimitDecision) => unknown) | undefined
  onExceeded: ((request: Req, decision: LimitDecision) => void) | undefined
}

/** One route's limiter plus the per-request settings that apply to it. */
export class RouteLimit<Req> {
  readonly limiter: RateLimiter
  readonly #settings: RouteLimitSettings<Req>

  constructor(limiter: RateLimiter, settings: RouteLimitSettings<Req>) {
    this.limiter = limiter
    this.#settings = settings
  }

  /**
   * Counts the request. `ip` is the client address as the framework reports it
   * (after its own trust-proxy handling). Resolves to null when the request is
   * skipped or allow-listed. Synchronous unless a callback or the store is async.
   */
  check(request: Req, ip: string | undefined): LimitDecision | null | Promise<LimitDecision | null> {
    const { skip } = this.#settings
    if (skip !== undefined) {
      const skipped = skip(request)
      if (skipped instanceof Promise) return skipped.then((s) => (s ? null : this.#keyed(request, ip)))
      if (skipped) return null
    }
    return this.#keyed(request, ip)
  }

  #keyed(request: Req, ip: string | undefined): LimitDecision | null | Promise<LimitDecision | null> {
    const { keyGenerator } = this.#settings
    if (keyGenerator === undefined) return this.#counted(request, clientKeyFromIp(ip))
    const key = keyGenerator(request)
    if (key instanceof Promise) return key.then((k) => this.#counted(request, checkKey(k)))
    return this.#counted(request, checkKey(key))
  }

  #counted(request: Req, key: string): LimitDecision | null | Promise<LimitDecision> {
    const { allowList, cost } = this.#settings
    if (allowList?.(request, key)) return null
    const amount = typeof cost === 'number' ? cost : checkRequestCost(cost(request))
    return this.limiter.hit(key, amount)
  }

  /** Body for a 429; calls `onExceeded` first. */
  rejection(request: Req, decision: LimitDecision): unknown {
    this.#settings.onExceeded?.(request, decision)
    const build = this.#settings.rejectionBody
    return build === undefined ? defaultRejectionBody(decision) : build(request, decision)
  }
}

function checkKey(key: unknown): string {
  if (typeof key !== 'string' || key === '') {
    throw new TypeError(`tollgate: keyGenerator must return a non-empty string; got ${show(key)}`)
  }
  return key
}

function checkRequestCost(cost: unknown): number {
  if (typeof cost !== 'number' || !Number.isSafeInteger(cost) || cost < 0) {
    throw new TypeError(`tollgate: cost() must return a whole number >= 0; got ${show(cost)}`)
  }
  return cost
}

function allowListPredicate<Req>(
  allowList: RateLimitOptions<Req>['allowList'],
): ((request: Req, key: string) => boolean) | undefined {
  if (allowList === undefined) return undefined
  if (typeof allowList === 'function') return allowList
  if (!Array.isArray(allowList) || !allowList.every((k) => typeof k === 'string')) {
    fail('allowList', 'an array of client keys / IPs or a function (request, key) => boolean', allowList)
  }
  const keys = new Set(allowList.map((k) => clientKeyFromIp(k)))
  return (_request, key) => keys.has(key)
}

function createStore(option: StoreOption | undefined, prefix: string, logger: Logger): LimitStore {
  if (option === undefined || option === 'memory') return new MemoryStore()
  const raw: unknown = option
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('store', STORE_EXPECTED, raw)
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
    })
  }
  if (
    typeof (option as LimitStore).hit === 'function' &&
    typeof (option as LimitStore).close === 'function'
  ) {
    return option as LimitStore
  }
  return fail('store', STORE_EXPECTED, option)
}

const STORE_EXPECTED = `"memory", { redis: client } or an object with hit() and close()`
const MAX_TIMER_MS = 2_147_483_647
