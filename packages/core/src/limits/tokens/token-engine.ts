import type { UserCallbacks } from '../../user-callback.js'
import { checkNumber, fail } from '../../validation.js'
import type { Logger } from '../insured-store.js'
import { LimitParseError, parseLimits } from '../notation.js'
import type { KeyGenerator, StoreOption } from '../options.js'
import { isRedisClient } from '../redis-client.js'
import { InsuredTokenStore, RedisTokenStore } from './redis-token-store.js'
import { TokenBudget, type TokenSpec } from './token-budget.js'
import { MemoryTokenStore, type TokenStore } from './token-store.js'

/** Options of the token budgets, beside the limit engine's. */
export interface TokenOptions<Req> {
  defaultTokens?: TokenSpec<Req>
  defaultMaxTokens?: number
  openaiHeaders?: boolean
}

/** What a route's token budget needs besides its windows. */
export interface TokenRouteSettings<Req> {
  readonly keyGenerator: KeyGenerator<Req> | undefined
  readonly defaultMaxTokens: number
  readonly openaiHeaders: boolean
  readonly callbacks: UserCallbacks
  readonly logger: Logger
  readonly storeFailed: (error: unknown) => void
}

function isTokenStore(value: unknown): value is TokenStore {
  const v = value as Partial<TokenStore> | null
  return typeof v?.reserve === 'function' && typeof v.settle === 'function'
}

/**
 * Builds the token budgets of routes: checks `tokens` specs as `limits` are checked, and owns the
 * token store, made from the same `store` option as the request counters (memory; Redis with
 * the same insurance fallback; a custom store that has `reserve` and `settle`).
 */
export class TokenEngine<Req> {
  readonly #storeOption: StoreOption | undefined
  readonly #prefix: string
  readonly #logger: Logger
  readonly #defaults: TokenSpec<Req> | undefined
  readonly defaultMaxTokens: number
  readonly openaiHeaders: boolean
  #store: TokenStore | undefined

  constructor(options: TokenOptions<Req> & { store?: StoreOption }, prefix: string, logger: Logger) {
    this.#storeOption = options.store
    this.#prefix = prefix
    this.#logger = logger
    this.defaultMaxTokens = checkNumber('defaultMaxTokens', options.defaultMaxTokens, 1024, {
      min: 0,
      integer: true,
    })
    if (options.openaiHeaders !== undefined && typeof options.openaiHeaders !== 'boolean') {
      fail('openaiHeaders', 'true or false', options.openaiHeaders)
    }
    this.openaiHeaders = options.openaiHeaders ?? false
    this.#defaults = options.defaultTokens
    if (this.#defaults !== undefined) checkSpec('defaultTokens', this.#defaults)
  }

  /** The token budget of one route, or null when none applies (`forward`: defaults apply to forward routes). */
  route(
    scope: string,
    spec: TokenSpec<Req> | undefined,
    where: string,
    forward: boolean,
  ): TokenBudget<Req> | null {
    if (spec !== undefined) checkSpec(where, spec)
    const chosen = spec ?? (forward ? this.#defaults : undefined)
    if (chosen === undefined || chosen === false) return null
    return new TokenBudget(this.#tokenStore(), `${scope}`, chosen, this.#logger)
  }

  #tokenStore(): TokenStore {
    if (this.#store !== undefined) return this.#store
    const option = this.#storeOption
    if (option !== undefined && option !== 'memory' && 'redis' in option && isRedisClient(option.redis)) {
      this.#store = new InsuredTokenStore(
        new RedisTokenStore({
          client: option.redis,
          timeoutMs: option.timeoutMs ?? 500,
          prefix: this.#prefix,
        }),
        new MemoryTokenStore(),
        option.onError ?? 'insurance',
        this.#logger,
      )
    } else if (isTokenStore(option)) {
      this.#store = option
    } else {
      if (option !== undefined && option !== 'memory') {
        this.#logger.warn(
          'tollgate: the store has no reserve()/settle(); token budgets are counted in this process only',
        )
      }
      this.#store = new MemoryTokenStore()
    }
    return this.#store
  }

  close(): void | Promise<void> {
    // A store passed in is the caller's to close (it is the request store too).
    if (this.#store !== undefined && this.#store !== (this.#storeOption as unknown))
      return this.#store.close()
  }
}

function checkSpec(where: string, spec: unknown): void {
  if (spec === false || typeof spec === 'function') return
  if (typeof spec !== 'string')
    fail(where, 'a token limit string such as "100000 per minute", false, or a function', spec)
  try {
    parseLimits(spec)
  } catch (error) {
    if (error instanceof LimitParseError) error.message = `tollgate: option "${where}": ${error.message}`
    throw error
  }
}
