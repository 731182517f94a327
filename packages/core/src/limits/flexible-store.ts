import { StoreUnavailableError } from './redis-store.js'
import type { HitResult, LimitStore, WindowSpec } from './store.js'

/**
 * What tollgate needs of a rate-limiter-flexible limiter (`RateLimiterPostgres`, `RateLimiterMySQL`,
 * `RateLimiterMongo`, …): `consume` resolves with a result when the points fit and rejects with one
 * (not an Error) when they do not — having counted them either way — and `reward` takes points back.
 */
export interface FlexibleLimiter {
  consume(key: string, points: number): Promise<FlexibleResult>
  reward(key: string, points: number): Promise<unknown>
  /** Set by the SQL limiters: false until their table exists. */
  readonly tableCreated?: boolean
}

/** The fields of rate-limiter-flexible's `RateLimiterRes` that tollgate reads. */
export interface FlexibleResult {
  readonly consumedPoints: number
  readonly msBeforeNext: number
}

/** What tollgate passes to the factory for one window; spread it into the limiter's options. */
export interface FlexibleLimiterOptions {
  /** Names the window's counters: `<keyPrefix><route scope>:<policy>`. */
  keyPrefix: string
  points: number
  /** Whole seconds (every tollgate window is). */
  duration: number
  /** One table (SQL) or collection (Mongo) for every window; their keys differ by `keyPrefix`. */
  tableName: string
}

/**
 * Builds the limiter of one window. Pass `ready` to the constructor as its callback
 * (`new RateLimiterPostgres({ …opts }, ready)`): tollgate then waits for the table instead of
 * failing the first requests, and a database that is down at startup becomes an outage to ride out
 * rather than an unhandled rejection from inside the limiter.
 */
export type FlexibleLimiterFactory = (
  options: FlexibleLimiterOptions,
  ready: (error?: unknown) => void,
) => FlexibleLimiter

export interface FlexibleStoreOptions {
  factory: FlexibleLimiterFactory
  /** Prepended to every window's `keyPrefix`. Default `tollgate:`. */
  prefix?: string
  tableName?: string
  /** Give up on a call after this long and let the caller fall back, in ms. Default 1000. */
  timeoutMs?: number
}

interface Window {
  readonly limiter: FlexibleLimiter
  /** Settles when the limiter's table exists; undefined once it does. */
  ready: Promise<void> | undefined
}

/** A consume that counted its points (allowed or not); an Error when the store failed. */
type Consumed = { readonly result: FlexibleResult; readonly over: boolean } | { readonly error: unknown }

/**
 * tollgate's fixed windows on rate-limiter-flexible limiters, one limiter per window. Every window
 * of a request is consumed at once (one round trip's wait, several calls); when any window rejects
 * or fails, the windows that counted the request are rewarded, so a rejected request ends charged to
 * none. What that does and does not guarantee is in the README ("rate-limiter-flexible stores").
 */
export class FlexibleStore implements LimitStore {
  readonly #factory: FlexibleLimiterFactory
  readonly #prefix: string
  readonly #tableName: string
  readonly #timeoutMs: number
  /** By window id: bounded by the configuration, not by clients. */
  readonly #windows = new Map<string, Window>()

  constructor(options: FlexibleStoreOptions) {
    this.#factory = options.factory
    this.#prefix = options.prefix ?? 'tollgate:'
    this.#tableName = options.tableName ?? 'tollgate_limits'
    this.#timeoutMs = options.timeoutMs ?? 1000
  }

