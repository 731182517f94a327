import { UserCallbacks } from '../user-callback.js'
import {
  checkCost,
  checkKnownKeys,
  checkNumber,
  checkObject,
  checkOneOf,
  checkOptionalFunction,
  checkOptionalString,
  fail,
  failWith,
} from '../validation.js'
import { allowListPredicate, ENGINE_OPTIONS, parseOption, ROUTE_OPTIONS } from './engine-options.js'
import { HEADER_MODES, type HeaderMode } from './headers.js'
import type { Logger } from './insured-store.js'
import { RateLimiter, type WindowGroup } from './limiter.js'
import { methodLimiters, methodSet } from './method-limits.js'
import type { RateLimitItem } from './notation.js'
import type { RateLimitOptions, RouteLimitOptions, RouteLimitSpec } from './options.js'
import { PerRequestLimits } from './per-request-limits.js'
import { RouteLimit } from './route-limit.js'
import { LIMIT_STRATEGIES, type LimitStore, type LimitStrategy } from './store.js'
import { createStore } from './store-option.js'

export { RATE_LIMIT_OPTION_NAMES } from './engine-options.js'

/**
 * The framework-agnostic limiter both adapters drive: validates options once,
 * owns the store, and hands out a `RouteLimit` per route (or per Express `limit()`).
 */
