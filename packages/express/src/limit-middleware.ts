import type { LimitDecision } from '@tollgate/core'
import type { LimitedRoute } from '@tollgate/core/internal'
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

/** Counts the request and answers what the core makes of the decision. */
export function limitMiddleware(route: LimitedRoute<Request>): RequestHandler {
  function apply(decision: LimitDecision | null, req: Request, res: Response, next: NextFunction): void {
    if (decision === null) return next()
    req.rateLimit = decision
    const rejection = route.apply(req, decision, res, setHeader)
    if (rejection === undefined) return next()
    res.status(rejection.status).json(rejection.body)
  }

  return function tollgateLimit(req: Request, res: Response, next: NextFunction): void {
    let result: ReturnType<typeof route.check>
    try {
      result = route.check(req, req.ip)
    } catch (error) {
      return next(error)
    }
    if (result instanceof Promise) {
      result.then((decision) => apply(decision, req, res, next)).catch(next)
    } else {
      try {
        apply(result, req, res, next)
      } catch (error) {
        next(error)
      }
    }
  }
}
