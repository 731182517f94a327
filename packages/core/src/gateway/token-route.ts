import type { ServerResponse } from 'node:http'
import { BodyTooLargeError, sendJsonError } from '../forward/errors.js'
import { InvalidJsonBodyError } from '../forward/json-scan.js'
import { readRequestBody, requestHasBody } from '../forward/request-body.js'
import type { LimitDecision } from '../limits/decision.js'
import type { HeaderMode } from '../limits/headers.js'
import { clientKeyFromIp } from '../limits/ip-key.js'
import type { KeyGenerator } from '../limits/options.js'
import type { LimitAnswer } from '../limits/rejection.js'
import { estimateRequest, type RequestEstimate } from '../limits/tokens/estimate.js'
import { POLICY_FAILED, type TokenBudget, type TokenReservation } from '../limits/tokens/token-budget.js'
import { type HeaderGetter, tokenRejectionBody, writeTokenHeaders } from '../limits/tokens/token-headers.js'
import { UsageObserver } from '../limits/tokens/usage-observer.js'
import { CALLBACK_FAILED, type UserCallbacks } from '../user-callback.js'
import type { ForwardingGateway, ForwardRoute, GatewayRequest } from './gateway.js'
import type { LimitedRoute } from './limited-route.js'

export interface TokenRouteSettings<Req> {
  readonly keyGenerator: KeyGenerator<Req> | undefined
  readonly callbacks: UserCallbacks
  readonly headers: HeaderMode
  readonly openaiHeaders: boolean
  readonly defaultMaxTokens: number
  readonly onSettled: ((request: Req, reservation: TokenReservation) => unknown) | undefined
  readonly storeFailed: (error: unknown) => void
  /** Hears each rejection, under the route's scope; undefined when nothing observes. */
  readonly rejected?: ((reservation: TokenReservation) => void) | undefined
}

/** A reservation that was made (allowed or not), with what it was estimated from. */
export interface TokenGrant {
  readonly reservation: TokenReservation
  readonly estimate: RequestEstimate
  readonly policyHeader: string
}

/** A reservation, the answer to send instead of the route (500 when none could be made), or null: no budget. */
export type TokenOutcome = TokenGrant | LimitAnswer | null

const CHECK_FAILED: LimitAnswer = Object.freeze({
  status: 500,
  body: Object.freeze({
    error: Object.freeze({
      message: 'The token budget could not be checked.',
      type: 'server_error',
      code: 'token_limit_check_failed',
    }),
  }),
})

/** A body above this size is scanned once per event-loop turn (about 10 ms of scanning). */
const SCAN_TURN_BYTES = 1024 * 1024

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(() => setImmediate(resolve), 0))
}

const MADE_BY = new WeakMap<TokenReservation, object>()
/** Reservations a forward settles from the usage: the end-of-response settle leaves them alone. */
const FORWARDED = new WeakSet<TokenReservation>()

/** The estimate, or the 400/415 for a body the gateway cannot read as the engine would. */
function estimateOrAnswer(body: unknown, defaultMaxTokens: number): RequestEstimate | LimitAnswer {
  try {
    return estimateRequest(body, defaultMaxTokens)
  } catch (error) {
    if (!(error instanceof InvalidJsonBodyError)) throw error
    return {
      status: error.status,
      body: { error: { message: error.message, type: 'invalid_request_error', code: error.code } },
    }
  }
}

function isAnswer(outcome: TokenOutcome): outcome is LimitAnswer {
  return outcome !== null && 'status' in outcome
}

/** Whether what `TokenRoute.grant` gave is the answer to send (else it is the request's decision). */
export function isLimitAnswer(result: LimitAnswer | LimitDecision): result is LimitAnswer {
  return 'status' in result
}

const getRes: HeaderGetter<ServerResponse> = (res, name) => res.getHeader(name)
const setRes = (res: ServerResponse, name: string, value: string): void => {
  res.setHeader(name, value)
}

/**
 * One route's token budget as the adapters drive it: reserve before the work (one atomic step in
 * the store), write the token headers or the 429, and settle after it. A forward route reserves
 * from the request body's estimate and settles from the backend's `usage` (`forward`); any other
 * route reserves the default estimate and settles what its handler reports (`settleTokens`), or
 * the reservation as it stands when the response ends.
 */