export class LimitEngine<Req> {
  readonly headers: HeaderMode
  readonly store: LimitStore
  /** Guards every user callback of the limits; adapters may share it for their own callbacks. */
  readonly callbacks: UserCallbacks
  /**
   * Put before every scope for a store the caller passed in: only the stores built here apply
   * keyPrefix themselves, and one passed-in store may be shared by engines with different prefixes.
   */
  readonly #scopePrefix: string
  readonly #defaults: RateLimitItem[] | undefined
  readonly #application: RateLimitItem[] | undefined
  readonly #options: RateLimitOptions<Req>
  readonly #allowList: ((request: Req, key: string) => boolean) | undefined
  readonly #clientRetryMaxSeconds: number | false
  readonly #storeFailed: (error: unknown) => void
  readonly #logger: Logger
  /** The key prefix the stores built here use (token budgets build theirs with it). */
  readonly keyPrefix: string
  readonly #strategy: LimitStrategy

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
    checkOptionalFunction('deductWhen', options.deductWhen)
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
    const retryMax = options.clientRetryMaxSeconds
    this.#clientRetryMaxSeconds =
      retryMax === false ? false : checkNumber('clientRetryMaxSeconds', retryMax, 60, { min: 0 })
    const logger = options.logger ?? defaultLogger
    this.#logger = logger
    this.callbacks = new UserCallbacks(logger)
    let storeFailureLogged = false
    this.#storeFailed = (error) => {
      if (storeFailureLogged) return
      storeFailureLogged = true
      const reason = error instanceof Error ? error.message : String(error)
      logger.warn(
        `tollgate: the rate-limit store failed (${reason}); such requests get a 500. Later failures are not logged.`,
      )
    }
    this.keyPrefix = prefix
    const strategy = options.limitStrategy ?? 'fixed-window'
    // Before the store exists: a misspelt strategy must not leave a sweep timer or Redis insurance open.
    checkOneOf('limitStrategy', strategy, LIMIT_STRATEGIES)
    this.store = createStore(options.store, prefix, logger)
    this.#scopePrefix = this.store === options.store ? prefix : ''
    // Only a store passed in can lack a strategy, so a failure here leaves nothing open behind it.
    this.#strategy = this.#checkStrategy('limitStrategy', strategy)
    if (options.deductWhen !== undefined) this.#checkRefunds('deductWhen', this.#strategy)
  }

  /**
   * `deductWhen` settles by refunding, which a store passed in may not offer, and which takes back
   * a fixed window's count only: a moving window's log or a sliding counter is not refunded.
   */
  #checkRefunds(option: string, strategy: LimitStrategy): void {
    if (typeof this.store.refund !== 'function') {
      fail(
        option,
        'used with a store that has refund() (memory, Redis and flexibleStore do)',
        this.#options.deductWhen,
      )
    }
    if (strategy !== 'fixed-window') {
      failWith(option, `works with limitStrategy "fixed-window" only; this route counts by "${strategy}"`)
    }
  }

  /** Whether any limit applies to routes without their own setting. */
  get hasDefaults(): boolean {
    return this.#defaults !== undefined || this.#application !== undefined
  }

  /** As `route`, and also for a `limits` function: the limits are then chosen per request. */
  routeFor(
    scope: string,
    spec: RouteLimitSpec<Req> | undefined,
    where: string,
  ): RouteLimit<Req> | PerRequestLimits<Req> | null {
    if (typeof spec !== 'object' || spec === null || typeof spec.limits !== 'function') {
      return this.route(scope, spec, where)
    }
    const { limits, ...rest } = spec
    // The other settings are checked now, at startup, whatever strings the function gives later.
    const probe = this.route(scope, { ...rest, limits: '1 per second' }, where)
    return new PerRequestLimits(
      limits,
      (text) => this.route(scope, { ...rest, limits: text }, where),
      this.#logger,
      probe?.settles === true,
    )
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
        fail(
          where,
          'a limit string, false, or an object { limits, keyGenerator, cost, skip, deductWhen, scope, methods, perMethod }',
          raw,
        )
      }
      checkKnownKeys(where, raw as Record<string, unknown>, ROUTE_OPTIONS)
      routeOptions = spec
    }
    const own = routeOptions.limits === undefined ? this.#defaults : parseOption(where, routeOptions.limits)
    checkOptionalFunction(`${where}.keyGenerator`, routeOptions.keyGenerator)
    checkCost(`${where}.cost`, routeOptions.cost)
    checkOptionalFunction(`${where}.skip`, routeOptions.skip)
    checkOptionalString(`${where}.scope`, routeOptions.scope)
    checkOptionalFunction(`${where}.deductWhen`, routeOptions.deductWhen)
    const strategy =
      routeOptions.limitStrategy === undefined
        ? this.#strategy
        : this.#checkStrategy(`${where}.limitStrategy`, routeOptions.limitStrategy)
    if (routeOptions.deductWhen !== undefined) this.#checkRefunds(`${where}.deductWhen`, strategy)
    else if (this.#options.deductWhen !== undefined && strategy !== this.#strategy) {
      this.#checkRefunds('deductWhen', strategy)
    }
    const methods = methodSet(`${where}.methods`, routeOptions.methods)
    const perMethod = routeOptions.perMethod ?? false
    if (typeof perMethod !== 'boolean') fail(`${where}.perMethod`, 'true or false', perMethod)
    const head = this.#scopePrefix
    const groupsFor = (ownScope: string): WindowGroup[] => {
      const groups: WindowGroup[] = []
      if (own !== undefined) groups.push({ scope: head + ownScope, items: own, strategy })
      if (this.#application !== undefined) {
        // Application windows are shared by every route, so they count by the plugin's strategy.
        groups.push({
          scope: `${head}*application`,
          items: this.#application,
          label: 'application',
          strategy: this.#strategy,
        })
      }
      return groups
    }
    const routeScope = routeOptions.scope ?? scope
    const groups = groupsFor(routeScope)
    if (groups.length === 0) return null
    const limiter = new RateLimiter(this.store, groups)
    return new RouteLimit(limiter, {
      deductWhen: routeOptions.deductWhen ?? this.#options.deductWhen,
      methods,
      limiterFor: perMethod
        ? methodLimiters(limiter, (m) => new RateLimiter(this.store, groupsFor(`${routeScope}|${m}`)))
        : undefined,
      keyGenerator: routeOptions.keyGenerator ?? this.#options.keyGenerator,
      cost: routeOptions.cost ?? this.#options.cost ?? 1,
      skip: routeOptions.skip ?? this.#options.skip,
      allowList: this.#allowList,
      rejectionBody: this.#options.rejectionBody,
      onExceeded: this.#options.onExceeded,
      headers: this.headers,
      policyHeader: limiter.policyHeader,
      clientRetryMaxSeconds: this.#clientRetryMaxSeconds,
      callbacks: this.callbacks,
      storeFailed: this.#storeFailed,
    })
  }

  /** `strategy`, once it is known to be one the store can count by. */
  #checkStrategy(option: string, strategy: unknown): LimitStrategy {
    checkOneOf(option, strategy, LIMIT_STRATEGIES)
    if (strategy !== 'fixed-window' && !(this.store.strategies ?? []).includes(strategy)) {
      fail(
        option,
        `"fixed-window" with this store (it does not list "${strategy}" in its strategies), or a store that counts by "${strategy}" (the memory and Redis stores do)`,
        strategy,
      )
    }
    return strategy
  }

  close(): Promise<void> | void {
    return this.store.close()
  }
}
