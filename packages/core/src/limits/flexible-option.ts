import { checkKnownKeys, checkNumber, checkOneOf, checkOptionalString, fail } from '../validation.js'
import { type FlexibleLimiterFactory, FlexibleStore, isFlexibleOutage } from './flexible-store.js'
import { InsuredStore, type Logger, type StoreErrorMode } from './insured-store.js'
import { MemoryStore } from './memory-store.js'

/** What `flexibleStore()` returns: pass it as the `store` option. */
export interface FlexibleStoreOption {
  /** Builds one rate-limiter-flexible limiter per window. */
  readonly flexible: FlexibleLimiterFactory
  /** The SQL table (or Mongo collection) every window's limiter uses. Default `tollgate_limits`. */
  readonly tableName?: string
  /** Give up on the store after this long and fall back (see `onError`), in ms. Default 1000. */
  readonly timeoutMs?: number
  /** While the store fails: count in this process (`insurance`, default), `allow` all or `deny` all. */
  readonly onError?: StoreErrorMode
}

export type FlexibleStoreSettings = Omit<FlexibleStoreOption, 'flexible'>

/**
 * Runs tollgate's limits on rate-limiter-flexible:
 * `store: flexibleStore((opts, ready) => new RateLimiterPostgres({ storeClient: pool, ...opts }, ready))`.
 * The limiter classes come from the application's own `rate-limiter-flexible`.
 */
export function flexibleStore(
  factory: FlexibleLimiterFactory,
  settings: FlexibleStoreSettings = {},
): FlexibleStoreOption {
  return { ...settings, flexible: factory }
}

const FLEXIBLE_OPTIONS = ['flexible', 'tableName', 'timeoutMs', 'onError'] as const
const MAX_TIMER_MS = 2_147_483_647

export function isFlexibleOption(option: object): option is FlexibleStoreOption {
  return 'flexible' in option
}

/** The store for a `flexibleStore()` option: the limiters, insured by a memory store. */
export function createFlexibleStore(
  option: FlexibleStoreOption,
  prefix: string,
  logger: Logger,
): InsuredStore {
  checkKnownKeys('store', option, FLEXIBLE_OPTIONS)
  if (typeof option.flexible !== 'function') {
    fail('store.flexible', 'a function (options, ready) => rate-limiter-flexible limiter', option.flexible)
  }
  checkOptionalString('store.tableName', option.tableName)
  const timeoutMs = checkNumber('store.timeoutMs', option.timeoutMs, 1000, { min: 1 })
  // setTimeout turns anything above 2^31-1 ms into 1 ms, which would time out every call.
  if (timeoutMs > MAX_TIMER_MS) fail('store.timeoutMs', `a number of ms at most ${MAX_TIMER_MS}`, timeoutMs)
  const mode = option.onError ?? 'insurance'
  checkOneOf('store.onError', mode, ['insurance', 'allow', 'deny'] as const)
  return new InsuredStore({
    primary: new FlexibleStore({ factory: option.flexible, prefix, tableName: option.tableName, timeoutMs }),
    insurance: new MemoryStore(),
    mode,
    logger,
    isOutage: isFlexibleOutage,
  })
}
