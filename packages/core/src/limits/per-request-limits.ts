import type { LimitDecision } from './decision.js'
import type { Logger } from './insured-store.js'
import { LimitParseError } from './notation.js'
import { RecentlyUsed } from './recently-used.js'
import {
  type HeaderSetter,
  type LimitAnswer,
  LimitCheckFailure,
  type LimitOutcome,
  limitResponse,
} from './rejection.js'
import type { RouteLimit } from './route-limit.js'

/** Distinct strings a function-valued `limits` may give before the least recently used is dropped. */
export const LIMITS_CACHE_SIZE = 1_000

const LIMITS_FAILED = new LimitCheckFailure('limits')
const UNPARSED = Symbol('tollgate.unparsedLimits')

/**
 * A route whose `limits` is a function of the request (limits by plan or tenant): each distinct
 * string it returns becomes a `RouteLimit` once, kept in a bounded LRU map; `false` means no
 * request limit. A string that does not parse, a throw or a non-string answer is logged once and
 * answered with a 500 (`LimitCheckFailure`), never "no limit".
 */
export class PerRequestLimits<Req> {
  readonly #compute: (request: Req) => string | false
  readonly #build: (text: string) => RouteLimit<Req> | null
  readonly #logger: Logger
  readonly #cache = new RecentlyUsed<RouteLimit<Req> | null | typeof UNPARSED>(LIMITS_CACHE_SIZE)
  /** Which limit made a decision, so `respond` writes that limit's policy header. */
  readonly #madeBy = new WeakMap<LimitDecision, RouteLimit<Req>>()
  #failureLogged = false

  /** Whether the limits it builds settle after the response: they share the route's `deductWhen`. */
  readonly settles: boolean

  constructor(
    compute: (request: Req) => string | false,
    build: (text: string) => RouteLimit<Req> | null,
    logger: Logger,
    settles = false,
  ) {
    this.#compute = compute
    this.#build = build
    this.#logger = logger
    this.settles = settles
  }

  /** Settles with the limit that made the decision. */
  settle(request: Req, decision: LimitDecision, statusCode: number): void | Promise<void> {
    return this.#madeBy.get(decision)?.settle(request, decision, statusCode)
  }

  /** Refunds with the limit that made the decision. */
  refund(request: Req, decision: LimitDecision): void | Promise<void> {
    return this.#madeBy.get(decision)?.refund(request, decision)
  }

  check(request: Req, ip: string | undefined): LimitOutcome | Promise<LimitOutcome> {
    let text: unknown
    try {
      text = this.#compute(request)
    } catch (error) {
      return this.#failed(error instanceof Error ? error.message : String(error))
    }
    if (text === false) return null
    if (typeof text !== 'string') return this.#failed('it must return a limit string or false')
    const limit = this.#cache.get(text, this.#parse)
    if (limit === UNPARSED) return LIMITS_FAILED
    if (limit === null) return null
    const chosen = limit
    const outcome = chosen.check(request, ip)
    const remember = (o: LimitOutcome): LimitOutcome => {
      if (o !== null && !(o instanceof LimitCheckFailure)) this.#madeBy.set(o, chosen)
      return o
    }
    return outcome instanceof Promise ? outcome.then(remember) : remember(outcome)
  }

  readonly #parse = (text: string): RouteLimit<Req> | null | typeof UNPARSED => {
    try {
      return this.#build(text)
    } catch (error) {
      if (!(error instanceof LimitParseError)) throw error
      this.#logger.warn(
        `tollgate: a limits function returned a limit that does not parse (${error.message}); such requests get a 500`,
      )
      return UNPARSED
    }
  }

  #failed(reason: string): LimitCheckFailure {
    if (!this.#failureLogged) {
      this.#failureLogged = true
      this.#logger.warn(
        `tollgate: the limits function failed (${reason}); such requests get a 500. Later failures are not logged.`,
      )
    }
    return LIMITS_FAILED
  }

  respond<Target>(
    request: Req,
    outcome: LimitDecision | LimitCheckFailure,
    target: Target,
    set: HeaderSetter<Target>,
  ): LimitAnswer | null {
    const limit = outcome instanceof LimitCheckFailure ? undefined : this.#madeBy.get(outcome)
    // A failure needs no settings: it is the 500 whatever the route.
    if (limit === undefined) return limitResponse(undefined as never, request, outcome, target, set)
    return limit.respond(request, outcome, target, set)
  }
}
