import type { ServerResponse } from 'node:http'
import type { LimitDecision } from '../limits/decision.js'
import type { LimitAnswer } from '../limits/rejection.js'
import type { TokenReservation } from '../limits/tokens/token-budget.js'
import type { TokenRoute } from './token-route.js'

/** Whether what `TokenRoute.grant` gave is the answer to send (else it is the request's decision). */
export function isLimitAnswer(result: LimitAnswer | LimitDecision): result is LimitAnswer {
  return 'status' in result
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
    // A forward route settles it from the usage; this is for handlers that did not settle.
    if (reservation.forwarded) return
    if (!reservation.settled) void reservation.settle(reservation.reserved, 'reserved')
    ;(reservation.madeBy as TokenRoute<Req> | undefined)?.settled(request, reservation)
  })
}
