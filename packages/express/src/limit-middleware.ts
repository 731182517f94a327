import type { LimitDecision } from '@tollgate/core'
import {
  LATER,
  LimitedRoute,
  type LimitOutcome,
  settleAtEnd,
  type TokenGrant,
  type TokenRoute,
  withTokens,
} from '@tollgate/core/internal'
import type { NextFunction, Request, RequestHandler, Response } from 'express'

declare global {
  namespace Express {
    interface Request {
      /** The rate-limit decision for this request, set by `gate.limit()`. */
      rateLimit?: LimitDecision
    }
  }
}

function setHeader(res: Response, name: string, value: string): void {
  res.setHeader(name, value)
}

function getHeader(res: Response, name: string): unknown {
  return res.getHeader(name)
}

/**
 * Reserves the route's tokens after its request limits: from `req.body` when a body parser ran
 * before, else the default estimate. `gate.forward()` after it settles from the backend's usage;
 * another handler may call `req.rateLimit.settleTokens(n)`, or the reservation stands.
 */
function reserveTokens(tokens: TokenRoute<Request>, req: Request, res: Response, next: NextFunction): void {
  tokens.reserve(req, req.ip, req.rateLimit, req.body).then((outcome) => {
    if (outcome === null) return next()
    const answer = tokens.respond(outcome, req.rateLimit, res, getHeader, setHeader)
    if (answer !== undefined) {
      res.status(answer.status).json(answer.body)
      return
    }
    const { reservation } = outcome as TokenGrant
    req.rateLimit = withTokens(req.rateLimit, reservation)
    settleAtEnd(res, reservation, req)
    next()
  }, next)
}

/** Counts the request and answers what the core makes of the outcome (429, 400 or 500). */
export function limitMiddleware(
  route: LimitedRoute<Request> | null,
  tokens: TokenRoute<Request> | null = null,
): RequestHandler {
  function apply(outcome: LimitOutcome, req: Request, res: Response, next: NextFunction): void {
    if (outcome === null) return tokens === null ? next() : reserveTokens(tokens, req, res, next)
    const decision = LimitedRoute.decisionOf(outcome)
    if (decision !== null) req.rateLimit = decision
    const rejection = route!.apply(req, outcome, res, setHeader)
    // 'close' comes once per response, after it finished or when the client went away.
    if (rejection === undefined && route!.settlesAfterResponse) {
      res.once('close', () => route!.settle(req, outcome, res.statusCode))
    }
    if (rejection === undefined) return tokens === null ? next() : reserveTokens(tokens, req, res, next)
    res.status(rejection.status).json(rejection.body)
  }

  /** `apply` for an outcome that arrives after the middleware returned: a throw goes to `next`. */
  function applyLater(outcome: LimitOutcome, req: Request, res: Response, next: NextFunction): void {
    try {
      apply(outcome, req, res, next)
    } catch (error) {
      next(error)
    }
  }

  // A store that answers by callback (Redis) gets one: a request then makes no promise here.
  const later = route?.answersLater === true

  return function tollgateLimit(req: Request, res: Response, next: NextFunction): void {
    if (route === null) return apply(null, req, res, next)
    const result = later
      ? route.check(req, req.ip, (outcome) => applyLater(outcome, req, res, next))
      : route.check(req, req.ip)
    if (result === LATER) return
    if (result instanceof Promise) result.then((outcome) => applyLater(outcome, req, res, next), next)
    else apply(result, req, res, next)
  }
}
