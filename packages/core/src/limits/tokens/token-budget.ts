import type { Logger } from '../insured-store.js'
import { describeLimit, LimitParseError, parseLimits, policyName, type RateLimitItem } from '../notation.js'
import { RecentlyUsed } from '../recently-used.js'
import type { WindowSpec } from '../store.js'
import type { ReserveResult, TokenStore } from './token-store.js'
import type { UsageSource } from './usage-observer.js'

/** A route's token budget: a limit string, `false` for none, or a function of the request giving either. */
export type TokenSpec<Req> = string | false | ((request: Req) => string | false)

export interface TokenWindowState {
  readonly item: RateLimitItem
  /** The window's name in the RateLimit fields: `tokens-100000-per-minute`. */
  readonly policy: string
  readonly used: number
  readonly remaining: number
  readonly resetMs: number
}

/** The parsed windows of one token limit string, shared by every request that gets that string. */
export class TokenPolicy {
  readonly items: readonly RateLimitItem[]
  readonly names: readonly string[]
  readonly specs: readonly WindowSpec[]
  /** This policy's part of `RateLimit-Policy`. */
  readonly policyHeader: string

  constructor(scope: string, items: readonly RateLimitItem[]) {
    this.items = items
    this.names = items.map((item) => `tokens-${policyName(item)}`)
    this.specs = items.map((item, i) => ({
      id: `${scope}:${this.names[i]}`,
      amount: item.amount,
      windowMs: item.windowMs,
    }))
    this.policyHeader = items
      .map((item, i) => `"${this.names[i]}";q=${item.amount};qu="tokens";w=${item.windowMs / 1000}`)
      .join(', ')
  }
}

/**
 * The most one request is charged, whatever a backend or handler reports: above what any request
 * can cost on today's engines (128 choices of a 128k context are 16.8M tokens), and far inside
 * what a Redis counter holds, so an absurd count settles everywhere alike instead of failing.
 */
export const MAX_CHARGED_TOKENS = 100_000_000

/** A token limit string that does not parse: the request gets a 500, never "no limit". */
export const POLICY_FAILED: unique symbol = Symbol('tollgate.tokenPolicyFailed')

/** Distinct strings a function-valued `tokens` may give before the least recently used is dropped. */
export const POLICY_CACHE_SIZE = 1_000

/**
 * One route's token budget: which policy applies to a request, and reservations under it.
 * Strings from a `tokens` function are parsed once each and kept in a bounded LRU map (a client
 * may influence them, e.g. through a plan header); one that fails to parse is logged when it is
 * first seen and answered with a 500 every time.
 */
export class TokenBudget<Req> {
  readonly #store: TokenStore
  readonly #scope: string
  readonly #fixed: TokenPolicy | undefined
  readonly #compute: ((request: Req) => string | false) | undefined
  readonly #cache = new RecentlyUsed<TokenPolicy | typeof POLICY_FAILED>(POLICY_CACHE_SIZE)
  readonly #logger: Logger

  constructor(
    store: TokenStore,
    scope: string,
    spec: string | ((request: Req) => string | false),
    logger: Logger,
  ) {
    this.#store = store
    this.#scope = scope
    this.#logger = logger
    if (typeof spec === 'function') this.#compute = spec
    else this.#fixed = new TokenPolicy(scope, parseLimits(spec))
  }

  /** The policy for `request`; null when its function said `false` (no token limit). */
  policyFor(request: Req): TokenPolicy | null | typeof POLICY_FAILED {
    if (this.#fixed !== undefined) return this.#fixed
    let text: unknown
    try {
      text = this.#compute!(request)
    } catch (error) {
      this.#logOnce('tokens function failed', error)
      return POLICY_FAILED
    }
    if (text === false) return null
    if (typeof text !== 'string') {
      this.#logOnce('tokens function failed', new TypeError('it must return a limit string or false'))
      return POLICY_FAILED
    }
    return this.#cache.get(text, this.#parse)
  }

  readonly #parse = (text: string): TokenPolicy | typeof POLICY_FAILED => {
    try {
      return new TokenPolicy(this.#scope, parseLimits(text))
    } catch (error) {
      if (!(error instanceof LimitParseError)) throw error
      this.#logger.warn(
        `tollgate: a tokens function returned a limit that does not parse (${error.message}); such requests get a 500`,
      )
      return POLICY_FAILED
    }
  }

