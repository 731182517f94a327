import type { LimitDecision } from '@tollgate/core'
import {
  isLimitAnswer,
  LATER,
  LimitedRoute,
  type LimitOutcome,
  type TokenRoute,
} from '@tollgate/core/internal'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { deferTokens, forwardFollows, recordCounted } from './token-handoff.js'

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
 * before, else the default estimate. Another handler may call `req.rateLimit.settleTokens(n)`, or
 * the reservation stands. A refusal gives back what `limited` counted.
 */
function reserveTokens(
  tokens: TokenRoute<Request>,
  limited: LimitedRoute<Request> | null,
  req: Request,
  res: Response,
  next: NextFunction,
): void {
  tokens.reserve(req, req.ip, req.rateLimit, req.body).then((outcome) => {
    if (outcome === null) return next()
    const granted = tokens.grant(req, outcome, req.rateLimit, limited, res, getHeader, setHeader, res)
    if (isLimitAnswer(granted)) {
      res.status(granted.status).json(granted.body)
      return
    }
    req.rateLimit = granted
    next()
  }, next)
}

/**
 * Counts the request and answers what the core makes of the outcome (429, 400 or 500), then
 * reserves its tokens. In front of a `gate.forward()` in the same route, the tokens are left to the
 * forward, which reads the body first and reserves from it (its `max_tokens`, its prompt).
 */
export function limitMiddleware(
  route: LimitedRoute<Request> | null,
  tokens: TokenRoute<Request> | null = null,
): RequestHandler {
  function goOn(req: Request, res: Response, next: NextFunction): void {
    if (tokens === null) return next()
    if (forwardFollows(req, tollgateLimit)) {
      deferTokens(req, tokens)
      return next()
    }
    reserveTokens(tokens, route, req, res, next)
  }

  function apply(outcome: LimitOutcome, req: Request, res: Response, next: NextFunction): void {
    if (outcome === null) return goOn(req, res, next)
    const decision = LimitedRoute.decisionOf(outcome)
    if (decision !== null) req.rateLimit = decision
    const rejection = route!.apply(req, outcome, res, setHeader)
    if (rejection !== undefined) {
      res.status(rejection.status).json(rejection.body)
      return
    }
    // 'close' comes once per response, after it finished or when the client went away.
    if (route!.settlesAfterResponse) res.once('close', () => route!.settle(req, outcome, res.statusCode))
    // A token budget that refuses the request later (here or in gate.forward()) gives this count back.
    if (decision !== null) recordCounted(req, route!)
    goOn(req, res, next)
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

  function tollgateLimit(req: Request, res: Response, next: NextFunction): void {
    if (route === null) return apply(null, req, res, next)
    const result = later
      ? route.check(req, req.ip, (outcome) => applyLater(outcome, req, res, next))
      : route.check(req, req.ip)
    if (result === LATER) return
    if (result instanceof Promise) result.then((outcome) => applyLater(outcome, req, res, next), next)
    else apply(result, req, res, next)
  }
  return tollgateLimit
}
