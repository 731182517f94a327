import type { LimitDecision } from '../limits/decision.js'
import { type HeaderMode, writeRateLimitHeaders } from '../limits/headers.js'
import type { RouteLimit } from '../limits/limit-engine.js'

/** How an adapter sets one response header on its framework's response object. */
export type SetHeader<Target> = (target: Target, name: string, value: string) => void

/** What an adapter sends for a rejected request: this status and this JSON body. */
export interface LimitRejection {
  readonly status: number
  readonly body: unknown
}

/**
 * One limited route as an adapter drives it: `check` counts the request, `apply` turns the
 * decision into headers and, for a rejection, the answer to send. Both adapters go through here,
 * so what a decision means for the response is decided in one place.
 */
export class LimitedRoute<Req> {
  readonly #limit: RouteLimit<Req>
  readonly #headers: HeaderMode
  readonly #policyHeader: string

  constructor(limit: RouteLimit<Req>, headers: HeaderMode) {
    this.#limit = limit
    this.#headers = headers
    this.#policyHeader = limit.limiter.policyHeader
  }

  /** Counts the request; null when it is skipped or allow-listed. Synchronous unless a callback or the store is async. */
  check(request: Req, ip: string | undefined): LimitDecision | null | Promise<LimitDecision | null> {
    return this.#limit.check(request, ip)
  }

  /**
   * Writes the decision's headers through `set`; for a rejection also `Retry-After`, and returns
   * the status and body to send. Undefined when the request may go on. Allocates only for a rejection.
   */
  apply<Target>(
    request: Req,
    decision: LimitDecision,
    target: Target,
    set: SetHeader<Target>,
  ): LimitRejection | undefined {
    writeRateLimitHeaders(decision, this.#headers, this.#policyHeader, target, set)
    if (decision.allowed) return undefined
    set(target, 'Retry-After', String(decision.retryAfter))
    return { status: 429, body: this.#limit.rejection(request, decision) }
  }
}
