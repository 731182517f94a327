import type { LimitDecision } from '../limits/decision.js'
import {
  type HeaderSetter,
  type Later,
  type LimitAnswer,
  LimitCheckFailure,
  type LimitOutcome,
} from '../limits/rejection.js'
import type { RouteLimit } from '../limits/route-limit.js'
import type { GatewayEvents } from '../observe/events.js'

/** How an adapter sets one response header on its framework's response object. */
export type SetHeader<Target> = HeaderSetter<Target>

/** What an adapter sends instead of running the route: this status and this JSON body. */
export type LimitRejection = LimitAnswer

/**
 * One limited route as an adapter drives it: `check` counts the request, `apply` turns the
 * outcome into headers and, when the route must not run, the answer to send (429, 400 for a cost
 * no window can hold, 500 when the check itself failed). Both adapters go through here, so what
 * an outcome means for the response is decided in one place.
 */
type RouteLimitLike<Req> = Pick<RouteLimit<Req>, 'check' | 'respond' | 'settle' | 'settles' | 'refund'> &
  Partial<Pick<RouteLimit<Req>, 'answersLater'>>

export class LimitedRoute<Req> {
  readonly #limit: RouteLimitLike<Req>
  readonly #events: GatewayEvents | undefined
  readonly #scope: string
  /**
   * Whether `check` with a callback can answer `LATER` (the store answers by callback, as Redis
   * does): an adapter then passes one, and a request to a shared store makes no promise.
   */
  readonly answersLater: boolean

  /** `events` hears every decision, under the route's `scope`. */
  constructor(limit: RouteLimitLike<Req>, events?: GatewayEvents, scope = '') {
    this.#limit = limit
    this.#events = events
    this.#scope = scope
    this.answersLater = limit.answersLater === true
  }

  /**
   * Counts the request; null when it is skipped or allow-listed. Never throws or rejects: a failed
   * check comes back as a `LimitCheckFailure`. Synchronous unless a callback or the store is async.
   * With `onLater` (see `answersLater`) it may return `LATER` and give the outcome to `onLater`
   * once, possibly before returning.
   */
  check(
    request: Req,
    ip: string | undefined,
    onLater?: (outcome: LimitOutcome) => void,
  ): LimitOutcome | Promise<LimitOutcome> | Later {
    return this.#limit.check(request, ip, onLater)
  }

  /**
   * Whether the adapter must call `settle` once the response is sent. False (no `deductWhen`): the
   * adapter adds no after-response hook or listener, and the request path stays as it was.
   */
  get settlesAfterResponse(): boolean {
    return this.#limit.settles
  }

  /**
   * The after-response step, the one place anything that depends on how the response went is
   * settled: `deductWhen` refunds here. `outcome` is what `check` gave for this request (nothing
   * to do unless it was a decision); `statusCode` the status sent. Never throws nor rejects.
   */
  settle(request: Req, outcome: LimitOutcome, statusCode: number): void | Promise<void> {
    if (outcome === null || outcome instanceof LimitCheckFailure) return
    if (this.#refunded?.has(outcome)) return
    return this.#limit.settle(request, outcome, statusCode)
  }

  /** Decisions given back by `refund`, which `settle` must not refund a second time. */
  #refunded: WeakSet<LimitDecision> | undefined

  /**
   * Gives back the count of a request that a later step refused (its token budget): a request
   * refused by any window is charged to none, request windows and token windows alike. Fixed
   * windows only, as for `deductWhen`. Never throws nor rejects.
   */
  refund(request: Req, outcome: LimitOutcome): void | Promise<void> {
    if (outcome === null || outcome instanceof LimitCheckFailure || !outcome.allowed || outcome.cost === 0)
      return
    if (this.#refunded?.has(outcome)) return
    this.#refunded ??= new WeakSet()
    this.#refunded.add(outcome)
    return this.#limit.refund(request, outcome)
  }

  /** The decision to expose as `request.rateLimit`, if the check produced one. */
  static decisionOf(outcome: LimitDecision | LimitCheckFailure): LimitDecision | null {
    return outcome instanceof LimitCheckFailure ? null : outcome
  }

  /**
   * Writes the outcome's headers through `set` and returns the status and body to send instead of
   * the route; undefined when the request may go on. Allocates only for a rejection.
   */
  apply<Target>(
    request: Req,
    outcome: LimitDecision | LimitCheckFailure,
    target: Target,
    set: SetHeader<Target>,
  ): LimitRejection | undefined {
    if (this.#events !== undefined && !(outcome instanceof LimitCheckFailure))
      this.#events.limitDecision(this.#scope, outcome)
    return this.#limit.respond(request, outcome, target, set) ?? undefined
  }
}
