import type { RateLimitItem } from './notation.js'

/** One window's state after a check. */
export interface WindowState {
  readonly item: RateLimitItem
  /** Token used in the `RateLimit` headers, e.g. `50-per-hour`. */
  readonly policy: string
  /** Requests counted in this window (not counting a rejected request). */
  readonly used: number
  readonly remaining: number
  /** Milliseconds until this window starts over. */
  readonly resetMs: number
}

/** The outcome of one rate-limit check; handlers read it as `req.rateLimit`. */
export interface LimitDecision {
  readonly allowed: boolean
  /** The client key the request was counted under. */
  readonly key: string
  /** Every window checked: the route's, then the application's. */
  readonly windows: readonly WindowState[]
  /** The window that rejected the request (the longest wait), or the one closest to running out. */
  readonly binding: WindowState
  /** Whole seconds to wait before retrying (at least 1) when rejected; 0 when allowed. */
  readonly retryAfter: number
  /** The binding limit as flask-limiter writes it, e.g. "50 per 1 hour". */
  readonly limit: string
}
