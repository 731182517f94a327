import { CALLBACK_FAILED, type UserCallbacks } from '../user-callback.js'
import { describeValue } from '../validation.js'
import type { LimitDecision } from './decision.js'
import { clientKeyFromIp } from './ip-key.js'
import type { RateLimiter } from './limiter.js'
import type { Cost, DeductWhen, KeyGenerator } from './options.js'
import {
  type HeaderSetter,
  LATER,
  type Later,
  type LimitAnswer,
  LimitCheckFailure,
  type LimitOutcome,
  limitResponse,
  type ResponseSettings,
} from './rejection.js'

export interface RouteLimitSettings<Req> extends ResponseSettings<Req> {
  readonly keyGenerator: KeyGenerator<Req> | undefined
  readonly cost: Cost<Req>
  readonly skip: ((request: Req) => boolean | Promise<boolean>) | undefined
  readonly allowList: ((request: Req, key: string) => boolean) | undefined
  readonly callbacks: UserCallbacks
  /** Reports a store failure (logged once per engine, not per request). */
  readonly storeFailed: (error: unknown) => void
  readonly deductWhen?: DeductWhen<Req> | undefined
  /** Only these methods are limited; undefined: every method. */
  readonly methods?: ReadonlySet<string> | undefined
  /** Set for `perMethod`: the limiter whose counters a method draws on. */
  readonly limiterFor?: ((method: string) => RateLimiter) | undefined
}

/** Both frameworks' requests carry the method; a HEAD runs the GET handler, so it counts as one. */
function methodOf(request: unknown): string {
  const method = (request as { method?: unknown }).method
  return method === 'HEAD' ? 'GET' : typeof method === 'string' ? method : ''
}

/** A truthy answer from `skip` or `allowList` exempts the request; a failed call does not. */
function exempts(answer: unknown): boolean {
  return answer !== CALLBACK_FAILED && Boolean(answer)
}

const KEY_FAILED = new LimitCheckFailure('keyGenerator')
const COST_FAILED = new LimitCheckFailure('cost')
const STORE_FAILED = new LimitCheckFailure('store')

/**
 * One route's limiter plus the per-request settings that apply to it. Every user callback is
 * called through `UserCallbacks`: a throw or a rejected promise is logged once and never escapes,
 * and the request still gets an answer (see `respond`).
 */
export class RouteLimit<Req> {
  readonly limiter: RateLimiter
  readonly #settings: RouteLimitSettings<Req>

  /** What an async store's failure becomes; made once, not per request. */
  readonly #storeFailure: (error: unknown) => LimitCheckFailure

