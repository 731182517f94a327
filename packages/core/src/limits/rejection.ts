import { CALLBACK_FAILED, type UserCallbacks } from '../user-callback.js'
import type { LimitDecision } from './decision.js'
import { type HeaderMode, writeRateLimitHeaders } from './headers.js'

/** A check that could not be made; answered with a 500 and never counted. */
export class LimitCheckFailure {
  /** Which part failed: a user callback (`keyGenerator`, `cost`, a `limits` function) or the store. */
  readonly part: 'keyGenerator' | 'cost' | 'store' | 'limits'

  constructor(part: LimitCheckFailure['part']) {
    this.part = part
  }
}

/** What a check gives: a decision, a failure, or null when the request is skipped or allow-listed. */
export type LimitOutcome = LimitDecision | LimitCheckFailure | null

/**
 * What a check given a callback returns when the outcome will go to that callback instead (a
 * store that answers by callback, such as Redis): the request then costs no promise.
 */
export const LATER: unique symbol = Symbol('tollgate.later')
export type Later = typeof LATER

/** An answer that replaces the route handler: status and JSON body (headers went through `set`). */
export interface LimitAnswer {
  readonly status: number
  readonly body: unknown
}

export type HeaderSetter<Target> = (target: Target, name: string, value: string) => void

export interface ResponseSettings<Req> {
  readonly headers: HeaderMode
  /** The route's `RateLimit-Policy` value, precomputed. */
  readonly policyHeader: string
  /** A 429 whose Retry-After is above this also says `x-should-retry: false`; false never does. */
  readonly clientRetryMaxSeconds: number | false
  readonly rejectionBody: ((request: Req, decision: LimitDecision) => unknown) | undefined
  readonly onExceeded: ((request: Req, decision: LimitDecision) => unknown) | undefined
  readonly callbacks: UserCallbacks
}

/**
 * The response for a check's outcome, in one place for both adapters: sets the rate-limit headers
 * (and `Retry-After`, `x-should-retry`) through `set`, and returns null when the request may
 * proceed, or the status and body to answer instead:
 *
 * - 429 when a window is full (`rejectionBody` or an OpenAI-style error);
 * - 400 when the request's cost is above a window's whole amount, so no wait would let it pass
 *   (no `Retry-After`; `x-should-retry: false`);
 * - 500 when the client key or cost could not be computed or the store failed.
 */
export function limitResponse<Req, Target>(
  settings: ResponseSettings<Req>,
  request: Req,
  outcome: LimitDecision | LimitCheckFailure,
  target: Target,
  set: HeaderSetter<Target>,
): LimitAnswer | null {
  if (outcome instanceof LimitCheckFailure) return CHECK_FAILED
  writeRateLimitHeaders(outcome, settings.headers, settings.policyHeader, target, set)
  if (outcome.allowed) return null
  const never = outcome.retryAfter === 0
  if (never) {
    set(target, 'x-should-retry', 'false')
  } else {
    set(target, 'retry-after', String(outcome.retryAfter))
    const max = settings.clientRetryMaxSeconds
    if (max !== false && outcome.retryAfter > max) set(target, 'x-should-retry', 'false')
  }
  settings.callbacks.notify('onExceeded', settings.onExceeded, request, outcome)
  let body: unknown = CALLBACK_FAILED
  if (settings.rejectionBody !== undefined) {
    body = settings.callbacks.call('rejectionBody', settings.rejectionBody, request, outcome)
  }
  if (body !== CALLBACK_FAILED && isThenable(body)) {
    // A promise cannot be a JSON body; its rejection (if any) must still not go unhandled.
    settings.callbacks.failed('rejectionBody', new TypeError('returned a promise; it must return the body'))
    body.then(undefined, () => {})
    body = CALLBACK_FAILED
  } else if (body !== CALLBACK_FAILED && !serializable(body)) {
    // A BigInt or a cycle would make each framework fail in its own way (Express a 500).
    settings.callbacks.failed('rejectionBody', new TypeError('returned a value JSON cannot represent'))
    body = CALLBACK_FAILED
  }
  if (body === CALLBACK_FAILED) body = never ? neverPassesBody(outcome) : defaultRejectionBody(outcome)
  return { status: never ? 400 : 429, body }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value instanceof Promise
}

/** Whether both adapters can send `body` as JSON; rejections only, so the extra pass is cheap. */
function serializable(body: unknown): boolean {
  try {
    JSON.stringify(body)
    return true
  } catch {
    return false
  }
}

/** The default 429 body: OpenAI's error shape, so SDK clients surface the message. */
export function defaultRejectionBody(decision: LimitDecision): unknown {
  return {
    error: {
      message: `Rate limit exceeded: ${decision.limit}. Retry in ${decision.retryAfter} s.`,
      type: 'rate_limit_exceeded',
      code: 'rate_limit_exceeded',
      limit: decision.limit,
      retry_after: decision.retryAfter,
    },
  }
}

/** The default 400 body for a request that costs more than a window holds. */
export function neverPassesBody(decision: LimitDecision): unknown {
  return {
    error: {
      message:
        `This request costs ${decision.cost}, more than the limit ${decision.limit} allows in one window, ` +
        'so it can never pass. Lower its cost.',
      type: 'invalid_request_error',
      code: 'cost_exceeds_limit',
      limit: decision.limit,
      cost: decision.cost,
    },
  }
}

const CHECK_FAILED: LimitAnswer = Object.freeze({
  status: 500,
  body: Object.freeze({
    error: Object.freeze({
      message: 'The rate limit could not be checked.',
      type: 'server_error',
      code: 'rate_limit_check_failed',
    }),
  }),
})