  #loggedFailure = false
  #logOnce(what: string, error: unknown): void {
    if (this.#loggedFailure) return
    this.#loggedFailure = true
    const reason = error instanceof Error ? error.message : String(error)
    this.#logger.warn(
      `tollgate: the ${what} (${reason}); such requests get a 500. Later failures are not logged.`,
    )
  }

  /** Reserves up to `want` tokens for `key`; rejects when the store fails. */
  reserve(policy: TokenPolicy, key: string, want: number): TokenReservation | Promise<TokenReservation> {
    const result = this.#store.reserve(key, policy.specs, want)
    if (result instanceof Promise)
      return result.then((r) => new TokenReservation(this.#store, policy, key, want, r))
    return new TokenReservation(this.#store, policy, key, want, result)
  }
}

/** A window without room for an estimate (one larger than its whole amount needs it unused). */
function short(w: TokenWindowState, estimate: number): boolean {
  return w.remaining === 0 || w.remaining < Math.min(estimate, w.item.amount)
}

/**
 * One request's reservation, settled exactly once: to the real usage, an estimate, or a refund.
 * Handlers read it as `request.rateLimit.tokens`.
 */
export class TokenReservation {
  readonly key: string
  readonly allowed: boolean
  /** The estimate the request came with. */
  readonly estimate: number
  /** Tokens taken from every window before the request ran: the estimate, capped at the smallest amount. */
  readonly reserved: number
  readonly windows: readonly TokenWindowState[]
  /** The window the headers describe: the one with the fewest tokens left (rejected: the short one that resets last). */
  readonly binding: TokenWindowState
  /** Whole seconds until the binding window resets (at least 1) when rejected; else 0. */
  readonly retryAfter: number
  /** The binding limit in words, e.g. "100000 per minute". */
  readonly limit: string
  /** Tokens finally charged, once settled. */
  charged: number | undefined
  /** How `charged` was found: the backend's `usage`, an estimate, a refund, or the handler (`settled`). */
  source: UsageSource | 'settled' | 'reserved' | undefined
  readonly #store: TokenStore
  readonly #specs: readonly WindowSpec[]
  readonly #fallback: boolean | undefined

  constructor(store: TokenStore, policy: TokenPolicy, key: string, estimate: number, result: ReserveResult) {
    this.#store = store
    this.#specs = policy.specs
    this.#fallback = result.fallback
    this.key = key
    this.allowed = result.allowed
    this.estimate = estimate
    this.reserved = result.allowed ? result.reserved : 0
    const windows: TokenWindowState[] = []
    let binding = 0
    for (let i = 0; i < policy.items.length; i++) {
      const item = policy.items[i]!
      const used = result.used[i] ?? 0
      windows.push({
        item,
        policy: policy.names[i]!,
        used,
        remaining: Math.max(0, item.amount - used),
        resetMs: Math.max(0, Math.min(result.resetMs[i] ?? item.windowMs, item.windowMs)),
      })
      const w = windows[i]!
      const b = windows[binding]!
      if (
        result.allowed
          ? w.remaining < b.remaining
          : short(w, estimate) && (!short(b, estimate) || w.resetMs > b.resetMs)
      )
        binding = i
    }
    this.windows = windows
    this.binding = windows[binding]!
    this.retryAfter = result.allowed ? 0 : Math.max(1, Math.ceil(this.binding.resetMs / 1000))
    this.limit = describeLimit(this.binding.item)
  }

  get settled(): boolean {
    return this.charged !== undefined
  }

  /**
   * Charges `tokens` in place of the reservation (the difference goes to every window; a store
   * failure is swallowed: the request is over and nothing waits on it). Only the first call counts.
   * A count that is no finite number >= 0 keeps the reservation; one above `MAX_CHARGED_TOKENS`
   * is charged that much.
   */
  settle(tokens: number, source: TokenReservation['source']): void | Promise<void> {
    if (!this.allowed || this.charged !== undefined) return
    const valid = typeof tokens === 'number' && Number.isFinite(tokens) && tokens >= 0
    const charged = valid ? Math.min(Math.round(tokens), MAX_CHARGED_TOKENS) : this.reserved
    this.charged = charged
    this.source = valid ? source : 'reserved'
    try {
      const pending = this.#store.settle(this.key, this.#specs, charged - this.reserved, this.#fallback)
      if (pending instanceof Promise) return pending.catch(() => {})
    } catch {
      // As above: nothing can be answered differently any more.
    }
  }
}
