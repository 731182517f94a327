import type { LimitDecision } from '@tollgate/core'
import { LimitedRoute, type LimitOutcome } from '@tollgate/core/internal'
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

/** Counts the request and answers what the core makes of the outcome (429, 400 or 500). */
export function limitMiddleware(route: LimitedRoute<Request>): RequestHandler {
  const settles = route.settlesAfterResponse
  function apply(outcome: LimitOutcome, req: Request, res: Response, next: NextFunction): void {
    if (outcome === null) return next()
    const decision = LimitedRoute.decisionOf(outcome)
    if (decision !== null) req.rateLimit = decision
    const rejection = route.apply(req, outcome, res, setHeader)
    // 'close' comes once per response, after it finished or when the client went away.
    if (settles && rejection === undefined) {
      res.once('close', () => route.settle(req, outcome, res.statusCode))
    }
    if (rejection === undefined) return next()
    res.status(rejection.status).json(rejection.body)
  }

  return function tollgateLimit(req: Request, res: Response, next: NextFunction): void {
    const result = route.check(req, req.ip)
    if (result instanceof Promise) {
      result.then((outcome) => apply(outcome, req, res, next)).catch(next)
    } else {
      apply(result, req, res, next)
    }
  }
}
