import {
  type HeaderMode,
  LimitCheckFailure,
  type LimitDecision,
  type LimitOutcome,
  type RouteLimit,
} from '@tollgate/core'
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

/** Counts the request and answers what core's `respond` says (429, 400 or 500). */
export function limitMiddleware(limit: RouteLimit<Request>, _headers?: HeaderMode): RequestHandler {
  function apply(outcome: LimitOutcome, req: Request, res: Response, next: NextFunction): void {
    if (outcome === null) return next()
    if (!(outcome instanceof LimitCheckFailure)) req.rateLimit = outcome
    const answer = limit.respond(req, outcome, res, setHeader)
    if (answer === null) return next()
    res.status(answer.status).json(answer.body)
  }

  return function tollgateLimit(req: Request, res: Response, next: NextFunction): void {
    const result = limit.check(req, req.ip)
    if (result instanceof Promise) {
      result.then((outcome) => apply(outcome, req, res, next)).catch(next)
    } else {
      apply(result, req, res, next)
    }
  }
}