  hit(key: string, windows: readonly WindowSpec[], cost: number): Promise<HitResult> {
    // A hit that lands after its timeout was answered by the fallback: take its charge back.
    return this.#bounded(this.#hit(key, windows, cost), (late) => {
      if (late.allowed) this.#refund(key, windows, cost).catch(() => {})
    })
  }

  /** Takes `cost` back from every window (a request settled as not counted). */
  refund(key: string, windows: readonly WindowSpec[], cost: number): Promise<void> {
    return this.#bounded(this.#refund(key, windows, cost))
  }

  async #hit(key: string, windows: readonly WindowSpec[], cost: number): Promise<HitResult> {
    const limiters = await this.#limiters(windows)
    const consumed = await Promise.all(limiters.map((l) => consume(l, key, cost)))
    let failure: { error: unknown } | undefined
    let allowed = true
    for (const c of consumed) {
      if ('error' in c) failure ??= c
      else if (c.over) allowed = false
    }
    if (failure === undefined && allowed) {
      return {
        allowed,
        used: consumed.map((c) => (c as { result: FlexibleResult }).result.consumedPoints),
        resetMs: consumed.map((c) => (c as { result: FlexibleResult }).result.msBeforeNext),
      }
    }
    // Every window that counted the request gives it back, the one that refused it included:
    // rate-limiter-flexible counts a consume that goes over.
    await Promise.allSettled(
      consumed.map((c, i) => ('error' in c || cost === 0 ? undefined : limiters[i]!.reward(key, cost))),
    )
    if (failure !== undefined) throw failure.error
    return {
      allowed: false,
      used: consumed.map((c) => Math.max(0, (c as { result: FlexibleResult }).result.consumedPoints - cost)),
      resetMs: consumed.map((c) => (c as { result: FlexibleResult }).result.msBeforeNext),
    }
  }

  async #refund(key: string, windows: readonly WindowSpec[], cost: number): Promise<void> {
    if (cost === 0) return
    const limiters = await this.#limiters(windows)
    const settled = await Promise.allSettled(limiters.map((l) => l.reward(key, cost)))
    for (const s of settled) if (s.status === 'rejected') throw s.reason
  }

  async #limiters(windows: readonly WindowSpec[]): Promise<FlexibleLimiter[]> {
    const out = new Array<FlexibleLimiter>(windows.length)
    for (let i = 0; i < windows.length; i++) {
      const window = this.#window(windows[i]!)
      if (window.ready !== undefined) await window.ready
      out[i] = window.limiter
    }
    return out
  }

  #window(spec: WindowSpec): Window {
    const known = this.#windows.get(spec.id)
    if (known !== undefined) return known
    let settle!: (error?: unknown) => void
    const ready = new Promise<void>((resolve, reject) => {
      settle = (error) => (error === undefined || error === null ? resolve() : reject(error))
    })
    const limiter = this.#factory(
      {
        keyPrefix: this.#prefix + spec.id,
        points: spec.amount,
        duration: Math.ceil(spec.windowMs / 1000),
        tableName: this.#tableName,
      },
      (error) => settle(error),
    )
    const window: Window = { limiter, ready: limiter.tableCreated === false ? ready : undefined }
    ready.then(
      () => {
        window.ready = undefined
      },
      // A table that could not be created: the next request builds the limiter again.
      () => this.#windows.delete(spec.id),
    )
    this.#windows.set(spec.id, window)
    return window
  }

  /**
   * Rejects with an outage after `timeoutMs`; the call itself may still complete later, and `late`
   * then sees what it did.
   */
  #bounded<T>(pending: Promise<T>, late?: (value: T) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timedOut = false
      const timer = setTimeout(() => {
        timedOut = true
        reject(new StoreUnavailableError(`the store did not answer within ${this.#timeoutMs} ms`))
      }, this.#timeoutMs)
      pending.then(
        (value) => {
          clearTimeout(timer)
          if (timedOut) late?.(value)
          else resolve(value)
        },
        (error: unknown) => {
          clearTimeout(timer)
          reject(error)
        },
      )
    })
  }

  /** The limiters and their clients belong to the application; nothing of ours stays open. */
  close(): void {
    this.#windows.clear()
  }
}

function consume(limiter: FlexibleLimiter, key: string, cost: number): Promise<Consumed> {
  return limiter.consume(key, cost).then(
    (result) => ({ result, over: false }),
    (reason: unknown) => (isResult(reason) ? { result: reason, over: true } : { error: reason }),
  )
}

function isResult(value: unknown): value is FlexibleResult {
  return (
    typeof value === 'object' &&
    value !== null &&
    !(value instanceof Error) &&
    typeof (value as FlexibleResult).consumedPoints === 'number' &&
    typeof (value as FlexibleResult).msBeforeNext === 'number'
  )
}

/**
 * Every failure of the store is an outage to ride out on the insurance limiter, except a bug of
 * ours or of the factory (a TypeError, e.g. a limiter without `consume`).
 */
export function isFlexibleOutage(error: unknown): boolean {
  return !(error instanceof TypeError)
}
