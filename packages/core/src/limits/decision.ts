import type { RateLimitItem } from './notation.js'
import type { TokenReservation } from './tokens/token-budget.js'

/** One window's state after a check. */
export interface WindowState {
  /** The limit as parsed, e.g. `{ amount: 50, multiples: 1, unit: 'hour', windowMs: 3600000 }`. */
  readonly item: RateLimitItem
  /**
   * The window's name in the `RateLimit` and `RateLimit-Policy` headers, e.g. `50-per-hour`; unique
   * among the windows of one route (an application window with the same limit as a route window
   * is named `application-50-per-hour`).
   */
  readonly policy: string
  /** Quota units counted in this window, this request included when it was allowed. */
  readonly used: number
  /** Quota units left in this window: `item.amount - used`, at least 0. */
  readonly remaining: number
  /** Milliseconds until this window starts over, at most the window's length. */
  readonly resetMs: number
}

/** The outcome of one rate-limit check; handlers read it as `request.rateLimit` / `req.rateLimit`. */
export interface LimitDecision {
  /** Whether the request may proceed. When false it was charged to no window. */
  readonly allowed: boolean
  /** The client key the request was counted under (the default is the client IP, IPv6 by /64). */
  readonly key: string
  /** What the request cost (the `cost` option), in quota units. */
  readonly cost: number
  /** Every window checked: the route's, then the application's. */
  readonly windows: readonly WindowState[]
  /**
   * The window the headers describe. Rejected: the one that refused the request (of several,
   * the one that frees up last). Allowed: the one with the fewest units left.
   */
  readonly binding: WindowState
  /**
   * Whole seconds to wait before retrying (at least 1) when rejected; 0 when allowed, and 0 when
   * the request can never pass because its cost is above `binding.item.amount`.
   */
  readonly retryAfter: number
  /** The binding limit in words, e.g. "50 per hour". */
  readonly limit: string
  /** The token reservation, on a route with a token budget. */
  readonly tokens?: TokenReservation
  /**
   * Charges `n` tokens in place of the reservation (non-forward routes; forward routes settle from
   * the backend's usage), at most `MAX_CHARGED_TOKENS`; an `n` that is no finite number >= 0 keeps
   * the reservation, as does a reservation not settled by the end of the response.
   */
  readonly settleTokens?: (n: number) => void
}