export class TokenRoute<Req> {
  /** The route that made a reservation, for `gate.forward()` to settle one made by `gate.limit()`. */
  static of<Req>(reservation: TokenReservation | undefined): TokenRoute<Req> | undefined {
    return reservation === undefined ? undefined : (MADE_BY.get(reservation) as TokenRoute<Req> | undefined)
  }

  readonly #budget: TokenBudget<Req>
  readonly #settings: TokenRouteSettings<Req>

  constructor(budget: TokenBudget<Req>, settings: TokenRouteSettings<Req>) {
    this.#budget = budget
    this.#settings = settings
  }

  /** The client key: the request limits' when they ran, else this route's `keyGenerator` or the IP. */
  #key(
    request: Req,
    ip: string | undefined,
    decision: LimitDecision | null | undefined,
  ): Promise<string | undefined> | string | undefined {
    if (decision != null) return decision.key
    const generate = this.#settings.keyGenerator
    if (generate === undefined) return clientKeyFromIp(ip)
    const key = this.#settings.callbacks.call('keyGenerator', generate, request)
    const checked = (k: unknown) => (typeof k === 'string' && k !== '' ? k : undefined)
    return key instanceof Promise
      ? key.then((k) => (k === CALLBACK_FAILED ? undefined : checked(k)))
      : checked(key)
  }

  /** Reserves for `request` from `body` (a Buffer or an already parsed value). Never rejects. */
  async reserve(
    request: Req,
    ip: string | undefined,
    decision: LimitDecision | null | undefined,
    body: unknown,
  ): Promise<TokenOutcome> {
    const policy = this.#budget.policyFor(request)
    if (policy === null) return null
    if (policy === POLICY_FAILED) return CHECK_FAILED
    const key = await this.#key(request, ip, decision)
    if (key === undefined) return CHECK_FAILED
    const estimate = estimateOrAnswer(body, this.#settings.defaultMaxTokens)
    if ('status' in estimate) return estimate
    try {
      const reservation = await this.#budget.reserve(
        policy,
        key,
        estimate.promptTokens + estimate.completionTokens,
      )
      MADE_BY.set(reservation, this)
      return { reservation, estimate, policyHeader: policy.policyHeader }
    } catch (error) {
      this.#settings.storeFailed(error)
      return CHECK_FAILED
    }
  }

  /**
   * The token step after the request limits, the same for both adapters: writes the token headers
   * through `set`. When the request may go on, returns the decision its handler reads
   * (`request.rateLimit`, with the reservation and `settleTokens`) and settles the reservation once
   * `res` is over, unless a forward settles it. Otherwise returns the answer to send instead (429,
   * or 500 when no reservation could be made) after giving back what the request limits (`counted`)
   * charged: a request refused by any window is charged to none.
   */
  grant<Target>(
    request: Req,
    outcome: Exclude<TokenOutcome, null>,
    decision: LimitDecision | null | undefined,
    counted: LimitedRoute<Req> | null | undefined,
    target: Target,
    get: HeaderGetter<Target>,
    set: (target: Target, name: string, value: string) => void,
    res: ServerResponse,
  ): LimitAnswer | LimitDecision {
    const answer = this.#answer(outcome, decision, target, get, set)
    if (answer !== undefined) {
      if (counted != null && decision != null) void counted.refund(request, decision)
      return answer
    }
    const { reservation } = outcome as TokenGrant
    settleAtEnd(res, reservation, request)
    return withTokens(decision, reservation)
  }

  /** Writes the token headers; the answer to send instead of the route, or undefined to go on. */
  #answer<Target>(
    outcome: Exclude<TokenOutcome, null>,
    decision: LimitDecision | null | undefined,
    target: Target,
    get: HeaderGetter<Target>,
    set: (target: Target, name: string, value: string) => void,
  ): LimitAnswer | undefined {
    if (isAnswer(outcome)) return outcome
    const { reservation, policyHeader } = outcome
    writeTokenHeaders(
      reservation,
      policyHeader,
      this.#settings.headers,
      this.#settings.openaiHeaders,
      decision ?? null,
      target,
      get,
      set,
    )
    if (reservation.allowed) return undefined
    this.#settings.rejected?.(reservation)
    set(target, 'retry-after', String(reservation.retryAfter))
    return { status: 429, body: tokenRejectionBody(reservation) }
  }

  /** Tells `onTokensSettled` about a settled reservation. */
  settled(request: Req, reservation: TokenReservation): void {
    this.#settings.callbacks.notify('onTokensSettled', this.#settings.onSettled, request, reservation)
  }

  /**
   * Forwards with a reservation: reads the body first when no parser did (the estimate needs it),
   * reserves, asks a stream for its usage, and settles when the response is over — to the
   * backend's usage, an estimate of what was streamed, or nothing when no backend answered.
   */
  async forward(
    gateway: ForwardingGateway<Req>,
    route: ForwardRoute<Req>,
    input: GatewayRequest<Req>,
    decision: LimitDecision | null | undefined,
    counted?: LimitedRoute<Req> | null,
  ): Promise<void> {
    const { req, res } = input
    if (input.body === undefined && requestHasBody(req)) {
      try {
        const max = gateway.maxBodyBytes
        input.body = (await readRequestBody(req, max, max)) as Buffer
      } catch (error) {
        if (error instanceof BodyTooLargeError) sendJsonError(req, res, 413, 'body_too_large', error.message)
        return
      }
    }
    // A reservation made before (Express `gate.limit({ tokens })`) is settled here, from the usage.
    const made = decision?.tokens
    let reservation: TokenReservation
    let estimate: RequestEstimate
    if (made !== undefined) {
      reservation = made
      FORWARDED.add(made)
      const read = estimateOrAnswer(input.body, this.#settings.defaultMaxTokens)
      if ('status' in read) {
        await made.settle(0, 'refund')
        this.settled(input.request, made)
        sendJson(res, read)
        return
      }
      estimate = read
    } else {
      const outcome = await this.reserve(input.request, input.clientIp, decision, input.body)
      if (outcome === null) return gateway.forward(route, input)
      const answer = this.#answer(outcome, decision, res, getRes, setRes)
      if (answer !== undefined) {
        if (counted != null && decision != null) void counted.refund(input.request, decision)
        sendJson(res, answer)
        return
      }
      ;({ reservation, estimate } = outcome as TokenGrant)
    }
    const observer = new UsageObserver(estimate)
    input.observer = observer
    try {
      // The estimate scanned the body and the forward scans it again (model, prompt): for a large
      // body, other requests get a turn in between rather than wait for both scans (a timer turn,
      // then the I/O that arrived meanwhile, which runs before an immediate set from a timer).
      if (Buffer.isBuffer(input.body) && input.body.length > SCAN_TURN_BYTES) await nextTurn()
      await gateway.forward(route, input)
    } finally {
      const measured = observer.measured(reservation.reserved)
      await reservation.settle(measured.tokens, measured.source)
      this.settled(input.request, reservation)
    }
  }
}