  constructor(limiter: RateLimiter, settings: RouteLimitSettings<Req>) {
    this.limiter = limiter
    this.#settings = settings
    this.#storeFailure = (error) => {
      settings.storeFailed(error)
      return STORE_FAILED
    }
  }

  /**
   * Counts the request. `ip` is the client address as the framework reports it (after its own
   * trust-proxy handling). Gives null when the request is skipped or allow-listed, and a
   * `LimitCheckFailure` when the key, the cost or the store failed. Never throws nor rejects;
   * synchronous unless a callback or the store is async.
   *
   * With `onLater`, a store that answers by callback (see `answersLater`) hands the outcome to
   * `onLater` instead, once, and `check` returns `LATER`: no promise for the request.
   */
  check(request: Req, ip: string | undefined): LimitOutcome | Promise<LimitOutcome>
  check(
    request: Req,
    ip: string | undefined,
    onLater: ((outcome: LimitOutcome) => void) | undefined,
  ): LimitOutcome | Promise<LimitOutcome> | Later
  check(
    request: Req,
    ip: string | undefined,
    onLater?: (outcome: LimitOutcome) => void,
  ): LimitOutcome | Promise<LimitOutcome> | Later {
    const { skip, methods } = this.#settings
    if (methods !== undefined && !methods.has(methodOf(request))) return null
    if (skip === undefined) return this.#keyed(request, ip, onLater)
    const skipped = this.#settings.callbacks.call('skip', skip, request)
    // A failing skip counts the request: skipping is an exemption, and a bug must not grant one.
    if (skipped instanceof Promise) {
      return skipped.then((s) => (exempts(s) ? null : (this.#keyed(request, ip, undefined) as LimitOutcome)))
    }
    return exempts(skipped) ? null : this.#keyed(request, ip, onLater)
  }

  /** Whether `check` with a callback can answer `LATER`: the store answers by callback. */
  get answersLater(): boolean {
    return this.limiter.answersByCallback
  }

  /** Whether `settle` has anything to do once a response is sent (`deductWhen` is set). */
  get settles(): boolean {
    return this.#settings.deductWhen !== undefined
  }

  /**
   * After the response: refunds an allowed request that `deductWhen` says not to count. A failing
   * `deductWhen` keeps the charge (a bug must not grant requests); a failing refund is reported as
   * a store failure. Never throws nor rejects.
   */
  settle(request: Req, decision: LimitDecision, statusCode: number): void | Promise<void> {
    const { deductWhen, callbacks } = this.#settings
    if (deductWhen === undefined || !decision.allowed || decision.cost === 0) return
    const keep = callbacks.call('deductWhen', deductWhen, request, statusCode)
    if (keep === CALLBACK_FAILED || keep) return
    return this.refund(request, decision)
  }

  /**
   * Takes back what an allowed `check` counted (fixed windows; see `RateLimiter.refund`). A
   * failing refund is reported as a store failure. Never throws nor rejects.
   */
  refund(request: Req, decision: LimitDecision): void | Promise<void> {
    try {
      const refunded = this.#limiterOf(request).refund(decision.key, decision.cost)
      if (refunded instanceof Promise) return refunded.catch(this.#settings.storeFailed)
    } catch (error) {
      this.#settings.storeFailed(error)
    }
  }

  #limiterOf(request: Req): RateLimiter {
    const { limiterFor } = this.#settings
    return limiterFor === undefined ? this.limiter : limiterFor(methodOf(request))
  }

  /**
   * Sets the rate-limit headers for `outcome` through `set` and says what to answer instead of
   * the handler, or null to let the request proceed. See `limitResponse`.
   */
  respond<Target>(
    request: Req,
    outcome: LimitDecision | LimitCheckFailure,
    target: Target,
    set: HeaderSetter<Target>,
  ): LimitAnswer | null {
    return limitResponse(this.#settings, request, outcome, target, set)
  }

  // `onLater` only travels the synchronous path: a step run later by a promise gives its outcome
  // to that promise.
  #keyed(
    request: Req,
    ip: string | undefined,
    onLater: ((outcome: LimitOutcome) => void) | undefined,
  ): LimitOutcome | Promise<LimitOutcome> | Later {
    const { keyGenerator } = this.#settings
    if (keyGenerator === undefined) return this.#counted(request, clientKeyFromIp(ip), onLater)
    let key: string | Promise<string>
    try {
      key = keyGenerator(request)
    } catch (error) {
      this.#settings.callbacks.failed('keyGenerator', error)
      return KEY_FAILED
    }
    if (key instanceof Promise) {
      return key.then(
        (k) => this.#counted(request, this.#checkKey(k), undefined) as LimitOutcome | Promise<LimitOutcome>,
        (error: unknown) => {
          this.#settings.callbacks.failed('keyGenerator', error)
          return KEY_FAILED
        },
      )
    }
    return this.#counted(request, this.#checkKey(key), onLater)
  }

  #checkKey(key: unknown): string | undefined {
    if (typeof key === 'string' && key !== '') return key
    this.#settings.callbacks.failed(
      'keyGenerator',
      new TypeError(`it must return a non-empty string; got ${describeValue(key)}`),
    )
    return undefined
  }

  #counted(
    request: Req,
    key: string | undefined,
    onLater: ((outcome: LimitOutcome) => void) | undefined,
  ): LimitOutcome | Promise<LimitOutcome> | Later {
    if (key === undefined) return KEY_FAILED
    const { allowList, cost, callbacks } = this.#settings
    // A failing allowList predicate allow-lists nobody, for the same reason as skip.
    if (allowList !== undefined && exempts(callbacks.call('allowList', allowList, request, key))) return null
    let amount: number
    if (typeof cost === 'number') {
      amount = cost
    } else {
      const computed = callbacks.call('cost', cost, request)
      if (computed === CALLBACK_FAILED) return COST_FAILED
      if (typeof computed !== 'number' || !Number.isSafeInteger(computed) || computed < 0) {
        callbacks.failed(
          'cost',
          new TypeError(`it must return a whole number >= 0; got ${describeValue(computed)}`),
        )
        return COST_FAILED
      }
      amount = computed
    }
    try {
      const limiter = this.#limiterOf(request)
      if (onLater === undefined || !limiter.answersByCallback)
        return limiter.hitOr(key, amount, this.#storeFailure)
      // A store's hitThen throws only before it has called back, so the catch cannot answer twice.
      limiter.hitThen(key, amount, onLater, this.#storeFailure)
      return LATER
    } catch (error) {
      return this.#storeFailure(error)
    }
  }
}