function sendJson(res: ServerResponse, answer: LimitAnswer): void {
  if (res.headersSent) return
  const text = JSON.stringify(answer.body)
  res.statusCode = answer.status
  res.setHeader('content-type', 'application/json; charset=utf-8')
  res.setHeader('content-length', Buffer.byteLength(text))
  res.end(text)
}

/**
 * The decision a handler reads as `request.rateLimit`, with the reservation and `settleTokens`
 * added: the request limits' decision, or (without request limits) one made of the token windows.
 */
export function withTokens(
  decision: LimitDecision | null | undefined,
  reservation: TokenReservation,
): LimitDecision {
  const settleTokens = (n: number): void => {
    void reservation.settle(n, 'settled')
  }
  if (decision != null) return Object.assign(decision, { tokens: reservation, settleTokens })
  return {
    allowed: reservation.allowed,
    key: reservation.key,
    cost: reservation.reserved,
    windows: reservation.windows,
    binding: reservation.binding,
    retryAfter: reservation.retryAfter,
    limit: reservation.limit,
    tokens: reservation,
    settleTokens,
  }
}

/**
 * Settles a reservation the handler did not settle by the time the response is over (it keeps what
 * it took), and reports it to `onTokensSettled` either way.
 */
export function settleAtEnd<Req>(res: ServerResponse, reservation: TokenReservation, request: Req): void {
  res.once('close', () => {
    // A forward route settled it from the usage already; this is for handlers that did not.
    if (FORWARDED.has(reservation)) return
    if (!reservation.settled) void reservation.settle(reservation.reserved, 'reserved')
    ;(MADE_BY.get(reservation) as TokenRoute<Req> | undefined)?.settled(request, reservation)
  })
}
